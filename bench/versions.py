"""Two versions of the code measured in the same run: this checkout and another tree (the code before a
change), two servers on the same database, their rounds alternating with the raw baseline's, so the
machine's noise falls on both and the ratios are taken in the same minutes.

    git archive <base> | tar -x -C /tmp/before        # the other tree (same migrations)
    python -m bench.versions --before /tmp/before --only check_in,points,booking --requests 300

Per path: a warm-up of each server; then at 16 and 64 connections, for each round, fresh rows for the
before server, the after server and the raw baseline (GET /health/live of the after server for reads);
each figure the median of its rounds; then each server at 64 connections on a fixed schedule of half its
own measured maximum. Writes bench/results/versions-<stack>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from datetime import datetime, timezone
from pathlib import Path

from bench.__main__ import LEVELS, PACED_CONNECTIONS, RESULTS, _git_head
from bench.harness import machine_line, server_process
from bench.load import Figure, median_figure, run_raw, run_wrk, wrk_available
from bench.paths import HEALTH, PATHS
from bench.stack import open_stack


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.versions")
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the code before the change")
    parser.add_argument("--only", default="check_in", help="comma-separated path keys")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    wrk_available()
    chosen = [p for p in PATHS if p.key in args.only.split(",")]
    print(machine_line(), "| after: commit", _git_head(), "| before:", args.before)
    saved: dict = {"machine": machine_line(), "after_commit": _git_head(), "before_tree": str(args.before),
                   "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rounds": args.rounds,
                   "requests": args.requests, "paths": {}}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "versions-mariadb.json"
    async with open_stack("mariadb") as stack:
        async with server_process(dict(os.environ), tree=args.before) as (before_base, before_pid):
            servers = {"before": (before_base, before_pid), "after": (stack.base, stack.server_pid)}
            for path in chosen:
                print(f"\n## {path.title} ({path.route})", flush=True)
                count = args.requests if path.write else args.requests * 2
                rows = count + max(LEVELS)
                for base, pid in servers.values():
                    warm = await path.prepare(stack, 100)
                    run_wrk("warm-up", base, warm.requests, connections=16, count=100, server_pid=pid, db_pid=None)
                result: dict = {"route": path.route, "baseline": path.baseline}
                maximum = {"before": 0.0, "after": 0.0}
                for connections in LEVELS:
                    runs: dict[str, list[Figure]] = {"before": [], "after": []}
                    baselines: list[Figure] = []
                    for _ in range(args.rounds):
                        for label, (base, pid) in servers.items():
                            prepared = await path.prepare(stack, rows)
                            runs[label].append(run_wrk(f"{path.route} [{label}]", base, prepared.requests,
                                                       connections=connections, count=count, server_pid=pid,
                                                       db_pid=stack.db_pid))
                        if path.write:
                            prepared = await path.prepare(stack, rows)
                            baselines.append(await run_raw(path.baseline, prepared.raw, total=count,
                                                           concurrency=connections, db_pid=stack.db_pid))
                        else:
                            health = await HEALTH.prepare(stack, rows)
                            baselines.append(run_wrk(HEALTH.route, stack.base, health.requests,
                                                     connections=connections, count=count,
                                                     server_pid=stack.server_pid, db_pid=stack.db_pid))
                    baseline = median_figure(baselines)
                    print(baseline.line())
                    level: dict = {"baseline": baseline.to_json()}
                    for label, figures in runs.items():
                        run = median_figure(figures)
                        print(run.line(baseline), flush=True)
                        # Each round's ratio against the baseline of the same round, and their median.
                        ratios = sorted(f.rps / b.rps for f, b in zip(figures, baselines) if b.rps)
                        level[label] = {**run.to_json(), "ratio": round(ratios[len(ratios) // 2], 3)}
                        maximum[label] = max(maximum[label], run.rps)
                    result[f"c{connections}"] = level
                for label, (base, pid) in servers.items():
                    paced = []
                    for _ in range(args.rounds):
                        prepared = await path.prepare(stack, rows)
                        paced.append(run_wrk(f"{path.route} [{label}]", base, prepared.requests,
                                             connections=PACED_CONNECTIONS, count=count,
                                             rate=round(maximum[label] / 2), server_pid=pid, db_pid=stack.db_pid))
                    fixed = median_figure(paced)
                    print(fixed.line(), flush=True)
                    result[f"paced_{label}"] = fixed.to_json()
                saved["paths"][path.key] = result
                out.write_text(json.dumps(saved, indent=1, ensure_ascii=False) + "\n")
    print(f"\nwritten {out}")


if __name__ == "__main__":
    asyncio.run(main())
