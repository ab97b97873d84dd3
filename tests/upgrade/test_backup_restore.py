"""A backup taken the way README's deploy section says restores into a fresh database the service starts on.

The source is the previous release's populated database after the upgrade (a clinic's data): it is dumped
with `mysqldump --single-transaction`, restored into a new database, every table's checksum compared, and
`python -m api serve` started on the copy must report ready and let a customer read her points.
"""

from __future__ import annotations

import gzip
import subprocess

import httpx

from tests.conftest import TEST_DATABASE, _admin_sql
from tests.live_server import live_server_url
from tests.upgrade.support import database_url, mysql_client_args, query, restore_dump


async def checksums(database: str) -> dict[str, int]:
    tables = [t for (t,) in await query(database, "SHOW TABLES")]
    rows = await query(database, "CHECKSUM TABLE " + ", ".join(f"`{t}`" for t in tables))
    return {name.split(".", 1)[1]: value for name, value in rows}


async def test_a_mysqldump_backup_restores_into_a_fresh_database_the_service_starts_on(upgraded, tmp_path):
    backup = tmp_path / "clinic.sql.gz"
    # The documented command: a consistent snapshot of InnoDB tables without locking them.
    dump = subprocess.run(["mysqldump", *mysql_client_args(), "--single-transaction", "--routines", "--triggers",
                           "--hex-blob", "--default-character-set=utf8mb4", upgraded],
                          check=True, capture_output=True).stdout
    backup.write_bytes(gzip.compress(dump))
    restored = f"{TEST_DATABASE}_restored"
    try:
        await restore_dump(backup, restored)
        before = await checksums(upgraded)
        assert "tortoise_migrations" in before and len(before) > 40
        assert await checksums(restored) == before

        async with live_server_url(DATABASE_URL=database_url(restored)) as base:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                ready = await http.get("/health/ready")
                assert ready.status_code == 200, ready.text
                login = await http.post("/app/auth/login", json={"code": "sandbox:alice"})
                assert login.status_code == 200, login.text
                points = await http.get("/app/points",
                                        headers={"Authorization": f"Bearer {login.json()['access_token']}"})
                assert points.status_code == 200 and points.json()["balance"] > 0, points.text
        # Starting migrated nothing: the restored history was complete.
        assert await query(restored, "SELECT app, name FROM tortoise_migrations ORDER BY id") == await query(
            upgraded, "SELECT app, name FROM tortoise_migrations ORDER BY id")
    finally:
        await _admin_sql(f"DROP DATABASE IF EXISTS `{restored}`")
