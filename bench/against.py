"""This checkout against another one (a baseline commit), in the same minutes.

The machine's speed drifts, so a change's cost is measured as a ratio against its baseline run
alternately with it: ``git worktree add ../base <commit>``, then
``scripts/bench --against ../base [--only W1,W3] [--backends sqlite,postgresql] [--repeat 3]``.

Each run is one workload of ``bench.workloads`` in a fresh process whose ``PYTHONPATH`` is the
checkout's own ``src`` (the interpreter and its packages are this checkout's virtualenv). W3
rebuilds a log each checkout wrote once on a database of its own (their schemas may differ);
every other workload runs on a fresh database each time. Prints, per backend and workload, the
median of each checkout's runs and the added cost in percent (positive: this checkout is slower).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.main import Target, database

__all__ = ["main"]

HERE = Path(__file__).resolve().parent.parent
#: What each workload is judged by, and whether more is better.
MEASURE = {
    "W1": ("commands_per_second", True),
    "W2": ("events_per_second", True),
    "W3": ("events_per_second", True),
    "W4": ("cold_p50_us", False),
    "W7": ("revoke_seconds", False),
}
DEFAULT_SIZE = {"W1": 2_000, "W2": 1_000, "W3": 100_000, "W4": 10_000, "W7": 100_000}


def _run(checkout: Path, workload: str, target: Target, size: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{checkout / 'src'}{os.pathsep}{checkout}"}
    command = [sys.executable, "-m", "bench.workloads", workload, "--backend", target.url]
    command += ["--size", str(size), "--scratch", target.scratch]
    done = subprocess.run(
        command,
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"{checkout.name}: {workload} failed: {tail[0]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def compare(base: Path, workload: str, backend: str, size: int, repeat: int) -> dict[str, Any]:
    measure, higher_is_better = MEASURE[workload]
    runs: dict[str, list[float]] = {"this": [], "base": []}
    checkouts = {"this": HERE, "base": base}
    if workload == "W3":
        with database(backend) as mine, database(backend) as theirs:
            targets = {"this": mine, "base": theirs}
            for name, checkout in checkouts.items():  # writes the log, and a first rebuild
                _run(checkout, workload, targets[name], size)
            for _ in range(repeat):
                for name, checkout in checkouts.items():
                    figures = _run(checkout, workload, targets[name], size)
                    runs[name].append(float(figures[measure]))
    else:
        for _ in range(repeat):
            for name, checkout in checkouts.items():
                with database(backend) as target:
                    runs[name].append(float(_run(checkout, workload, target, size)[measure]))
    this, that = statistics.median(runs["this"]), statistics.median(runs["base"])
    added = (that / this - 1) if higher_is_better else (this / that - 1)
    return {
        "measure": measure,
        "this": this,
        "base": that,
        "added_percent": 100 * added,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base", type=Path, help="the other checkout (e.g. a git worktree)")
    parser.add_argument("--only", default="W1,W3", help="workloads, of " + ",".join(MEASURE))
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--size", type=int, help="the workloads' size (default per workload)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    base = args.base.resolve()
    if not (base / "src" / "tokenledger").is_dir():
        parser.error(f"{args.base} is not a checkout of this project")
    results: dict[str, Any] = {}
    for backend in args.backends.split(","):
        for workload in args.only.split(","):
            if workload not in MEASURE:
                parser.error(f"unknown workload {workload}: one of {', '.join(MEASURE)}")
            size = args.size or DEFAULT_SIZE[workload]
            found = compare(base, workload, backend, size, args.repeat)
            results[f"{workload} {backend}"] = found
            print(
                f"{workload} {size:,} {backend:<10} {found['measure']}: this"
                f" {found['this']:,.1f}, base {found['base']:,.1f}:"
                f" {found['added_percent']:+.1f} % added",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
