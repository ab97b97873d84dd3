"""Command line: `python -m api serve | migrate | create-admin | demo`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

import structlog
from tortoise.backends.base.client import BaseDBAsyncClient

from api.logging import configure_logging
from kernel import db
from kernel.settings import get_settings, live_adapters, refuse_demo_data, refuse_unsafe_production

log = structlog.get_logger("api.cli")

# How long uvicorn lets in-flight requests finish after SIGTERM before it cancels them; the lifespan's
# own steps are bounded too (api/app.py), so the whole shutdown stays well under a supervisor's 30 s.
GRACEFUL_SHUTDOWN_SECONDS = 10


async def _prepare(load_demo: bool) -> None:
    settings = get_settings()
    await db.migrate()
    await db.init_db()
    try:
        if settings.auth.bootstrap_admin_username and settings.auth.bootstrap_admin_password:
            from kernel.identity.service import bootstrap_admin

            async def work(conn: BaseDBAsyncClient):
                created = await bootstrap_admin(
                    conn, settings.auth.bootstrap_admin_username, settings.auth.bootstrap_admin_password
                )
                return created

            created = await db.run_in_transaction(work)
            if created:
                log.info("staff.bootstrap_admin_created", username=created.username)
        if load_demo:
            from api.demo import load_demo_data

            await load_demo_data()
    finally:
        await db.close_db()


async def _create_admin(username: str, password: str, roles: list[str]) -> None:
    from kernel.identity.service import audit, create_staff

    await db.init_db()
    try:
        async def work(conn: BaseDBAsyncClient):
            staff = await create_staff(conn, username=username, password=password, roles=roles)
            await audit(conn, None, "staff.create_cli", "staff_member", staff.id, {"roles": roles})
            return staff

        staff = await db.run_in_transaction(work)
        print(f"created staff member {staff.username} (id {staff.id}) with roles {','.join(roles)}")
    finally:
        await db.close_db()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="migrate, then run the API (and the embedded worker)")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.add_argument("--workers", type=int, default=1, help="uvicorn processes (production)")
    serve.add_argument("--no-embedded-worker", action="store_true", help="run jobs in a separate arq worker")
    serve.add_argument("--no-demo", action="store_true", help="do not load demo data")
    # Measured side by side in docs/benchmarks.md (bench/server_settings.py): uvloop and httptools serve
    # 1.3-1.5x the requests of asyncio and h11 at 64 connections and take 13-18% off the CPU of a read;
    # the slower pair stays selectable to compare or to debug.
    serve.add_argument("--loop", choices=["uvloop", "asyncio"], default=os.environ.get("SERVER_LOOP", "uvloop"),
                       help="event loop (default uvloop; env SERVER_LOOP)")
    serve.add_argument("--http", choices=["httptools", "h11"], default=os.environ.get("SERVER_HTTP", "httptools"),
                       help="HTTP/1.1 parser (default httptools; env SERVER_HTTP)")
    sub.add_parser("migrate", help="apply the committed migrations")
    sub.add_parser("demo", help="load the demo data")
    admin = sub.add_parser("create-admin", help="create a staff member (first admin by default)")
    admin.add_argument("username")
    admin.add_argument("--roles", default="admin", help="comma-separated: admin,campaign,finance,front_desk")
    args = parser.parse_args(argv)

    settings = get_settings()
    configure_logging(settings.app)
    if args.command == "migrate":
        from kernel.migration_preflight import MigrationRefused

        # Migrations unseal stored phones to backfill lookup hashes (kernel 0004): without the production
        # SECRET_KEY they would run with the development key file and skip every row for good.
        refuse_unsafe_production(settings)
        try:
            asyncio.run(db.migrate())
        except MigrationRefused as refused:
            print(refused, file=sys.stderr)
            return 2
        return 0
    if args.command == "demo":
        refuse_demo_data(settings)  # before migrating: a refused command changes nothing
        asyncio.run(_prepare(load_demo=True))
        return 0
    if args.command == "create-admin":
        password = os.environ.get("ADMIN_PASSWORD") or getpass.getpass("password (10+ characters): ")
        asyncio.run(_create_admin(args.username, password, args.roles.split(",")))
        return 0

    # serve: refused before migrating or binding a port when production would run a sandbox adapter
    # or lacks a secret (every problem listed, exit status 1).
    refuse_unsafe_production(settings)
    if args.no_embedded_worker:
        if not settings.redis.url:
            parser.error("--no-embedded-worker needs REDIS_URL (the separate worker must reach the same Redis)")
        os.environ["EMBEDDED_WORKER"] = "0"
        get_settings.cache_clear()
    embedded = get_settings().worker.embedded
    load_demo = not args.no_demo and settings.app.environment == "development"
    from kernel.migration_preflight import MigrationRefused

    try:
        asyncio.run(_prepare(load_demo=load_demo))
    except MigrationRefused as refused:
        print(refused, file=sys.stderr)
        return 2
    import uvicorn

    # The one line a newcomer looks for: where to click (stdout, beside the structured logs).
    print(f"staff console: http://{args.host}:{args.port}/console   API docs: http://{args.host}:{args.port}/schema",
          flush=True)

    log.info("api.starting", host=args.host, port=args.port, embedded_worker=embedded,
             database=settings.db.url.split("://")[0], trusted_proxies=list(settings.app.trusted_proxies),
             loop=args.loop, http=args.http, workers=args.workers, **live_adapters(settings))
    trusted = settings.app.trusted_proxies
    # X-Forwarded-For is believed only from the proxies named in TRUSTED_PROXIES (none by default):
    # uvicorn would otherwise trust any loopback peer, and the per-address login limit with it.
    # access_log off: `request_id_middleware` writes the access line (JSON, route template, request id);
    # uvicorn's would build its client address and path for every request and then drop them at WARNING.
    uvicorn.run("api.main:app", host=args.host, port=args.port, workers=args.workers,
                log_level="warning", access_log=False, proxy_headers=bool(trusted),
                forwarded_allow_ips=list(trusted) or None,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, loop=args.loop, http=args.http)
    return 0


if __name__ == "__main__":
    sys.exit(main())
