"""How fast a revocation reaches every process that answers for tokens
(``scripts/bench --propagation``).

On a PostgreSQL database it creates and drops, it seeds ``--revocations`` service-account
tokens, starts ``tokenledger serve`` with ``--workers`` workers (each following the log)
and ``--verifiers`` processes each holding an embedded ``tokenledger.client.Verifier``
fed from the database, warms every one of them on every token, then revokes the tokens
one at a time. For each revocation it takes the moment the revoking call returned
(committed) and, for each verifier, the moment its answer turned inactive; for the
workers, ``--connections`` keep-alive connections (spread over the workers by the
kernel) introspect the token in a loop until each answers inactive. It prints p50 and
p99 of those delays, each verifier's and the workers' together, then the embedded
verifier's warm answer time (p50, p99) measured in this process.

Loopback addresses only; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx

from bench.http_load import bench_database, seed, serving
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.service import Ledger
from tokenledger.store import open_event_store

__all__ = ["main"]

_OPERATOR = Actor.operator("bench")
#: How long any one process may take to see a revocation before the run gives up (s).
_GIVE_UP = 10.0


def _quantiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        only = values[0] if values else 0.0
        return only, only
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98]


# -- a verifier process ------------------------------------------------------------------------


def verifier_process(database_url: str) -> None:
    """Reads ``secret position`` lines; answers each with the moment (ns, wall clock) the
    embedded verifier applied the position, and whether the secret was then inactive."""
    from tokenledger.client import Verifier

    with Verifier(database=database_url) as verifier:
        print(json.dumps({"ready": verifier.position}), flush=True)
        for line in sys.stdin:
            words = line.split()
            if words[0] == "warm":
                for secret in words[1:]:
                    verifier.verify(secret)
                print(json.dumps({"warm": len(words) - 1}), flush=True)
                continue
            secret, position = words[0], int(words[1])
            reached = verifier.wait_for(position, _GIVE_UP)
            seen = time.time_ns()
            answer = verifier.verify(secret)
            print(json.dumps({"ns": seen, "ok": reached and not answer.active}), flush=True)


class VerifierProcess:
    def __init__(self, database_url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.propagation", "--verifier-of", database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ask_ready()

    def _answer(self) -> dict[str, object]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("a verifier process stopped")
        answer: dict[str, object] = json.loads(line)
        return answer

    def ask_ready(self) -> None:
        self._answer()

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- the workers' side -------------------------------------------------------------------------


class Poller(threading.Thread):
    """One keep-alive connection (so one worker) introspecting a token in a loop, from
    before its revocation, until it answers inactive: the moment it first did, or None.
    ``http.client`` costs little per call, so the loop's resolution is a fraction of a
    millisecond."""

    def __init__(self, connection: http.client.HTTPConnection, caller: str, secret: str):
        super().__init__()
        self.connection = connection
        self.headers = {
            "Authorization": f"Bearer {caller}",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        self.body = urlencode({"token": secret})
        self.polling = threading.Event()
        self.inactive_ns: int | None = None

    def run(self) -> None:
        deadline = time.monotonic() + _GIVE_UP
        while time.monotonic() < deadline:
            self.connection.request("POST", "/oauth2/introspect", self.body, self.headers)
            answer = self.connection.getresponse().read()
            self.polling.set()
            if b'"active":false' in answer:
                self.inactive_ns = time.time_ns()
                return


# -- the run -----------------------------------------------------------------------------------


def run(
    admin_url: str, workers: int, verifiers: int, revocations: int, connections: int
) -> dict[str, float]:
    with bench_database(admin_url) as database_url, tempfile.TemporaryDirectory() as scratch:
        seeded = seed(database_url, revocations)
        keys_file = Path(scratch) / "keys.json"
        warm = _warm_answer(database_url, seeded.tokens[:20])
        ledger = Ledger(open_event_store(database_url), verify_staleness=None)
        processes = [VerifierProcess(database_url) for _ in range(verifiers)]
        worker_delays: list[float] = []
        verifier_delays: list[float] = []
        try:
            with serving(database_url, keys_file, workers, "0") as base:
                address = urlsplit(base)
                host, port = address.hostname or "127.0.0.1", address.port or 80
                connections_ = [
                    http.client.HTTPConnection(host, port, timeout=10) for _ in range(connections)
                ]
                for process in processes:
                    process.send("warm " + " ".join(seeded.tokens))
                    process.ask_ready()
                with httpx.Client(base_url=base, timeout=10) as warming:
                    for _ in range(workers * 8):  # the workers reached keep every answer
                        for secret in seeded.tokens:
                            warming.post(
                                "/oauth2/introspect",
                                data={"token": secret},
                                headers={"Authorization": f"Bearer {seeded.caller}"},
                            )
                for secret in seeded.tokens:
                    pollers = [Poller(each, seeded.caller, secret) for each in connections_]
                    for poller in pollers:
                        poller.start()
                    for poller in pollers:
                        poller.polling.wait(_GIVE_UP)
                    token_id = ledger.authenticate(secret).token_id
                    result = ledger.execute(c.RevokeToken(token_id=token_id), _OPERATOR)
                    committed = time.time_ns()
                    position = result.records[-1].position
                    for process in processes:
                        process.send(f"{secret} {position}")
                    for process in processes:
                        answer = process._answer()
                        if not answer["ok"]:
                            raise RuntimeError("a verifier still answered active")
                        verifier_delays.append((int(answer["ns"]) - committed) / 1e6)  # type: ignore[call-overload]
                    for poller in pollers:
                        poller.join(_GIVE_UP * 2)
                        if poller.inactive_ns is None:
                            raise RuntimeError("a worker still answered active")
                        worker_delays.append((poller.inactive_ns - committed) / 1e6)
                for each in connections_:
                    each.close()
        finally:
            for process in processes:
                process.close()
            ledger.close()
    everyone = worker_delays + verifier_delays
    figures = {
        "revocations": float(revocations),
        "workers_p50_ms": _quantiles(worker_delays)[0],
        "workers_p99_ms": _quantiles(worker_delays)[1],
        "verifiers_p50_ms": _quantiles(verifier_delays)[0],
        "verifiers_p99_ms": _quantiles(verifier_delays)[1],
        "all_p50_ms": _quantiles(everyone)[0],
        "all_p99_ms": _quantiles(everyone)[1],
        "verifier_warm_p50_us": warm[0],
        "verifier_warm_p99_us": warm[1],
    }
    return {name: round(value, 3) for name, value in figures.items()}


def _warm_answer(database_url: str, secrets: Sequence[str]) -> tuple[float, float]:
    """The embedded verifier's answer for active tokens once kept, in microseconds (p50,
    p99): what is asked of it most, the same tokens again."""
    from tokenledger.client import Verifier

    timings: list[float] = []
    with Verifier(database=database_url) as verifier:
        verifier.wait_ready()
        clock = time.perf_counter_ns
        for secret in secrets:
            verifier.verify(secret)
        for _ in range(200):
            for secret in secrets:
                started = clock()
                verifier.verify(secret)
                timings.append((clock() - started) / 1000)
    return _quantiles(timings)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--pg",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="A PostgreSQL URL allowed to create and drop databases.",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--verifiers", type=int, default=4)
    parser.add_argument("--revocations", type=int, default=100)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--verifier-of", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.verifier_of:
        verifier_process(args.verifier_of)
        return
    if not 1 <= args.revocations <= 2000 or not 1 <= args.connections <= 64:
        parser.error("--revocations must lie in 1..2000 and --connections in 1..64")
    figures = run(args.pg, args.workers, args.verifiers, args.revocations, args.connections)
    print(
        f"revocation propagation, {args.workers} workers and {args.verifiers} verifiers, "
        f"{args.revocations} revocations: workers p50 {figures['workers_p50_ms']} ms, "
        f"p99 {figures['workers_p99_ms']} ms; verifiers p50 {figures['verifiers_p50_ms']} ms, "
        f"p99 {figures['verifiers_p99_ms']} ms; all p50 {figures['all_p50_ms']} ms, "
        f"p99 {figures['all_p99_ms']} ms",
        flush=True,
    )
    print(
        f"embedded verifier, warm answer: p50 {figures['verifier_warm_p50_us']} µs, "
        f"p99 {figures['verifier_warm_p99_us']} µs",
        flush=True,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
