"""A bounded load test of token introspection over HTTP (``scripts/bench --http``).

It creates its own PostgreSQL database, seeds one org with a service account
and ``--tokens`` live tokens, starts ``tokenledger serve`` on a free loopback
port with 1, then 2 workers, and drives ``POST /oauth2/introspect`` from
``--connections`` concurrent connections for ``--duration`` seconds each,
rotating through the tokens. It prints introspections per second and p50/p99
latency, stops the servers and drops the database, whatever happens.

Each ``--modes`` value is one way of serving: ``follow`` (the default: each worker
follows the log and answers from its cache, as fresh as the last notification),
``min-position`` (the same, every request asking for ``min_position`` = the log's
head after seeding, so each answer is known to reflect it) and ``no-follow`` (each
worker re-reads the log's head for every answer, ``serve --no-follow``).

The load comes from ``wrk`` when it is installed (a C client, so the figures
are the server's rather than the client's), else from the lean asyncio client
of ``api.loadclient`` in this process (raw keep-alive HTTP/1.1, uvloop when
installed). Both share the machine with the server: on a 2-core machine the
client takes part of the CPU the server could use.

Only loopback addresses are used; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import psycopg
from psycopg import sql

from bench.http_client import introspection_requests, run_load
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.service import Ledger
from tokenledger.store import open_event_store

__all__ = ["Figures", "main"]

_OPERATOR = Actor.operator("bench")
_STARTUP_SECONDS = 60.0
_WARMUP_SECONDS = 3.0


MODES = ("follow", "min-position", "no-follow")


@dataclass(frozen=True, slots=True)
class Figures:
    mode: str
    workers: int
    cache_staleness: str
    client: str
    connections: int
    seconds: float
    requests: int
    errors: int
    per_second: float
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True, slots=True)
class Seeded:
    caller: str
    tokens: tuple[str, ...]
    head: int
    """The log's head once seeded: what ``min-position`` asks for."""


# -- the database ----------------------------------------------------------------------------------


@contextmanager
def bench_database(admin_url: str) -> Iterator[str]:
    """A new PostgreSQL database for this run, dropped at the end."""
    name = f"tokenledger_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin_url)
    user, host, port = (
        info.get("user", "postgres"),
        info.get("host", "127.0.0.1"),
        info.get("port", 5432),
    )
    try:
        yield f"postgresql://{user}@{host}:{port}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def seed(database_url: str, tokens: int) -> Seeded:
    """One org and project, an admin user (the caller) and a service account's tokens."""
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    try:
        for command in (
            c.CreateOrg(org="bench"),
            c.CreateResource(path="bench/p"),
            c.CreateUser(email="caller@bench.io"),
            c.AddMember(org="bench", email="caller@bench.io", role="auditor"),
            c.CreateServiceAccount(name="svc", org="bench", resource="bench/p", level=Level.WRITE),
        ):
            ledger.execute(command, _OPERATOR)

        def issue(principal: str, resource: str, level: str) -> str:
            grants = [{"resource": resource, "level": level}]
            command = c.build(c.IssueToken, principal=principal, grants=grants)
            secret = ledger.execute(command, _OPERATOR).secret
            assert secret is not None
            return secret

        caller = issue("caller@bench.io", "bench", "read")
        issued = tuple(
            issue("svc@bench.service.tokenledger", "bench/p", "read") for _ in range(tokens)
        )
        return Seeded(caller=caller, tokens=issued, head=ledger.store.head().position)
    finally:
        ledger.close()


