"""Baseline: the framework's own ceiling on this machine (GET /health/live, no database, no Redis).

    .venv/bin/python -m bench.baseline [--requests 3000] [--concurrency 1,16,64]
"""

from __future__ import annotations

from bench.harness import bench_database, bench_env, cli, health_baseline, http_client, machine_line, running_server


async def main(requests: int, levels: list[int]) -> None:
    print(machine_line())
    async with bench_database() as database, running_server(bench_env(database)) as base:
        for concurrency in levels:
            async with http_client(base, concurrency) as http:
                print((await health_baseline(http, requests=requests, concurrency=concurrency)).row())


if __name__ == "__main__":
    cli(main, requests=3000, concurrency="1,16,64")
