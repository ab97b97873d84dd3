"""Server settings measured side by side: servers on the same database in the same run, their rounds
alternating so machine noise falls on each: the default (one process, uvloop + httptools), one process on
asyncio + h11, and two processes (`--workers 2`, uvloop + httptools).

    python -m bench.server_settings [--stack mariadb] [--rounds 3] [--requests 600]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from contextlib import AsyncExitStack

from bench.harness import machine_line, server_process
from bench.load import Figure, median_figure, run_wrk
from bench.paths import HEALTH, PATHS
from bench.stack import open_stack

DEFAULT = "1 process, uvloop+httptools"
# The other settings measured beside the default: (label, `python -m api serve` arguments).
OTHERS = (
    ("1 process, asyncio+h11", ("--loop", "asyncio", "--http", "h11")),
    ("2 processes, uvloop+httptools", ("--workers", "2")),
)


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.server_settings")
    parser.add_argument("--stack", choices=["mariadb"], default="mariadb")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=600)
    args = parser.parse_args()
    print(machine_line())
    paths = [HEALTH] + [p for p in PATHS if p.key in ("slots", "check_in")]
    async with open_stack(args.stack) as stack, AsyncExitStack() as servers:
        settings = [(DEFAULT, stack.base, stack.server_pid)]
        for label, server_args in OTHERS:
            base, pid = await servers.enter_async_context(server_process(dict(os.environ), *server_args))
            settings.append((label, base, pid))
        for path in paths:
            count = args.requests if path.write else args.requests * 2
            figures: dict[str, list[Figure]] = {label: [] for label, _, _ in settings}
            for label, base, pid in settings:
                warm = await path.prepare(stack, 100)
                run_wrk("warm-up", base, warm.requests, connections=16, count=100, server_pid=pid, db_pid=None)
            for _ in range(args.rounds):
                for label, base, pid in settings:
                    prepared = await path.prepare(stack, count + 64)
                    figures[label].append(run_wrk(f"{path.route} [{label}]", base, prepared.requests,
                                                  connections=64, count=count, server_pid=pid,
                                                  db_pid=stack.db_pid))
            for label, rounds in figures.items():
                print(median_figure(rounds).line(), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
