"""Smoke test: `python -m api serve` boots the embedded stack (SQLite, bundled Redis, in-process worker)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.harness import stop_process
from tests.failures.support import SERVER_START_SECONDS

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_embedded_stack_boots_migrates_and_serves():
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "EMBEDDED_WORKER",
                                                               "APP_ENV", "ARQ_QUEUE_NAME", "SECRET_KEY"}}
        env["DATA_DIR"] = data_dir
        env["BOOTSTRAP_ADMIN_USERNAME"] = "embedded-admin"
        env["BOOTSTRAP_ADMIN_PASSWORD"] = "a long passphrase for the embedded test"
        log_path = Path(data_dir) / "serve.log"
        with open(log_path, "wb") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "api", "serve", "--port", str(port),
                cwd=ROOT, env=env, stdout=log, stderr=log,
            )
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
                    ready = None
                    deadline = time.monotonic() + SERVER_START_SECONDS
                    while time.monotonic() < deadline:
                        if process.returncode is not None:
                            break
                        try:
                            ready = await http.get("/health/ready")
                            if ready.status_code == 200:
                                break
                        except httpx.TransportError:
                            pass
                        await asyncio.sleep(0.25)
                    assert ready is not None and ready.status_code == 200, log_path.read_text()[-3000:]
                    checks = ready.json()["checks"]
                    assert checks["database"] == "ok" and checks["redis"] == "ok"
                    # The embedded worker beats from its poll loop; readiness waits for it.
                    assert checks["workers"]["status"] == "ok" and checks["workers"]["embedded"]["running"]
                    assert ready.json()["adapters"]["wechat"] == "sandbox"

                    login = await http.post("/app/auth/login", json={"code": "sandbox:alice"})
                    assert login.status_code == 200, login.text
                    # Alice is demo data: she already existed before this first login.
                    assert login.json()["is_new"] is False
                    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                    me = await http.get("/app/me", headers=headers)
                    assert me.status_code == 200 and me.json()["phone"] == "138****1111"
                    # The shelf's reasons take the ORM path on SQLite (MariaDB answers them in one statement).
                    shelf = await http.get("/app/mall/items", headers=headers)
                    assert shelf.status_code == 200 and shelf.json(), shelf.text
                    assert all(item["can_redeem"] == (item["reasons"] == []) for item in shelf.json())

                    # Staff reads that run raw SQL answer the same JSON on SQLite as on MariaDB (SQLite hands
                    # DATE/DATETIME columns back as text).
                    staff = await http.post("/admin/auth/login", json={
                        "username": "embedded-admin", "password": "a long passphrase for the embedded test"})
                    assert staff.status_code == 200, staff.text
                    found = await http.get("/admin/customers", params={"q": "1111"}, headers={
                        "Authorization": f"Bearer {staff.json()['access_token']}"})
                    assert found.status_code == 200, found.text
                    rows = found.json()["items"]
                    assert rows and all(r["created_at"].endswith("Z") and "T" in r["created_at"] for r in rows), rows

                    schema = await http.get("/schema/openapi.json")
                    assert schema.status_code == 200 and "/app/auth/login" in schema.json()["paths"]
                    assert (await http.get("/schema")).status_code == 200
                assert (Path(data_dir) / "clinic.sqlite3").exists()
            finally:
                await stop_process(process)
        assert "13800001111" not in log_path.read_text()