# -- the server ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(
    database_url: str, keys_file: Path, workers: int, cache_staleness: str, follow: bool = True
) -> Iterator[str]:
    """``tokenledger serve`` on a free loopback port until the block ends."""
    port = _free_port()
    command = [
        str(Path(sys.executable).with_name("tokenledger")),
        "--db",
        database_url,
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--keys-file",
        str(keys_file),
        "--cache-staleness",
        cache_staleness,
        "--follow" if follow else "--no-follow",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _STARTUP_SECONDS
        ready = 0
        while ready < workers * 4:  # most workers have answered at least once
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    ready += 1
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the clients -----------------------------------------------------------------------------------


_WRK_SCRIPT = """
local bodies = {%(bodies)s}
local headers = {["Content-Type"] = "application/x-www-form-urlencoded",
                 ["Authorization"] = "Bearer %(caller)s"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "/oauth2/introspect", headers, bodies[(i %% #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _bodies(seeded: Seeded, mode: str) -> list[str]:
    if mode == "min-position":
        return [urlencode({"token": t, "min_position": seeded.head}) for t in seeded.tokens]
    return [urlencode({"token": t}) for t in seeded.tokens]


def run_wrk(
    base: str,
    seeded: Seeded,
    connections: int,
    seconds: float,
    workers: int,
    staleness: str,
    mode: str,
) -> Figures:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            _WRK_SCRIPT
            % {
                "bodies": ", ".join(json.dumps(b) for b in _bodies(seeded, mode)),
                "caller": seeded.caller,
            }
        )
    try:
        threads = min(2, connections)
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s"]
        command += ["--timeout", "10s", "-s", script.name, f"{base}/oauth2/introspect"]
        output = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 60, check=True
        ).stdout
    finally:
        os.unlink(script.name)
    line = next(row for row in output.splitlines() if row.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    elapsed = result["duration_us"] / 1e6
    return Figures(
        mode=mode,
        workers=workers,
        cache_staleness=staleness,
        client="wrk",
        connections=connections,
        seconds=round(elapsed, 1),
        requests=result["requests"],
        errors=result["errors"],
        per_second=round(result["requests"] / elapsed, 1),
        p50_ms=round(result["p50_us"] / 1000, 2),
        p99_ms=round(result["p99_us"] / 1000, 2),
    )


def run_python(
    base: str,
    seeded: Seeded,
    connections: int,
    seconds: float,
    workers: int,
    staleness: str,
    mode: str,
) -> Figures:
    address = urlsplit(base)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    requests = introspection_requests(host, port, seeded.caller, _bodies(seeded, mode))
    result = run_load(host, port, requests, connections, seconds)
    latencies = result.latencies
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return Figures(
        mode=mode,
        workers=workers,
        cache_staleness=staleness,
        client="python-raw",
        connections=connections,
        seconds=round(result.elapsed, 1),
        requests=len(latencies),
        errors=result.errors,
        per_second=round(len(latencies) / result.elapsed, 1) if result.elapsed else 0.0,
        p50_ms=round(cuts[49] * 1000, 2),
        p99_ms=round(cuts[98] * 1000, 2),
    )


# -- the run ---------------------------------------------------------------------------------------


def _check(base: str, seeded: Seeded) -> None:
    """One introspection must answer active before any load is measured."""
    answer = httpx.post(
        f"{base}/oauth2/introspect",
        data={"token": seeded.tokens[0]},
        headers={"Authorization": f"Bearer {seeded.caller}"},
        timeout=10,
    )
    if answer.status_code != 200 or answer.json().get("active") is not True:
        raise RuntimeError(f"introspection does not work: {answer.status_code} {answer.text}")


def run(
    admin_url: str,
    worker_counts: Sequence[int],
    connections: int,
    seconds: float,
    tokens: int,
    client: str,
    staleness: Sequence[str],
    modes: Sequence[str] = ("follow",),
) -> list[Figures]:
    use_wrk = client == "wrk" or (client == "auto" and shutil.which("wrk") is not None)
    drive = run_wrk if use_wrk else run_python
    figures: list[Figures] = []
    with bench_database(admin_url) as database_url, tempfile.TemporaryDirectory() as scratch:
        seeded = seed(database_url, tokens)
        keys_file = Path(scratch) / "keys.json"
        for mode, cache, workers in itertools.product(modes, staleness, worker_counts):
            follow = mode != "no-follow"
            with serving(database_url, keys_file, workers, cache, follow) as base:
                _check(base, seeded)
                drive(base, seeded, connections, _WARMUP_SECONDS, workers, cache, mode)
                result = drive(base, seeded, connections, seconds, workers, cache, mode)
            figures.append(result)
            print(
                f"mode={mode} workers={result.workers} cache-staleness={cache} "
                f"client={result.client} "
                f"connections={result.connections} {result.seconds}s: "
                f"{result.per_second:.0f} introspections/s, p50 {result.p50_ms} ms, "
                f"p99 {result.p99_ms} ms, {result.requests} requests, {result.errors} errors",
                flush=True,
            )
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "TOKENLEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="A PostgreSQL URL allowed to create and drop databases.",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=30.0, help="Seconds per run (max 300).")
    parser.add_argument("--tokens", type=int, default=100, help="Distinct tokens introspected.")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--cache-staleness",
        nargs="+",
        default=["0"],
        help="serve --cache-staleness values to measure (seconds or 'off').",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=MODES,
        default=["follow", "min-position"],
        help="How the workers serve (see the module's documentation).",
    )
    parser.add_argument("--json", action="store_true", help="Also print the figures as JSON.")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 300 or not 1 <= args.connections <= 1024:
        parser.error("--duration must lie in 1..300 and --connections in 1..1024")
    figures = run(
        args.pg,
        args.workers,
        args.connections,
        args.duration,
        args.tokens,
        args.client,
        args.cache_staleness,
        args.modes,
    )
    if args.json:
        print(json.dumps([asdict(f) for f in figures], indent=2))


if __name__ == "__main__":
    main()
