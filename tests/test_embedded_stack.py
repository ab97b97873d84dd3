"""Smoke test: `python -m api serve` boots the embedded stack (SQLite, bundled Redis, in-process worker)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
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
                    await _hot_writes_on_sqlite(http, headers, shelf.json())

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
        # A redemption batch that failed would have been answered by running each request alone: the 201 above
        # must come from the batch's own path on SQLite.
        assert "mall.batch_failed" not in log_path.read_text()


async def _login(http, name: str) -> dict[str, str]:
    login = await http.post("/app/auth/login", json={"code": f"sandbox:{name}"})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def _hot_writes_on_sqlite(http, alice: dict[str, str], shelf: list[dict]) -> None:
    """The check-in, the redemption, the booking and the join send their statements together on MariaDB
    (kernel.batch); on SQLite each runs statement by statement through the ORM: the same answers."""
    checked_in = await http.post("/app/check-ins", headers=alice)
    assert checked_in.status_code == 201, checked_in.text
    assert (await http.post("/app/check-ins", headers=alice)).json()["code"] == "already_checked_in"
    # The overview takes the ORM path on SQLite, its erasure check included (MariaDB: one packed statement).
    overview = await http.get("/app/points", headers=alice)
    assert overview.status_code == 200 and overview.json()["balance"] == checked_in.json()["balance"], overview.text

    item = next(i for i in shelf if i["can_redeem"])
    keyed = {**alice, "Idempotency-Key": "embedded-redeem-1"}
    redeemed = await http.post("/app/mall/redemptions", json={"item_id": item["id"]}, headers=keyed)
    assert redeemed.status_code == 201, redeemed.text
    again = await http.post("/app/mall/redemptions", json={"item_id": item["id"]}, headers=keyed)
    assert again.status_code == 200 and again.json()["id"] == redeemed.json()["id"], again.text

    booker = await _login(http, "embedded-booker")
    branch = (await http.get("/app/booking/branches", headers=booker)).json()["items"][0]
    department = (await http.get("/app/booking/departments", headers=booker)).json()["items"][0]
    day = (datetime.now(timezone.utc) + timedelta(days=2)).date().isoformat()
    slots = (await http.get("/app/booking/slots", headers=booker, params={
        "branch_id": branch["id"], "department_id": department["id"], "date": day})).json()["items"]
    booked = await http.post("/app/bookings", json={"slot_id": slots[0]["id"]}, headers=booker)
    assert booked.status_code == 201 and booked.json()["slot_id"] == slots[0]["id"], booked.text

    leader, friend = await _login(http, "embedded-leader"), await _login(http, "embedded-friend")
    campaign = next(c for c in (await http.get("/app/campaigns", headers=leader)).json() if c["kind"] == "bestie_card")
    opened = await http.post("/app/groups", json={"campaign_id": campaign["id"], "sku_id": campaign["skus"][0]["id"]},
                             headers=leader)
    assert opened.status_code == 201, opened.text
    order = (await http.get(f"/app/orders/{opened.json()['order_id']}", headers=leader)).json()
    paid = await http.post(f"/sandbox/payments/{order['out_trade_no']}/succeed", headers=leader)
    assert paid.status_code == 200 and paid.json()["status"] == "paid", paid.text
    joined = await http.post(f"/app/groups/{opened.json()['group_id']}/join", headers=friend)
    assert joined.status_code == 201 and joined.json()["group_id"] == opened.json()["group_id"], joined.text
    twice = await http.post(f"/app/groups/{opened.json()['group_id']}/join", headers=friend)
    assert twice.status_code == 409 and twice.json()["code"] == "already_in_group"
