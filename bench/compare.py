"""`python -m bench.compare BEFORE.json AFTER.json`: the before → after table of each path both runs measured,
in the form docs/benchmarks.md shows (ratio, req/s, server and database CPU per request, baseline, and the
fixed-rate run's p50/p99). `python -m bench.compare --versions bench/results/versions-mariadb.json`: the
same tables from one `python -m bench.versions` run (before and after measured in the same rounds)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _cpu(figure: dict) -> str:
    return f"{figure['cpu_ms']:.2f}"


def _db(figure: dict) -> str:
    return "-" if figure.get("db_cpu_ms") is None else f"{figure['db_cpu_ms']:.2f}"


def table(before: dict, after: dict) -> str:
    lines = [f"### {after['route']}  (baseline: {after['baseline']})", "",
             "| c | ratio before → after | req/s before → after | server CPU ms/req | DB CPU ms/req |"
             " baseline req/s (its CPU, DB CPU ms/req) before / after |",
             "| --- | --- | --- | --- | --- | --- |"]
    for level in ("c16", "c64"):
        b, a = before[level], after[level]
        lines.append(
            f"| {level[1:]} | {b['ratio']:.3f} → **{a['ratio']:.3f}** | {b['path']['rps']:.0f} → {a['path']['rps']:.0f}"
            f" | {_cpu(b['path'])} → {_cpu(a['path'])} | {_db(b['path'])} → {_db(a['path'])}"
            f" | {b['baseline']['rps']:.0f} ({_cpu(b['baseline'])}, {_db(b['baseline'])})"
            f" / {a['baseline']['rps']:.0f} ({_cpu(a['baseline'])}, {_db(a['baseline'])}) |")
    b, a = before["paced"], after["paced"]
    lines.append(
        f"| 64, fixed rate | offered {b['offered_rps']:.0f} → {a['offered_rps']:.0f} req/s"
        f" | achieved {b['rps']:.0f} → {a['rps']:.0f} | {_cpu(b)} → {_cpu(a)} | {_db(b)} → {_db(a)}"
        f" | p50 {b['p50_ms']:.0f} → {a['p50_ms']:.0f} ms, **p99 {b['p99_ms']:.0f} → {a['p99_ms']:.0f} ms** |")
    return "\n".join(lines)


def _from_versions(result: dict, label: str) -> dict:
    levels = {level: {"path": result[level][label], "baseline": result[level]["baseline"],
                      "ratio": result[level][label]["ratio"]} for level in ("c16", "c64")}
    return {"route": result["route"], "baseline": result["baseline"], **levels, "paced": result[f"paced_{label}"]}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare")
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path, nargs="?")
    parser.add_argument("--versions", action="store_true", help="BEFORE is one bench.versions result")
    args = parser.parse_args()
    if args.versions:
        run = json.loads(args.before.read_text())
        print(f"after: {run['after_commit']}, before: {run['before_tree']}, at {run['at']}\n")
        for result in run["paths"].values():
            print(table(_from_versions(result, "before"), _from_versions(result, "after")), end="\n\n")
        return
    before, after = json.loads(args.before.read_text()), json.loads(args.after.read_text())
    print(f"before: {before['commit']} at {before['at']}; after: {after['commit']} at {after['at']}\n")
    for key, path in after["paths"].items():
        if key in before["paths"]:
            print(table(before["paths"][key], path), end="\n\n")


if __name__ == "__main__":
    main()
