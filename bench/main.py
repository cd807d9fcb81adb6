"""The benchmark driver behind ``scripts/bench``: workloads W1-W7 (and the peer) on each backend.

Every run of a workload is a fresh process (``bench.workloads`` / ``bench.peer``) on a fresh
database: a temporary SQLite file, or a PostgreSQL database ``tl_bench_<random>`` created on the
server and dropped afterwards (also when the run fails). W3's runs (and W6's, and the peer's W3)
share one database per log size: the log is written by the first run and rebuilt by each. W4's
runs share one too: its tokens are seeded by the first and only read by each.
The table shows medians over ``--repeat`` runs; ``--json FILE`` writes the same figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["main"]

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ALL = ("W1", "W2", "W3", "W4", "W5", "W6", "W7")
FULL: dict[str, tuple[int, ...]] = {
    "W1": (20_000,),
    "W2": (10_000,),
    "W3": (100_000, 1_000_000),
    "W4": (100_000,),
    "W5": (10_000,),
    "W6": (1_000_000,),
    "W7": (100_000,),
}
# Small enough for both backends, the peer included, to finish in about a minute.
QUICK: dict[str, tuple[int, ...]] = {
    "W1": (500,),
    "W2": (200,),
    "W3": (2_000, 10_000),
    "W4": (2_000,),
    "W5": (1_000,),
    "W6": (10_000,),
    "W7": (2_000,),
}

Figures = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Target:
    """A fresh database's URL, and a scratch directory the runs on it share."""

    url: str
    scratch: str


@contextlib.contextmanager
def database(backend: str) -> Iterator[Target]:
    """A fresh, empty database; dropped (or deleted) when the block ends, even on failure."""
    with tempfile.TemporaryDirectory(prefix="tl_bench_") as directory:
        if backend == "sqlite":
            yield Target(os.path.join(directory, "ledger.db"), directory)
            return
        name = f"tl_bench_{secrets.token_hex(6)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield Target(PG_ADMIN.rsplit("/", 1)[0] + "/" + name, directory)
        finally:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


def run_one(module: str, workload: str, target: Target, size: int) -> Figures:
    """One workload in a fresh process; its JSON figures (or ``{"error": ...}``)."""
    command = [sys.executable, "-m", module, workload, "--backend", target.url]
    command += ["--size", str(size)]
    if module == "bench.workloads":
        command += ["--scratch", target.scratch]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        print(f"  ! {module} {workload} failed: {tail[0]}", file=sys.stderr)
        return {"error": tail[0], "wall_seconds": wall}
    figures: Figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["wall_seconds"] = wall
    return figures


def medians(runs: list[Figures]) -> Figures:
    good = [r for r in runs if "error" not in r]
    if not good:
        return {"error": runs[0].get("error", "failed") if runs else "not run"}
    result: Figures = {"runs": len(good)}
    for key, value in good[0].items():
        if isinstance(value, int | float):
            result[key] = statistics.median(float(r[key]) for r in good if key in r)
    if len(good) < len(runs):
        result["failed_runs"] = len(runs) - len(good)
    return result


@dataclass(frozen=True, slots=True)
class Row:
    workload: str
    backend: str
    figure: str
    value: str
    rss: str
    target: str
    met: str


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:,.2f}"
    return f"{value:.3f}"


def _check(value: float, limit: float, *, at_most: bool) -> str:
    ok = value <= limit if at_most else value >= limit
    return "met" if ok else "not met"


