"""`python -m bench.floor`: the cheapest request of each shape this stack can serve, beside the product's own
route and the same-run baseline the goals compare with. It answers "how far could the route still go?".

    python -m bench.floor --rounds 3 --requests 1000

A second server runs the product's app unchanged (`create_app()`: the same middleware, guards, logging and
settings; uvicorn with uvloop and httptools, one process) with three routes added, which do the least a route
of that shape can do:

- `GET /bench-floor/own-state`: a customer's read. The customer guard (its erasure check left to the
  statement, as the hot reads do), then one statement through the pool (`SELECT JSON_ARRAY(%s)`), a one-field
  answer. No read of a customer's own state can cost less, so its ratio to `GET /health/live` bounds every
  such read's ratio.
- `POST /bench-floor/redemptions`: an authenticated write that writes nothing. The customer guard and the
  redemption's rate limit, a JSON body and an Idempotency-Key, a 201 answer. No write with a customer's token
  can cost less, so its ratio to the raw conditional UPDATE bounds every hot item's ratio.
- `POST /bench-floor/redemptions/update`: the same, plus the raw conditional UPDATE itself on a hot row
  (autocommit, one statement): the raw baseline behind this HTTP front, and nothing of a redemption's rules.

Each is measured like `python -m bench` measures a path: wrk at 16 and 64 connections, median of the rounds,
server CPU per request from /proc. The routes exist only in this script's server.
"""

# No `from __future__ import annotations`: the routes are defined inside a function, and Litestar reads
# their annotations as objects (strings would be looked up in this module's globals).
import argparse
import asyncio
import json
import secrets
import sys
from datetime import datetime, timezone
import msgspec

from bench.__main__ import LEVELS, RESULTS, _git_head
from bench.harness import bench_env, machine_line, server_process
from bench.load import Figure, Request, median_figure, run_raw, run_wrk, wrk_available
from bench.paths import HEALTH, PATHS, _bearer, _raw_update, make_customers, make_item
from bench.stack import RATE_LIMITS, Stack, open_stack


class _OwnState(msgspec.Struct):
    customer_id: int


class _Ask(msgspec.Struct, forbid_unknown_fields=True):
    item_id: int


class _Taken(msgspec.Struct):
    item_id: int
    customer_id: int
    updated: int


_TAKE_ONE = ("UPDATE mall_item SET stock_reserved = stock_reserved + 1"
             " WHERE id = %s AND stock_reserved + 1 <= stock_total")


def floor_routes():
    """The three routes, built with the product's own guards, dependencies and parameter types."""
    from litestar import Controller
    from litestar.di import Provide
    from litestar.status_codes import HTTP_201_CREATED
    from tortoise import connections

    from api.deps import Db
    from api.handlers import get, post
    from api.points import IdempotencyKey
    from api.ratelimit import customer_action_limited
    from api.security import ERASURE_CHECKED_BY_WORK, customer_guard, provide_customer_id
    from kernel.batch import unpacked

    limit = customer_action_limited("redemption")

    class FloorController(Controller):
        path = "/bench-floor"
        guards = [customer_guard]
        dependencies = {"customer_id": Provide(provide_customer_id)}

        @get("/own-state", opt={ERASURE_CHECKED_BY_WORK: True})
        async def own_state(self, db: Db, customer_id: int) -> _OwnState:
            async def work(conn, customer: int) -> int:
                _, rows = await conn.execute_query("SELECT JSON_ARRAY(%s) AS packed", [customer])
                return int(unpacked(rows[0])[0])

            return _OwnState(await db.read(work, customer_id))

        @post("/redemptions", status_code=HTTP_201_CREATED, guards=[limit], opt={ERASURE_CHECKED_BY_WORK: True})
        async def redeem(self, data: _Ask, customer_id: int, idempotency_key: IdempotencyKey = None) -> _Taken:
            return _Taken(data.item_id, customer_id, 0)

        @post("/redemptions/update", status_code=HTTP_201_CREATED, guards=[limit],
              opt={ERASURE_CHECKED_BY_WORK: True})
        async def redeem_update(self, data: _Ask, customer_id: int, idempotency_key: IdempotencyKey = None) -> _Taken:
            conn = connections.get("default")
            updated = await conn.execute_query(_TAKE_ONE, [data.item_id])
            return _Taken(data.item_id, customer_id, updated[0])

    return FloorController


