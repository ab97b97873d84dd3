"""Server settings measured side by side: two servers on the same database in the same run, one with
uvloop + httptools (the default), one with asyncio + h11; their rounds alternate, so machine noise falls on both.

    python -m bench.server_settings [--stack mariadb] [--rounds 3] [--requests 600]
"""

from __future__ import annotations

import argparse
import asyncio

from bench.harness import machine_line, server_process
from bench.load import Figure, median_figure, run_wrk
from bench.paths import HEALTH, PATHS
from bench.stack import open_stack

SLOW = ("--loop", "asyncio", "--http", "h11")


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.server_settings")
    parser.add_argument("--stack", choices=["mariadb"], default="mariadb")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=600)
    args = parser.parse_args()
    print(machine_line())
    paths = [HEALTH] + [p for p in PATHS if p.key in ("slots", "check_in")]
    async with open_stack(args.stack) as stack:
        import os

        async with server_process(dict(os.environ), *SLOW) as (slow_base, slow_pid):
            for path in paths:
                count = args.requests if path.write else args.requests * 2
                figures: dict[str, list[Figure]] = {"uvloop+httptools": [], "asyncio+h11": []}
                for base, pid, label in ((stack.base, stack.server_pid, "uvloop+httptools"),
                                         (slow_base, slow_pid, "asyncio+h11")):
                    warm = await path.prepare(stack, 100)
                    run_wrk("warm-up", base, warm.requests, connections=16, count=100, server_pid=pid, db_pid=None)
                for _ in range(args.rounds):
                    for base, pid, label in ((stack.base, stack.server_pid, "uvloop+httptools"),
                                             (slow_base, slow_pid, "asyncio+h11")):
                        prepared = await path.prepare(stack, count + 64)
                        figures[label].append(run_wrk(f"{path.route} [{label}]", base, prepared.requests,
                                                      connections=64, count=count, server_pid=pid,
                                                      db_pid=stack.db_pid))
                for label, rounds in figures.items():
                    print(median_figure(rounds).line(), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