def rows_for(backend: str, results: dict[str, Figures], ratios: dict[str, float]) -> list[Row]:
    rows: list[Row] = []
    pg = backend == "postgresql"

    def add(
        key: str,
        figure: str,
        target: str = "report",
        limit: float | None = None,
        at_most: bool = True,
        shown: str | None = None,
    ) -> None:
        figures = results.get(key)
        if figures is None:
            return
        if "error" in figures:
            rows.append(Row(key, backend, figure, "error", "-", target, "-"))
            return
        value = figures.get(figure)
        if value is None:
            return
        rss = f"{figures.get('peak_rss_mib', 0):.1f} MiB"
        met = "-" if limit is None else _check(value, limit, at_most=at_most)
        rows.append(Row(key, backend, shown or figure, _fmt(value), rss, target, met))

    add(
        "W1",
        "commands_per_second",
        "≥ 2,000/s" if not pg else "report",
        None if pg else 2000,
        at_most=False,
    )
    add("W1", "p50_ms")
    add("W1", "p99_ms")
    add("W1", "statements_per_command")
    add("W2", "events_per_second", "(append only, as the peer)")
    add("W2", "with_projections_events_per_second", "(append + inline projections)")
    add("W2 peer", "events_per_second")
    if "W2" in ratios:
        met = "met" if ratios["W2"] >= 2 else "not met"
        rows.append(Row("W2", backend, "TokenLedger/peer", f"{ratios['W2']:.2f}", "-", "≥ 2", met))
    w3_keys = sorted(
        (k for k in results if k.startswith("W3 ") and "peer" not in k),
        key=lambda k: int(k.split()[1].replace(",", "")),
    )
    for key in w3_keys:
        add(key, "events_per_second", "≥ 250,000/s", 250_000, at_most=False)
    for key in (k for k in results if k.startswith("W3 peer")):
        add(key, "events_per_second", "(read + decode only)")
    if "W3" in ratios:
        rows.append(
            Row(
                "W3",
                backend,
                "TokenLedger rebuild/peer read",
                f"{ratios['W3']:.2f}",
                "-",
                "report",
                "-",
            )
        )
    if len(w3_keys) >= 2 and all("error" not in results[k] for k in w3_keys):
        small, large = results[w3_keys[0]], results[w3_keys[-1]]
        growth = large["peak_rss_mib"] / small["peak_rss_mib"]
        rows.append(
            Row(
                "W3",
                backend,
                f"peak RSS {w3_keys[-1][3:]}/{w3_keys[0][3:]}",
                f"{growth:.2f}",
                "-",
                "≤ 1.2",
                _check(growth, 1.2, at_most=True),
            )
        )
    add("W4", "cold_p50_us", "≤ 150 µs" if pg else "≤ 20 µs", 150 if pg else 20)
    add("W4", "cold_p99_us")
    add("W4", "statements_per_cold_verification")
    add("W4", "cold_verifications_per_second")
    add("W4", "warm_p50_us", "≤ 3 µs", 3)
    add("W4", "warm_p99_us")
    add("W4", "warm_verifications_per_second")
    add("W5", "seconds", "≤ 1 s" if pg else "≤ 0.5 s", 1.0 if pg else 0.5)
    add("W6", "subject_p50_ms", "≤ 5 ms", 5)
    add("W6", "correlation_id_p50_ms", "≤ 5 ms", 5)
    add("W7", "seed_seconds")
    add("W7", "preview_seconds")
    add("W7", "revoke_seconds", "report" if pg else "≤ 5 s", None if pg else 5)
    add("W7", "revoke_cpu_seconds")
    add("W7", "events_per_second")
    return rows


