"""`python -m bench.batch_sizes`: how many requests each batch of the hot mall redemption held, under wrk.

    python -m bench.batch_sizes --connections 64 --requests 2000

A server on a fresh database (the same stack as `python -m bench`), a warm-up, then wrk sends the hot-item
redemptions; the server's own histogram (`clinic_mall_redemption_batch_size` on /metrics) is read before and
after, and the difference printed beside the run's figure (server and database CPU per request). The batching
policy (points_mall/redemption_batches.py: how many batches in flight, when one forms) is what sets the
batch size, and the batch size is most of a redemption's cost under load: run it from two checkouts to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import urllib.request

from bench.load import run_wrk, wrk_available
from bench.paths import PATHS
from bench.stack import open_stack

_SERIES = re.compile(r'^clinic_mall_redemption_batch_size_(bucket\{le="([^"]+)"\}|count|sum) ([0-9.e+]+)$', re.M)


def _histogram(base: str) -> dict[str, float]:
    text = urllib.request.urlopen(base + "/metrics").read().decode()
    return {(match.group(2) or match.group(1)): float(match.group(3)) for match in _SERIES.finditer(text)}


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_sizes")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    wrk_available()
    path = next(p for p in PATHS if p.key == "redemption")
    async with open_stack("mariadb") as stack:
        warm = await path.prepare(stack, 200)
        run_wrk("warm-up", stack.base, warm.requests, connections=args.connections, count=200,
                server_pid=stack.server_pid, db_pid=stack.db_pid)
        before = _histogram(stack.base)
        prepared = await path.prepare(stack, args.requests)
        figure = run_wrk(path.route, stack.base, prepared.requests, connections=args.connections, count=args.requests,
                         server_pid=stack.server_pid, db_pid=stack.db_pid)
        after = _histogram(stack.base)
    batches = after["count"] - before.get("count", 0)
    answered = after["sum"] - before.get("sum", 0)
    print(f"{path.route} c={args.connections}: {figure.responses / figure.seconds:.0f} req/s,"
          f" server CPU {figure.cpu_ms:.2f} ms/req, DB CPU {figure.db_cpu_ms:.2f} ms/req")
    print(f"{batches:.0f} batches answered {answered:.0f} requests: {answered / max(batches, 1):.1f} a batch")
    previous = 0.0
    for bound, count in after.items():
        if bound in ("count", "sum"):
            continue
        within = count - before.get(bound, 0)
        print(f"  batches of at most {bound:>4}: {within - previous:5.0f}")
        previous = within


if __name__ == "__main__":
    asyncio.run(main())
