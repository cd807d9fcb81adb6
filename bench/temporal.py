"""Questions about the past, answered from the temporal projection: ``scripts/bench --temporal``.

For each backend and log length: a synthetic log (``bench.logs``, rebuilt), then a small
world written through commands at its end (project ``acme/audited``, five service accounts
with four tokens each, a user with a direct grant and a token), a moment ``T`` after it, and
one more revocation after ``T``. In a fresh process each:

* ``tokens verify --at T`` (``Ledger.verify_at``, with a resource and level), ``tokens list
  --at T`` (``Ledger.tokens_of``) and ``audit who-can acme/audited write --at T``
  (``Ledger.who_can``): p50 over ``--samples`` calls, and the process's peak RSS; also
  who-can on a busy project of the synthetic log (``acme/p7``: ten accounts and every
  token of theirs), whose answer grows with the log;
* for reference, the fold the temporal projection replaced (``state_at`` and
  ``verify_secret``): one answer's seconds and peak RSS (up to ``--fold-max`` events);
* the projection's cost: W1 (``IssueToken`` commands) and W3 (a rebuild of the smaller log),
  with the temporal projection and without it (the same code, the projector told to skip
  it), alternately, ``--repeat`` times each: medians and the added cost in percent.

Prints a table; ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

Figures = dict[str, Any]
WORLD = "temporal-world.json"
AUDITED = "acme/audited"
BUSY = "acme/p7"


# -- children: one measurement each, in a fresh process ------------------------------------------


def _peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _p50_ms(call: Any, samples: int) -> float:
    timings = []
    for i in range(samples):
        t0 = time.perf_counter()
        call(i)
        timings.append(time.perf_counter() - t0)
    return statistics.median(timings) * 1e3


def prepare(url: str, size: int, scratch: Path) -> Figures:
    """The synthetic log, rebuilt, then the small world at its end and the moment after it."""
    from bench.logs import write_log
    from tokenledger.domain import commands as c
    from tokenledger.domain.model import Actor, service_account_id
    from tokenledger.domain.permissions import Level
    from tokenledger.projections.rebuild import rebuild
    from tokenledger.service import Ledger
    from tokenledger.store import open_event_store

    operator = Actor.operator("bench")
    store = open_event_store(url, auto_upgrade=True)
    write_log(store, size)
    report = rebuild(store)
    ledger = Ledger(store)
    ledger.execute(c.CreateResource(path=AUDITED), operator)
    secrets: list[str] = []
    token_ids: list[str] = []
    for i in range(5):
        name = f"kept{i}"
        ledger.execute(
            c.CreateServiceAccount(name=name, org="acme", resource=AUDITED, level=Level.WRITE),
            operator,
        )
        for _ in range(4):
            result = ledger.execute(
                c.IssueToken(principal=service_account_id(name, "acme")), operator
            )
            assert result.secret is not None
            assert result.issued is not None
            secrets.append(result.secret)
            token_ids.append(result.issued.token_id)
    user = "auditor@acme.io"
    for command in (
        c.CreateUser(email=user),
        c.AddMember(org="acme", email=user),
        c.SetGrant(principal=user, resource=AUDITED, level=Level.WRITE),
        c.build(c.IssueToken, principal=user, grants=[{"resource": AUDITED, "level": "write"}]),
    ):
        result = ledger.execute(command, operator)
        if result.secret is not None:
            secrets.append(result.secret)
    time.sleep(0.01)
    moment = ledger.now()
    time.sleep(0.01)
    ledger.execute(c.RevokeToken(token_id=token_ids[0]), operator)
    events = ledger.store.head().position
    ledger.close()
    (scratch / WORLD).write_text(json.dumps({"secrets": secrets, "at": moment.isoformat()}))
    return {"events": events, "rebuild_seconds": report.seconds}


def measure(url: str, size: int, scratch: Path, samples: int) -> Figures:
    """p50 of verify --at, list --at and who-can --at, and this process's peak RSS."""
    from datetime import datetime

    from tokenledger.domain.model import Actor, service_account_id
    from tokenledger.domain.permissions import Level
    from tokenledger.service import Ledger
    from tokenledger.store import open_event_store

    operator = Actor.operator("bench")
    world = json.loads((scratch / WORLD).read_text())
    secrets, moment = world["secrets"], datetime.fromisoformat(world["at"])
    ledger = Ledger(open_event_store(url))
    principal = service_account_id("kept1", "acme")
    answers = [ledger.verify_at(s, moment, resource=AUDITED, level=Level.WRITE)[0] for s in secrets]
    assert all(a.active and a.allowed for a in answers), answers  # the revocation came later
    figures: Figures = {"events": ledger.store.head().position}
    figures["verify_at_p50_ms"] = _p50_ms(
        lambda i: ledger.verify_at(
            secrets[i % len(secrets)], moment, resource=AUDITED, level=Level.WRITE
        ),
        samples,
    )
    figures["list_at_p50_ms"] = _p50_ms(
        lambda i: ledger.tokens_of(operator, principal, include_inactive=True, at=moment),
        samples,
    )
    figures["who_can_at_p50_ms"] = _p50_ms(
        lambda i: ledger.who_can(operator, AUDITED, Level.WRITE, at=moment), samples
    )
    found, _ = ledger.who_can(operator, AUDITED, Level.WRITE, at=moment)
    figures["who_can_tokens"] = len(found.tokens)
    figures["rss_before_busy_mib"] = _peak_rss_mib()
    busy, _ = ledger.who_can(operator, BUSY, Level.WRITE, at=moment)
    figures["busy_who_can_tokens"] = len(busy.tokens)
    figures["busy_who_can_p50_ms"] = _p50_ms(
        lambda i: ledger.who_can(operator, BUSY, Level.WRITE, at=moment), max(3, samples // 10)
    )
    ledger.close()
    return figures


def fold(url: str, size: int, scratch: Path) -> Figures:
    """The reference the projection replaced: one answer folded from the log's prefix."""
    from datetime import datetime

    from tokenledger.domain.authority import verify_secret
    from tokenledger.projections.history import state_at
    from tokenledger.store import open_event_store

    world = json.loads((scratch / WORLD).read_text())
    store = open_event_store(url)
    t0 = time.perf_counter()
    state, _ = state_at(store, datetime.fromisoformat(world["at"]))
    verify_secret(state, world["secrets"][0], datetime.fromisoformat(world["at"]))
    return {"fold_verify_at_seconds": time.perf_counter() - t0}


def _projector(with_temporal: bool) -> Any:
    from tokenledger.projections.projector import PROJECTIONS, Projector
    from tokenledger.projections.temporal_handlers import TemporalProjection

    kept = [p for p in PROJECTIONS if with_temporal or not isinstance(p, TemporalProjection)]
    return Projector(kept)


def w1(url: str, size: int, with_temporal: bool) -> Figures:
    """``size`` IssueToken commands, one transaction each: commands/s and p50."""
    from bench.workloads import OPERATOR, _percentile, _setup_account
    from tokenledger.domain import commands as c
    from tokenledger.service import Ledger
    from tokenledger.store import open_event_store

    ledger = Ledger(open_event_store(url, auto_upgrade=True))
    ledger.projector = _projector(with_temporal)
    command = c.IssueToken(principal=_setup_account(ledger))
    latencies = []
    started = time.perf_counter()
    for _ in range(size):
        t0 = time.perf_counter()
        ledger.execute(command, OPERATOR)
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - started
    ledger.close()
    return {"commands_per_second": size / seconds, "p50_ms": _percentile(latencies, 0.5) * 1e3}


def w3(url: str, with_temporal: bool) -> Figures:
    """A rebuild of the log at ``url`` (its projections, the temporal one or not)."""
    from tokenledger.projections.rebuild import rebuild
    from tokenledger.store import open_event_store

    store = open_event_store(url)
    projections = _projector(with_temporal).projections
    report = rebuild(store, projections=projections)
    store.engine.dispose()
    return {"events_per_second": report.events / report.seconds, "seconds": report.seconds}


def child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=["prepare", "measure", "fold", "w1", "w3"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--size", type=int, default=0)
    parser.add_argument("--scratch", type=Path, default=Path("."))
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--without-temporal", action="store_true")
    args = parser.parse_args(argv)
    with_temporal = not args.without_temporal
    if args.step == "prepare":
        figures = prepare(args.url, args.size, args.scratch)
    elif args.step == "measure":
        figures = measure(args.url, args.size, args.scratch, args.samples)
    elif args.step == "fold":
        figures = fold(args.url, args.size, args.scratch)
    elif args.step == "w1":
        figures = w1(args.url, args.size, with_temporal)
    else:
        figures = w3(args.url, with_temporal)
    figures["peak_rss_mib"] = _peak_rss_mib()
    print(json.dumps(figures))


# -- the driver ----------------------------------------------------------------------------------


def _run(step: str, url: str, *extra: str) -> Figures:
    command = [sys.executable, "-m", "bench.temporal", "--child", step, "--url", url, *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["(no output)"]
        print(f"  ! {step} failed: {tail[0]}", file=sys.stderr)
        return {"error": tail[0]}
    figures: Figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _overhead(runs: list[tuple[Figures, Figures]], key: str, higher_is_better: bool) -> Figures:
    with_ = statistics.median(w[key] for w, _ in runs)
    without = statistics.median(o[key] for _, o in runs)
    cost = (without / with_ - 1) if higher_is_better else (with_ / without - 1)
    return {"with": with_, "without": without, "added_percent": cost * 100}


def drive(args: argparse.Namespace) -> Figures:
    from bench.main import database

    results: Figures = {}
    for backend in args.backends.split(","):
        mine: Figures = results.setdefault(backend, {})
        for size in args.sizes:
            print(f"{backend}: {size:,}-event log ...", file=sys.stderr, flush=True)
            with database(backend) as target:
                scratch = ["--scratch", target.scratch]
                sized = ["--size", str(size)]
                prepared = _run("prepare", target.url, *sized, *scratch)
                if "error" in prepared:
                    mine[str(size)] = prepared
                    continue
                figures = _run(
                    "measure", target.url, *sized, *scratch, "--samples", str(args.samples)
                )
                figures["prepare"] = prepared
                if size <= args.fold_max:
                    figures["fold"] = _run("fold", target.url, *sized, *scratch)
                if size == min(args.sizes):
                    runs = []
                    for _ in range(args.repeat):
                        runs.append(
                            (
                                _run("w3", target.url),
                                _run("w3", target.url, "--without-temporal"),
                            )
                        )
                    good = [r for r in runs if "error" not in r[0] and "error" not in r[1]]
                    if good:
                        mine["W3"] = {
                            "events": prepared["events"],
                            **_overhead(good, "events_per_second", higher_is_better=True),
                        }
                mine[str(size)] = figures
        runs = []
        for _ in range(args.repeat):
            pair = []
            for variant in ((), ("--without-temporal",)):
                with database(backend) as target:
                    pair.append(_run("w1", target.url, "--size", str(args.w1_size), *variant))
            runs.append((pair[0], pair[1]))
        good = [r for r in runs if "error" not in r[0] and "error" not in r[1]]
        if good:
            mine["W1"] = {
                "commands": args.w1_size,
                **_overhead(good, "commands_per_second", higher_is_better=True),
            }
    return results


def _print(results: Figures) -> None:
    for backend, figures in results.items():
        print(f"\n{backend}")
        for key, value in figures.items():
            if key in ("W1", "W3"):
                print(
                    f"  {key}: {value['with']:,.0f}/s with, {value['without']:,.0f}/s without:"
                    f" +{value['added_percent']:.1f} % (target ≤ 15 %)"
                )
                continue
            if "error" in value:
                print(f"  {key} events: error {value['error']}")
                continue
            print(
                f"  {value['events']:,} events: verify --at p50 {value['verify_at_p50_ms']:.2f} ms,"
                f" list --at p50 {value['list_at_p50_ms']:.2f} ms,"
                f" who-can --at p50 {value['who_can_at_p50_ms']:.2f} ms (target ≤ 20 ms),"
                f" peak RSS {value['rss_before_busy_mib']:.0f} MiB"
            )
            print(
                f"    busy project: who-can p50 {value['busy_who_can_p50_ms']:.0f} ms for"
                f" {value['busy_who_can_tokens']:,} tokens; peak RSS after it"
                f" {value['peak_rss_mib']:.0f} MiB"
            )
            if "fold" in value and "error" not in value["fold"]:
                fold_figures = value["fold"]
                print(
                    f"    the fold it replaced: {fold_figures['fold_verify_at_seconds']:.2f} s,"
                    f" peak RSS {fold_figures['peak_rss_mib']:.0f} MiB"
                )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[100_000, 1_000_000],
        help="log lengths, comma separated (default 100000,1000000)",
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="W1 and W3 runs of each variant")
    parser.add_argument("--w1-size", type=int, default=2_000)
    parser.add_argument(
        "--fold-max", type=int, default=100_000, help="the reference fold up to this length"
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    results = drive(args)
    _print(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
