"""The load side of the benchmarks: wrk for the HTTP paths, an aiomysql/aiosqlite client for the raw baselines,
CPU per request of the server and of the database read from /proc around every run, medians of rounds.

Every figure is one `Figure`: requests/s, p50 and p99, statuses, and beside them the CPU milliseconds per
request the server process (for a raw baseline: this client process, which plays the server's part) and
the database server (mariadbd; on the embedded stack the database runs inside the server process) spent.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).resolve().parent / "wrk" / "requests.lua"
TICKS = os.sysconf("SC_CLK_TCK")


def _proc_cpu_ms(pid: int) -> float:
    """utime + stime of one process (all its threads), in milliseconds."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1000 / TICKS


def _python_children(pid: int) -> list[int]:
    """Worker processes of a multi-process server (`--workers N`); the embedded Redis is not the server."""
    found: list[int] = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in map(int, children):
        try:
            comm = Path(f"/proc/{child}/comm").read_text().strip()
        except OSError:
            continue
        if "python" in comm:
            found.append(child)
            found.extend(_python_children(child))
    return found


def server_cpu_ms(pid: int) -> float:
    return sum(_proc_cpu_ms(p) for p in [pid, *_python_children(pid)])


def mariadb_pid() -> int | None:
    """The local MariaDB server, when the benchmark's database is on this host (its CPU is then readable).

    BENCH_MARIADB_PIDFILE names the server to read when several run here (bench/private-mariadb.sh).
    """
    pidfile = os.environ.get("BENCH_MARIADB_PIDFILE")
    if pidfile:
        return int(Path(pidfile).read_text().split()[0])
    for name in ("mariadbd", "mysqld"):
        result = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
        if result.returncode == 0 and result.stdout.split():
            return int(result.stdout.split()[0])
    return None


def own_cpu_ms() -> float:
    return time.process_time() * 1000


@dataclass
class Figure:
    name: str
    connections: int
    responses: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    cpu_ms: float  # server (or, for a raw baseline, client) CPU per request
    db_cpu_ms: float | None  # mariadbd CPU per request; None on the embedded stack
    offered_rps: float | None = None  # set for an open-loop (fixed-rate) run
    errors: int = 0  # 5xx and socket errors
    rounds: list["Figure"] = field(default_factory=list, repr=False)

    @property
    def rps(self) -> float:
        return self.responses / self.seconds if self.seconds else 0.0

    def to_json(self) -> dict:
        return {
            "name": self.name, "connections": self.connections, "responses": self.responses,
            "rps": round(self.rps, 1), "p50_ms": round(self.p50_ms, 2), "p99_ms": round(self.p99_ms, 2),
            "statuses": self.statuses, "errors": self.errors, "cpu_ms": round(self.cpu_ms, 3),
            "db_cpu_ms": None if self.db_cpu_ms is None else round(self.db_cpu_ms, 3),
            "offered_rps": self.offered_rps,
            "rounds_rps": [round(r.rps, 1) for r in self.rounds],
        }

    def line(self, baseline: "Figure | None" = None) -> str:
        ratio = f"  ratio {self.rps / baseline.rps:5.2f}" if baseline and baseline.rps else ""
        db = "  -  " if self.db_cpu_ms is None else f"{self.db_cpu_ms:5.2f}"
        rate = f" @{self.offered_rps:.0f}/s" if self.offered_rps else ""
        spread = "/".join(f"{r.rps:.0f}" for r in self.rounds)
        return (f"{self.name:<44} c={self.connections:<3}{rate:<9} {self.rps:8.1f} req/s  p50 {self.p50_ms:7.1f}"
                f"  p99 {self.p99_ms:7.1f} ms  cpu {self.cpu_ms:5.2f}  db {db} ms/req  errors {self.errors}"
                f"  {self.statuses}{ratio}  [rounds {spread}]")


def median_figure(rounds: Sequence[Figure]) -> Figure:
    """Each column is the median of the rounds (three rounds: the middle value of each)."""
    med = statistics.median
    first = rounds[0]
    statuses: Counter = Counter()
    for r in rounds:
        statuses.update(r.statuses)
    return Figure(
        name=first.name, connections=first.connections,
        responses=int(med(r.responses for r in rounds)),
        seconds=med(r.responses for r in rounds) / med(r.rps for r in rounds) if med(r.rps for r in rounds) else 0,
        p50_ms=med(r.p50_ms for r in rounds), p99_ms=med(r.p99_ms for r in rounds),
        statuses=dict(statuses), cpu_ms=med(r.cpu_ms for r in rounds),
        db_cpu_ms=None if first.db_cpu_ms is None else med(r.db_cpu_ms or 0 for r in rounds),
        offered_rps=first.offered_rps, errors=sum(r.errors for r in rounds), rounds=list(rounds),
    )


