"""Builds the committed artefacts of a previous release from that release's own code.

    python tests/upgrade/build_previous_release.py [--commit 6519fa7 --version 0.1.0]   (or `make upgrade-fixture`)

It checks the release's commit out into a temporary `git worktree`, creates a scratch MariaDB database,
runs that release's migrations and fills the database through that release's API and services
(populate_release_<version>.py), records what its API answered (api_reads.py), dumps the database with
mysqldump (schema, data and Tortoise's migration history) and writes its OpenAPI document:

    tests/upgrade/release-<version>.sql.gz        the populated database
    tests/upgrade/release-<version>.reads.json    the API answers, with the instant they were read at
    tests/upgrade/release-<version>.openapi.json  the OpenAPI document (the /app compatibility baseline)

The same environment as the test suite (TEST_MYSQL_*, TEST_REDIS_URL); SECRET_KEY is the suite's, because
phones and triage answers are sealed with it and the upgrade test must read them back.
"""

from __future__ import annotations

import argparse
import gzip
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
# The suite's key (tests/conftest.py): the dump's sealed columns must open under it.
SECRET_KEY = "test-secret-key-" + "x" * 32
MYSQL_HOST = os.environ.get("TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = os.environ.get("TEST_MYSQL_PORT", "3306")
MYSQL_USER = os.environ.get("TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("TEST_MYSQL_PASSWORD", "")
REDIS_BASE = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


def mysql_args() -> list[str]:
    args = [f"--host={MYSQL_HOST}", f"--port={MYSQL_PORT}", f"--user={MYSQL_USER}"]
    return args + ([f"--password={MYSQL_PASSWORD}"] if MYSQL_PASSWORD else [])


def sql(statement: str) -> None:
    subprocess.run(["mysql", *mysql_args(), "-e", statement], check=True)


def dump_database(database: str) -> bytes:
    """Schema and data of one database, reproducible (no dump date), loadable into any empty database."""
    return subprocess.run(
        ["mysqldump", *mysql_args(), "--single-transaction", "--skip-dump-date", "--skip-comments",
         "--no-create-db", "--hex-blob", "--default-character-set=utf8mb4", database],
        check=True, capture_output=True,
    ).stdout


def claim_redis_db() -> tuple[int, str]:
    import redis

    for number in range(1, 16):
        conn = redis.Redis.from_url(f"{REDIS_BASE}/{number}")
        try:
            if conn.dbsize() == 0 and conn.set("clinic-test:claimed-by", "release-build", nx=True, ex=3600):
                if conn.dbsize() == 1:
                    return number, f"{REDIS_BASE}/{number}"
                conn.delete("clinic-test:claimed-by")
        finally:
            conn.close()
    raise SystemExit("no empty Redis logical database to build with")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commit", default="6519fa7")
    parser.add_argument("--version", default="0.1.0")
    args = parser.parse_args()
    populate = HERE / f"populate_release_{args.version.replace('.', '_')}.py"
    worktree = Path(tempfile.mkdtemp(prefix=f"release-{args.version}-"))
    database = f"clinic_release_build_{secrets.token_hex(3)}"
    redis_db, redis_url = claim_redis_db()
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.commit], check=True)
    try:
        sql(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        env = {
            **os.environ,
            "PYTHONPATH": str(worktree), "APP_ENV": "test", "SECRET_KEY": SECRET_KEY,
            "DATABASE_URL": f"mysql://{MYSQL_USER}:{MYSQL_PASSWORD}@{MYSQL_HOST}:{MYSQL_PORT}/{database}",
            "REDIS_URL": redis_url, "ARQ_QUEUE_NAME": f"arq:release-build:{database}",
            "WECHAT_MODE": "sandbox", "PAY_MODE": "sandbox", "EMBEDDED_WORKER": "0", "RATE_LIMIT_ENABLED": "0",
            "LOG_LEVEL": "WARNING", "DATA_DIR": str(worktree / "var"),
        }
        reads = HERE / f"release-{args.version}.reads.json"
        # cwd first on sys.path: every import is the release's code; the two scripts are run by path.
        def step(name: str) -> None:
            subprocess.run([sys.executable, "-c", "import runpy, sys; sys.argv = sys.argv[1:]; "
                            "runpy.run_path(sys.argv[0], run_name='__main__')",
                            str(populate), name, str(HERE / "api_reads.py"), str(reads)],
                           cwd=worktree, env=env, check=True)

        step("populate")
        # Dumped before the reads: some reads count themselves (a group's share views, audit of views).
        (HERE / f"release-{args.version}.sql.gz").write_bytes(gzip.compress(dump_database(database), mtime=0))
        step("read")
        subprocess.run([sys.executable, "-c", "import json, sys; from api.app import create_app; "
                        "doc = create_app(embedded_worker=False).openapi_schema.to_schema(); "
                        "open(sys.argv[1], 'w').write(json.dumps(doc, indent=1, sort_keys=True) + '\\n')",
                        str(HERE / f"release-{args.version}.openapi.json")], cwd=worktree, env=env, check=True)
    finally:
        sql(f"DROP DATABASE IF EXISTS `{database}`")
        import redis

        conn = redis.Redis.from_url(redis_url)
        conn.flushdb()
        conn.close()
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=False)
        shutil.rmtree(worktree, ignore_errors=True)
    print(f"release {args.version} ({args.commit}): written under {HERE.relative_to(ROOT)}/ (redis db {redis_db})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
