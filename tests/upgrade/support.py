"""Helpers of the upgrade and backup tests: restore a dump, run the command line on a database, query it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import aiomysql

from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER, _admin_sql

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
# The release the committed fixture was built from (tests/upgrade/release-<version>.*).
PREVIOUS = "0.1.0"


def mysql_client_args() -> list[str]:
    args = [f"--host={MYSQL_HOST}", f"--port={MYSQL_PORT}", f"--user={MYSQL_USER}"]
    return args + ([f"--password={MYSQL_PASSWORD}"] if MYSQL_PASSWORD else [])


def database_url(name: str) -> str:
    return f"mysql://{MYSQL_USER}:{MYSQL_PASSWORD}@{MYSQL_HOST}:{MYSQL_PORT}/{name}"


async def restore_dump(dump: Path, database: str) -> None:
    """Load a gzipped mysqldump into a new, empty database (how an operator restores a backup)."""
    await _admin_sql(f"DROP DATABASE IF EXISTS `{database}`",
                     f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    with subprocess.Popen(["gzip", "-dc", str(dump)], stdout=subprocess.PIPE) as unzip:
        subprocess.run(["mysql", *mysql_client_args(), database], stdin=unzip.stdout, check=True)
    assert unzip.returncode == 0


def run_cli(database: str, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DATABASE_URL": database_url(database)})


async def query(database: str, sql: str) -> list[tuple]:
    conn = await aiomysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD,
                                  db=database, autocommit=True)
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql)
            return list(await cur.fetchall())
    finally:
        conn.close()