@dataclass
class Request:
    method: str
    path: str
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def line(self) -> str:
        parts = [self.method, self.path, self.body]
        for name, value in self.headers.items():
            parts += [name, value]
        assert not any("\t" in p or "\n" in p for p in parts)
        return "\t".join(parts)


def wrk_available() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("the benchmarks need wrk (Debian: apt-get install wrk)")
    return found


def run_wrk(
    name: str,
    base: str,
    requests: Sequence[Request],
    *,
    connections: int,
    count: int | None = None,
    rate: float | None = None,
    server_pid: int,
    db_pid: int | None,
) -> Figure:
    """Send `count` requests (default: each of `requests` once, in order) with `connections` open.

    Without `rate` the connections fire back to back (closed loop: the maximum throughput). With `rate`
    the requests follow a fixed schedule (open loop) and latency counts from each intended start.
    One wrk thread: it drives tens of thousands of requests per second, and a second would take a core
    from the server being measured.
    """
    count = count or len(requests)
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as handle:
        handle.write("\n".join(r.line() for r in requests) + "\n")
        path = handle.name
    env = dict(os.environ)
    env.pop("BENCH_RATE", None)
    if rate:
        env["BENCH_RATE"] = f"{rate:.3f}"
    command = [wrk_available(), "-t1", f"-c{connections}", "-d300s", "--timeout", "30s",
               "-s", str(LUA), base, "--", path, str(count)]
    cpu_before, db_before = server_cpu_ms(server_pid), _proc_cpu_ms(db_pid) if db_pid else 0.0
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        output = []
        for text in process.stdout:
            output.append(text)
            if text.startswith("STOPPED"):
                # Read the CPU counters now: the server is idle once the last response is in.
                cpu_after, db_after = server_cpu_ms(server_pid), _proc_cpu_ms(db_pid) if db_pid else 0.0
                process.send_signal(signal.SIGINT)  # wrk's main thread sleeps for -d; this ends the sleep
        process.wait(timeout=60)
    finally:
        os.unlink(path)
        if process.poll() is None:
            process.kill()
    stdout = "".join(output)
    line = next((l for l in stdout.splitlines() if l.startswith("BENCH ")), None)
    if line is None or "STOPPED" not in stdout:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{stdout}\n{process.stderr.read() if process.stderr else ''}")
    data = json.loads(line[6:])
    responses = data["responses"] or 1
    statuses = {k: v for k, v in sorted(data["statuses"].items())}
    # wrk counts a paced connection that sits idle past --timeout as a timeout; in a paced run a real
    # timeout shows as a missing response instead (the run waits for every response it counts).
    errors = (0 if rate else data["socket_errors"]) + sum(v for k, v in statuses.items() if int(k) >= 500)
    return Figure(
        name=name, connections=connections, responses=data["responses"], seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000, statuses=statuses,
        cpu_ms=(cpu_after - cpu_before) / responses,
        db_cpu_ms=(db_after - db_before) / responses if db_pid else None,
        offered_rps=rate, errors=errors,
    )


async def run_raw(
    name: str,
    send: Callable[[int], Awaitable[int]],
    *,
    total: int,
    concurrency: int,
    db_pid: int | None,
) -> Figure:
    """The raw baseline: `send(i)` for i < total, `concurrency` at a time, from this process.

    Its CPU column is this client process's CPU (it does what the server does for the path, minus HTTP
    and the framework): the two figures compare like for like.
    """
    latencies: list[float] = []
    statuses: Counter = Counter()
    next_index = 0

    async def lane() -> None:
        nonlocal next_index
        while next_index < total:
            i = next_index
            next_index += 1
            started = time.perf_counter()
            try:
                status = str(await send(i))
            except Exception as exc:  # a raw baseline that fails is reported, not hidden
                status = type(exc).__name__
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[status] += 1

    cpu_before, db_before = own_cpu_ms(), _proc_cpu_ms(db_pid) if db_pid else 0.0
    started = time.perf_counter()
    await asyncio.gather(*[lane() for _ in range(concurrency)])
    seconds = time.perf_counter() - started
    cpu_after, db_after = own_cpu_ms(), _proc_cpu_ms(db_pid) if db_pid else 0.0
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(round(p / 100 * (len(latencies) - 1))))]

    return Figure(
        name=name, connections=concurrency, responses=total, seconds=seconds, p50_ms=pct(50), p99_ms=pct(99),
        statuses=dict(statuses), cpu_ms=(cpu_after - cpu_before) / total,
        db_cpu_ms=(db_after - db_before) / total if db_pid else None,
        errors=sum(n for s, n in statuses.items() if not s.isdigit()),
    )
