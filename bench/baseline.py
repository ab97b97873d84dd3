"""Baseline: the framework's own ceiling on this machine (GET /health/live, no database, no Redis).

    .venv/bin/python -m bench.baseline [--requests 3000] [--concurrency 1,16,64]
"""

from __future__ import annotations

import argparse
import asyncio

from bench.harness import bench_database, bench_env, http_client, machine_line, run_load, running_server


async def main(requests: int, levels: list[int]) -> None:
    print(machine_line())
    async with bench_database() as database, running_server(bench_env(database)) as base:
        for concurrency in levels:
            async with http_client(base, concurrency) as http:
                async def send(_: int) -> int:
                    return (await http.get("/health/live")).status_code

                await run_load("warm-up", send, total=200, concurrency=concurrency)
                print((await run_load("GET /health/live", send, total=requests, concurrency=concurrency)).row())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", default="1,16,64")
    args = parser.parse_args()
    asyncio.run(main(args.requests, [int(c) for c in args.concurrency.split(",")]))
