"""`python -m bench`: every hot path on one stack, each figure the median of three rounds, with its
same-run baseline and CPU per request; writes the figures to bench/results/<label>-<stack>.json.

    python -m bench --stack mariadb            # or --stack embedded; `make bench` runs both
    python -m bench --only check_in,slots --rounds 3 --requests 1500 --label after
    python -m bench --only checkout          # checkout with every source (bench/checkout.py)

Per path and round: fresh rows, then the path through wrk at 16 and at 64 connections back to back
(closed loop: the maximum), its baseline in the same round (GET /health/live for reads, the raw SQL for
writes), and finally the path at 64 connections on a fixed schedule of half the measured maximum (open
loop: latency as a customer sees it when the server is not saturated).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from bench.harness import machine_line
from bench.load import Figure, median_figure, run_raw, run_wrk, wrk_available
from bench.checkout import CHECKOUT
from bench.paths import HEALTH, PATHS, BenchPath
from bench.stack import Stack, open_stack

# Checkout lives in its own module (its seeding and 34-statement baseline are long); measured like the rest.
ALL_PATHS = [*PATHS, CHECKOUT]
RESULTS = Path(__file__).resolve().parent / "results"
LEVELS = (16, 64)
PACED_CONNECTIONS = 64


async def _wrk(stack: Stack, name: str, prepared, *, connections: int, count: int, rate: float | None = None) -> Figure:
    # wrk is a subprocess; nothing else runs in this process meanwhile, so blocking the loop is harmless.
    return run_wrk(name, stack.base, prepared.requests, connections=connections, count=count, rate=rate,
                   server_pid=stack.server_pid, db_pid=stack.db_pid)


async def bench_path(stack: Stack, path: BenchPath, *, rounds: int, requests: int) -> dict:
    count = requests if path.write else requests * 2
    # Each round prepares `count + 64` requests: the ones still in flight when wrk stops counting are
    # fresh ones too (a write sent twice would be answered 409 or as an idempotent replay).
    rows = count + max(LEVELS)
    # Warm-up (not recorded): first requests pay for imports, caches and pool connections.
    await _wrk(stack, "warm-up", await path.prepare(stack, 100), connections=16, count=100)
    result: dict = {"key": path.key, "title": path.title, "route": path.route, "baseline": path.baseline}
    maximum = 0.0
    for connections in LEVELS:
        runs: list[Figure] = []
        baselines: list[Figure] = []
        for _ in range(rounds):
            prepared = await path.prepare(stack, rows)
            if path.write:
                runs.append(await _wrk(stack, path.route, prepared, connections=connections, count=count))
                baselines.append(await run_raw(path.baseline, prepared.raw, total=count, concurrency=connections,
                                               db_pid=stack.db_pid))
            else:
                health = await HEALTH.prepare(stack, rows)
                baselines.append(await _wrk(stack, HEALTH.route, health, connections=connections, count=count))
                runs.append(await _wrk(stack, path.route, prepared, connections=connections, count=count))
        run, baseline = median_figure(runs), median_figure(baselines)
        ratio = run.rps / baseline.rps if baseline.rps else 0.0
        print(baseline.line())
        print(run.line(baseline), flush=True)
        result[f"c{connections}"] = {"path": run.to_json(), "baseline": baseline.to_json(), "ratio": round(ratio, 3)}
        maximum = max(maximum, run.rps)
    rate = round(maximum / 2)
    paced = []
    for _ in range(rounds):
        prepared = await path.prepare(stack, rows)
        paced.append(await _wrk(stack, path.route, prepared, connections=PACED_CONNECTIONS, count=count, rate=rate))
    fixed = median_figure(paced)
    print(fixed.line())
    result["paced"] = fixed.to_json()
    return result


def _git_head() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip()


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--stack", choices=["mariadb", "embedded"], default="mariadb")
    parser.add_argument("--only", default="", help="comma-separated path keys: " + ",".join(p.key for p in ALL_PATHS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1500, help="requests per write run (reads: twice this)")
    parser.add_argument("--label", default="latest")
    parser.add_argument("--server-args", default="", help="extra `python -m api serve` arguments")
    args = parser.parse_args()
    wrk_available()
    chosen = [p for p in ALL_PATHS if not args.only or p.key in args.only.split(",")]
    print(machine_line(), "|", args.stack, "| commit", _git_head())
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{args.label}-{args.stack}.json"
    saved = json.loads(out.read_text()) if out.exists() and args.only else {"paths": {}}
    saved.update({
        "stack": args.stack, "commit": _git_head(), "machine": machine_line(), "python": platform.python_version(),
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rounds": args.rounds,
        "requests": args.requests, "server_args": args.server_args,
    })
    async with open_stack(args.stack, *args.server_args.split()) as stack:
        for path in chosen:
            print(f"\n## {path.title} ({path.route}) on {args.stack}", flush=True)
            saved["paths"][path.key] = await bench_path(stack, path, rounds=args.rounds, requests=args.requests)
            # Written after every path: a run that dies later keeps what it measured.
            out.write_text(json.dumps(saved, indent=1, ensure_ascii=False) + "\n")
    print(f"\nwritten {out}")

if __name__ == "__main__":
    asyncio.run(main())
