"""`python -m bench.profile`: where the server's CPU goes on one path, sampled by py-spy while wrk drives it.

    python -m bench.profile --path check_in --requests 3000           # needs py-spy on PATH (or PY_SPY=...)

A server on a fresh database (the same stack as `python -m bench`), a warm-up, then py-spy records the
server process while wrk sends the path's requests at 16 connections. Prints the share of samples spent
inside each of the top frames (inclusive) and writes the collapsed stacks (flamegraph input) to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

from bench.load import run_wrk, wrk_available
from bench.paths import PATHS
from bench.stack import open_stack


def summarise(collapsed: Path, top: int) -> str:
    """Inclusive share of samples per frame (a frame counted once per stack), highest first."""
    inclusive: Counter = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples = int(count)
        total += samples
        for frame in set(stack.split(";")):
            inclusive[frame] += samples
    lines = [f"{total} samples"]
    for frame, samples in inclusive.most_common(top):
        lines.append(f"{100 * samples / total:5.1f}%  {frame}")
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--path", default="check_in", help="one of: " + ",".join(p.key for p in PATHS))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--out", default="/tmp/bench-profile.txt", help="collapsed stacks")
    parser.add_argument("--top", type=int, default=60)
    parser.add_argument("--wall", action="store_true",
                        help="sample every running moment (default: only while holding the GIL, i.e. Python's CPU)")
    args = parser.parse_args()
    wrk_available()
    spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if not spy:
        raise SystemExit("needs py-spy (pip install py-spy, or PY_SPY=/path/to/py-spy)")
    path = next(p for p in PATHS if p.key == args.path)
    async with open_stack("mariadb") as stack:
        warm = await path.prepare(stack, 200)
        run_wrk("warm-up", stack.base, warm.requests, connections=args.connections, count=200,
                server_pid=stack.server_pid, db_pid=stack.db_pid)
        prepared = await path.prepare(stack, args.requests + args.connections)
        spy_process = subprocess.Popen([spy, "record", "--pid", str(stack.server_pid), "--format", "raw",
                                        "--rate", "250", "--output", args.out, "--nonblocking",
                                        *([] if args.wall else ["--gil"])],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        await asyncio.sleep(1)
        figure = run_wrk(path.route, stack.base, prepared.requests, connections=args.connections,
                         count=args.requests, server_pid=stack.server_pid, db_pid=stack.db_pid)
        spy_process.send_signal(2)
        spy_process.wait(timeout=60)
    print(figure.line())
    print(summarise(Path(args.out), args.top))


if __name__ == "__main__":
    asyncio.run(main())
