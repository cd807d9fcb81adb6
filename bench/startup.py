"""Command-line start-up time (``scripts/bench --startup``): whole processes, wall time.

Each command is run as a fresh process (local only: a SQLite ledger in a temporary directory,
created here with an org, a service account and its token) and compared with a Python
process that only imports what any such command must: ``click`` for ``--help``, and
SQLAlchemy, msgspec and click for a command that reads the ledger. The runs of all commands
and baselines are interleaved, after one warm-up run each, so that a slower moment of the
machine weighs on all of them alike; the table shows medians and their ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["main"]

SA = "ingest@acme.service.tokenledger"


@dataclass(frozen=True, slots=True)
class Case:
    label: str
    argv: list[str]
    stdin: bytes = b""


@dataclass(frozen=True, slots=True)
class Comparison:
    case: Case
    baseline: Case
    target: float


def _tokenledger() -> list[str]:
    """The installed ``tokenledger`` command beside this Python (what a user runs)."""
    beside = Path(sys.executable).with_name("tokenledger")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("tokenledger")
    if found is None:
        raise SystemExit("the tokenledger command is not installed: run scripts/bench --startup")
    return [found]


def _environment() -> dict[str, str]:
    """This environment without the variables that would point a command elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TOKENLEDGER_")}


def _run(case: Case, env: dict[str, str], cwd: str) -> float:
    started = time.perf_counter()
    completed = subprocess.run(
        case.argv,
        input=case.stdin,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        error = completed.stderr.decode(errors="replace").strip()
        raise SystemExit(f"{case.label} exited {completed.returncode}: {error}")
    return elapsed


def _setup(command: list[str], db: str, env: dict[str, str], cwd: str) -> bytes:
    """A migrated SQLite ledger with an org, a project, a service account and its token;
    returns the token's secret."""

    def tokenledger(*args: str) -> str:
        completed = subprocess.run(
            [*command, "--db", db, *args],
            capture_output=True,
            env=env,
            cwd=cwd,
            check=False,
        )
        if completed.returncode != 0:
            raise SystemExit(f"setting up: tokenledger {' '.join(args)}: {completed.stderr!r}")
        return completed.stdout.decode()

    tokenledger("db", "upgrade")
    tokenledger("orgs", "create", "acme")
    tokenledger("resources", "create", "acme/alpha")
    account = ["ingest", "--org", "acme", "--resource", "acme/alpha", "--level", "write"]
    tokenledger("service-accounts", "create", *account)
    issued = json.loads(tokenledger("tokens", "create", "--principal", SA, "--json"))
    return str(issued["secret"]).encode() + b"\n"


def measure(runs: int) -> list[tuple[Comparison, float, float]]:
    """(comparison, median seconds, baseline median seconds) for each comparison."""
    command = _tokenledger()
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="tl_startup_") as directory:
        env = _environment()
        db = os.path.join(directory, "ledger.db")
        secret = _setup(command, db, env, directory)
        click_only = Case('python -c "import click"', [python, "-c", "import click"])
        reader = Case(
            'python -c "import sqlalchemy, msgspec, click"',
            [python, "-c", "import sqlalchemy, msgspec, click"],
        )
        comparisons = [
            Comparison(Case("tokenledger --help", [*command, "--help"]), click_only, 2.5),
            Comparison(
                Case(
                    "tokenledger tokens verify (secret on stdin)",
                    [*command, "--db", db, "tokens", "verify"],
                    secret,
                ),
                reader,
                1.3,
            ),
            Comparison(
                Case("tokenledger orgs list", [*command, "--db", db, "orgs", "list"]), reader, 1.3
            ),
        ]
        cases: dict[str, Case] = {}
        for comparison in comparisons:
            cases.setdefault(comparison.case.label, comparison.case)
            cases.setdefault(comparison.baseline.label, comparison.baseline)
        times: dict[str, list[float]] = {label: [] for label in cases}
        for case in cases.values():  # warm-up: byte code compiled, files in the page cache
            _run(case, env, directory)
        for _ in range(runs):
            for label, case in cases.items():
                times[label].append(_run(case, env, directory))
    return [
        (
            comparison,
            statistics.median(times[comparison.case.label]),
            statistics.median(times[comparison.baseline.label]),
        )
        for comparison in comparisons
    ]


def table(results: list[tuple[Comparison, float, float]]) -> str:
    header = ("command", "median s", "baseline", "median s", "ratio", "target", "")
    rows = [header]
    for comparison, median, baseline in results:
        ratio = median / baseline
        rows.append(
            (
                comparison.case.label,
                f"{median:.3f}",
                comparison.baseline.label,
                f"{baseline:.3f}",
                f"{ratio:.2f}x",
                f"<= {comparison.target}x",
                "met" if ratio <= comparison.target else "not met",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    right = {1, 3, 4}
    return "\n".join(
        "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench --startup", description=__doc__)
    parser.add_argument(
        "--runs", type=int, default=11, help="timed runs of each command (median; at least 5)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    print(
        f"TokenLedger start-up: medians of {args.runs} runs each (wall time, whole processes), "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}",
        flush=True,
    )
    results = measure(args.runs)
    print(table(results))
    if args.json:
        document = [
            {
                "command": comparison.case.label,
                "seconds": median,
                "baseline": comparison.baseline.label,
                "baseline_seconds": baseline,
                "ratio": median / baseline,
                "target": comparison.target,
                "met": median / baseline <= comparison.target,
            }
            for comparison, median, baseline in results
        ]
        Path(args.json).write_text(json.dumps({"runs": args.runs, "results": document}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