def serve(port: int) -> None:
    """The floor server: the product's app with the floor routes added (the database is migrated already)."""
    import uvicorn

    from api.app import create_app

    app = create_app()
    app.register(floor_routes())
    # `python -m api serve`'s settings (api/__main__.py): uvloop, httptools, no uvicorn access log.
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                loop="uvloop", http="httptools")


async def _requests(stack: Stack, n: int, path: str, body: dict | None) -> list[Request]:
    customers = await make_customers(stack, n)
    if body is None:
        return [Request("GET", path, headers=_bearer(stack, c)) for c in customers]
    return [Request("POST", path, json.dumps(body), {**_bearer(stack, c), "Content-Type": "application/json",
                                                     "Idempotency-Key": f"floor-{secrets.token_hex(8)}"})
            for c in customers]


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1000, help="per write run (reads: twice this)")
    args = parser.parse_args()
    wrk_available()
    redemption = next(p for p in PATHS if p.key == "redemption")
    points = next(p for p in PATHS if p.key == "points")
    print(machine_line(), "| commit", _git_head())
    saved: dict = {"machine": machine_line(), "commit": _git_head(), "rounds": args.rounds,
                   "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "levels": {}}
    async with open_stack("mariadb") as stack:
        env = bench_env(stack._mysql_database, **RATE_LIMITS)
        async with server_process(env, module="bench.floor") as (floor_base, floor_pid):
            for connections in LEVELS:
                reads, writes = args.requests * 2, args.requests
                rows = max(reads, writes) + connections
                runs: dict[str, list[Figure]] = {}

                def note(label: str, figure: Figure) -> None:
                    runs.setdefault(label, []).append(figure)

                def wrk(label: str, base: str, pid: int, requests: list[Request], count: int) -> None:
                    note(label, run_wrk(label, base, requests, connections=connections, count=count,
                                        server_pid=pid, db_pid=stack.db_pid))

                for _ in range(args.rounds):
                    health = (await HEALTH.prepare(stack, rows)).requests
                    wrk("GET /health/live", floor_base, floor_pid, health, reads)
                    wrk("GET /bench-floor/own-state", floor_base, floor_pid,
                        await _requests(stack, 200, "/bench-floor/own-state", None), reads)
                    wrk("GET /app/points", stack.base, stack.server_pid,
                        (await points.prepare(stack, rows)).requests, reads)
                    hot = await make_item(stack, stock=rows, title="Floor item")
                    wrk("POST /bench-floor/redemptions", floor_base, floor_pid,
                        await _requests(stack, rows, "/bench-floor/redemptions", {"item_id": hot}), writes)
                    wrk("POST /bench-floor/redemptions/update", floor_base, floor_pid,
                        await _requests(stack, rows, "/bench-floor/redemptions/update", {"item_id": hot}), writes)
                    prepared = await redemption.prepare(stack, rows)
                    wrk("POST /app/mall/redemptions", stack.base, stack.server_pid, prepared.requests, writes)
                    raw_item = await make_item(stack, stock=rows, title="Raw item")
                    note("raw conditional UPDATE", await run_raw(
                        "raw conditional UPDATE", _raw_update(stack, _TAKE_ONE, raw_item), total=writes,
                        concurrency=connections, db_pid=stack.db_pid))
                figures = {label: median_figure(rounds) for label, rounds in runs.items()}
                print(f"\n## {connections} connections")
                level: dict = {}
                for label, figure in figures.items():
                    baseline = figures["GET /health/live"] if label.startswith("GET") else figures[
                        "raw conditional UPDATE"]
                    shown = None if figure is baseline else baseline
                    print(figure.line(shown), flush=True)
                    ratios = sorted(f.rps / b.rps for f, b in zip(runs[label], runs[baseline.name]) if b.rps)
                    level[label] = {**figure.to_json(), "ratio": None if shown is None else round(
                        ratios[len(ratios) // 2], 3)}
                saved["levels"][f"c{connections}"] = level
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "floor-mariadb.json"
    out.write_text(json.dumps(saved, indent=1, ensure_ascii=False) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:  # started by server_process: `python -m bench.floor serve --no-demo --port N`
        serve(int(sys.argv[sys.argv.index("--port") + 1]))
    else:
        asyncio.run(main())