def print_table(rows: list[Row]) -> None:
    header = Row("workload", "backend", "figure", "value", "peak RSS", "target", "met")
    table = [header, *rows]
    widths = [max(len(getattr(r, f)) for r in table) for f in Row.__slots__]
    for i, row in enumerate(table):
        cells = [getattr(row, f) for f in Row.__slots__]
        line = "  ".join(
            cell.rjust(w) if j in (3, 4) else cell.ljust(w)
            for j, (cell, w) in enumerate(zip(cells, widths, strict=True))
        )
        print(line.rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def bench_backend(
    backend: str, selected: list[str], sizes: dict[str, tuple[int, ...]], repeat: int, peer: bool
) -> dict[str, list[Figures]]:
    runs: dict[str, list[Figures]] = {}

    def record(key: str, figures: Figures) -> None:
        runs.setdefault(key, []).append(figures)
        print(f"  {backend} {key}: {json.dumps(figures)}", file=sys.stderr, flush=True)

    for workload in selected:
        if workload == "W6" and "W3" in selected and sizes["W6"][0] in sizes["W3"]:
            continue  # measured on the W3 log of the same size, below
        if workload == "W3":
            # A log is written once per size; each run rebuilds it in a fresh process (a
            # rebuild replaces the projections and leaves the log as it was).
            for size in sizes["W3"]:
                with database(backend) as target:
                    for _ in range(repeat):
                        record(f"W3 {size:,}", run_one("bench.workloads", "W3", target, size))
                    if "W6" in selected and size == sizes["W6"][0]:
                        for _ in range(repeat):
                            record("W6", run_one("bench.workloads", "W6", target, size))
            if peer:
                size = sizes["W3"][-1]
                with database(backend) as target:
                    for _ in range(repeat):
                        record(f"W3 peer {size:,}", run_one("bench.peer", "W3", target, size))
            continue
        if workload == "W4":
            # Verifying writes nothing: the tokens are seeded once, and each run verifies
            # them in a fresh process.
            with database(backend) as target:
                for _ in range(repeat):
                    record("W4", run_one("bench.workloads", "W4", target, sizes["W4"][0]))
            continue
        for _ in range(repeat):
            with database(backend) as target:
                record(workload, run_one("bench.workloads", workload, target, sizes[workload][0]))
            if peer and workload == "W2":
                with database(backend) as target:
                    record("W2 peer", run_one("bench.peer", "W2", target, sizes["W2"][0]))
    return runs


def ratios_of(results: dict[str, Figures], sizes: dict[str, tuple[int, ...]]) -> dict[str, float]:
    ratios: dict[str, float] = {}
    ours, theirs = results.get("W2", {}), results.get("W2 peer", {})
    if "events_per_second" in ours and "events_per_second" in theirs:
        ratios["W2"] = ours["events_per_second"] / theirs["events_per_second"]
    size = sizes["W3"][-1]
    ours, theirs = results.get(f"W3 {size:,}", {}), results.get(f"W3 peer {size:,}", {})
    if "events_per_second" in ours and "events_per_second" in theirs:
        ratios["W3"] = ours["events_per_second"] / theirs["events_per_second"]
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="reduced sizes, one run each")
    parser.add_argument("--peer", action="store_true", help="also run the eventsourcing peer")
    parser.add_argument("--json", metavar="FILE", help="write the figures as JSON")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--only", default=",".join(ALL), help="e.g. W1,W4")
    parser.add_argument("--repeat", type=int, default=None, help="runs per workload (median)")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    selected = [w.strip().upper() for w in args.only.split(",") if w.strip()]
    for name in backends:
        if name not in ("sqlite", "postgresql"):
            parser.error(f"unknown backend {name!r}")
    for name in selected:
        if name not in ALL:
            parser.error(f"unknown workload {name!r}")
    selected = [w for w in ALL if w in selected]
    repeat = args.repeat or (1 if args.quick else 3)
    sizes = QUICK if args.quick else FULL
    print(
        f"TokenLedger benchmarks: {'quick' if args.quick else 'full'}, {repeat} run(s) each, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}",
        flush=True,
    )
    report: dict[str, Any] = {
        "quick": args.quick,
        "repeat": repeat,
        "sizes": {k: list(v) for k, v in sizes.items() if k in selected},
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "backends": {},
    }
    all_rows: list[Row] = []
    for backend in backends:
        started = time.perf_counter()
        runs = bench_backend(backend, selected, sizes, repeat, args.peer)
        results = {key: medians(values) for key, values in runs.items()}
        ratios = ratios_of(results, sizes)
        seconds = time.perf_counter() - started
        print(f"{backend}: {seconds:.1f} s in all", flush=True)
        report["backends"][backend] = {"results": results, "ratios": ratios, "seconds": seconds}
        all_rows += rows_for(backend, results, ratios)
    print()
    print_table(all_rows)
    if args.json:
        report["table"] = [_row_dict(r) for r in all_rows]
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report, out, indent=2)
    return 0


def _row_dict(row: Row) -> dict[str, str]:
    return {f: getattr(row, f) for f in Row.__slots__}


if __name__ == "__main__":
    raise SystemExit(main())
