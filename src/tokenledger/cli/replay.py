"""``tokenledger replay``: rebuild, check, or reconstruct past state from the log."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from tokenledger.cli.app import EXIT_CODES, CliContext, fail
from tokenledger.cli.common import parse_timestamp
from tokenledger.cli.defaults import DEFAULT_REBUILD_BATCH_SIZE
from tokenledger.cli.output import echo_json
from tokenledger.errors import IntegrityViolation, ValidationError

if TYPE_CHECKING:
    from tokenledger.projections.rebuild import CheckReport, Difference, Progress, RebuildReport
    from tokenledger.store import EventStore

__all__ = ["replay"]


@click.command("replay")
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Rebuild beside the live tables and report every difference (exit 6 on drift).",
)
@click.option(
    "--until-position",
    type=click.IntRange(min=0),
    help="Build the state as it was after this position (needs --into).",
)
@click.option(
    "--until",
    "until_time",
    metavar="TIME",
    help="Build the state as it was at this time, ISO 8601 (needs --into).",
)
@click.option(
    "--into",
    "into_url",
    metavar="URL",
    help="Database to build into (the log up to the bound and its projections); "
    "the live ledger is left untouched.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=100_000),
    default=DEFAULT_REBUILD_BATCH_SIZE,
    show_default=True,
    help="Events per page read from the log.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def replay(
    obj: CliContext,
    check_only: bool,
    until_position: int | None,
    until_time: str | None,
    into_url: str | None,
    batch_size: int,
    as_json: bool,
) -> None:
    """Rebuild every projection from the log and swap the result in atomically."""
    if until_position is not None and until_time is not None:
        raise ValidationError("give --until-position or --until, not both")
    bounded = until_position is not None or until_time is not None
    if bounded and into_url is None:
        raise ValidationError(
            "a past state is built into another database: give --into URL "
            "(the live ledger is never rewound)"
        )
    if check_only and into_url is not None:
        raise ValidationError("--check compares the live tables; it takes no --into")
    from tokenledger.store.chain import ChainBroken

    obj.require_operator("rebuild or check the projections")
    ledger = obj.ledger()
    store = ledger.store
    try:
        report = _replay(
            store, check_only, until_position, until_time, into_url, batch_size, as_json
        )
    except ChainBroken as broken:
        # Every mode checks the chain as it reads the log and stops at a break: nothing built
        # from a log the chain does not vouch for is swapped in, compared or handed on.
        if check_only:
            outcome = "nothing was compared"
        elif into_url is not None:
            outcome = "the target holds no event from the break on"
        else:
            outcome = "the projections were left as they were"
        fail(f"{broken} ({outcome})", EXIT_CODES[IntegrityViolation])
        return
    _print(report, check_only, into_url, as_json)


def _replay(
    store: EventStore,
    check_only: bool,
    until_position: int | None,
    until_time: str | None,
    into_url: str | None,
    batch_size: int,
    as_json: bool,
) -> RebuildReport | CheckReport:
    from tokenledger.projections.history import position_at
    from tokenledger.projections.rebuild import build_into, check, rebuild
    from tokenledger.store import open_event_store

    with _progress(as_json) as progress:
        if check_only:
            report: RebuildReport | CheckReport = check(
                store, batch_size=batch_size, progress=progress
            )
        elif into_url is not None:
            if until_time is not None:
                until_position = position_at(store, parse_timestamp(until_time, "--until"))
            bound = store.head().position if until_position is None else until_position
            target = open_event_store(into_url, auto_upgrade=True)
            try:
                report = build_into(
                    store,
                    target,
                    until_position=bound,
                    batch_size=batch_size,
                    progress=progress,
                )
            finally:
                target.engine.dispose()
        else:
            report = rebuild(store, batch_size=batch_size, progress=progress)
    return report


def _print(
    report: RebuildReport | CheckReport, check_only: bool, into_url: str | None, as_json: bool
) -> None:
    from tokenledger.projections.rebuild import CheckReport

    rate = report.events / report.seconds if report.seconds > 0 else 0.0
    if as_json:
        document: dict[str, Any] = {
            "mode": "check" if check_only else "into" if into_url else "rebuild",
            "events": report.events,
            "position": report.position,
            "seconds": round(report.seconds, 3),
            "events_per_second": round(rate),
        }
        if isinstance(report, CheckReport):
            document["ok"] = report.ok
            document["differences"] = [_difference_dict(d) for d in report.differences]
            document["truncated"] = report.truncated
        echo_json(document)
    elif isinstance(report, CheckReport):
        for difference in report.differences:
            click.echo(_difference_line(difference))
        if report.ok:
            click.echo(
                f"projections match the log: {report.events} events replayed up to position "
                f"{report.position} in {report.seconds:.2f} s"
            )
    elif into_url is not None:
        click.echo(
            f"built the ledger as of position {report.position} into {into_url}: "
            f"{report.events} events in {report.seconds:.2f} s"
        )
    else:
        click.echo(
            f"rebuilt the projections from {report.events} events (up to position "
            f"{report.position}) in {report.seconds:.2f} s ({rate:,.0f} events/s)"
        )
    if isinstance(report, CheckReport) and not report.ok:
        more = " (and more)" if report.truncated else ""
        tree = [d for d in report.differences if d.table == "merkle_nodes"]
        rows = len(report.differences) - len(tree)
        problems = [f"projections differ from the log: {rows} row(s){more}"] if rows else []
        if tree:
            # The tree is the log's own, not a projection: say so, and what mends it.
            problems.append(
                "the stored Merkle tree differs from the log ('tokenledger replay' rebuilds it)"
            )
        message = "; ".join(problems)
        if as_json:
            raise SystemExit(EXIT_CODES[IntegrityViolation])
        fail(message, EXIT_CODES[IntegrityViolation])


def _difference_dict(difference: Difference) -> dict[str, Any]:
    return {
        "table": difference.table,
        "key": list(difference.key),
        "live": list(difference.live) if difference.live is not None else None,
        "rebuilt": list(difference.rebuilt) if difference.rebuilt is not None else None,
    }


def _difference_line(difference: Difference) -> str:
    key = "/".join(str(k) for k in difference.key)
    if difference.live is None:
        return f"{difference.table} {key}: missing from the live table"
    if difference.rebuilt is None:
        return f"{difference.table} {key}: in the live table but not in the log"
    return f"{difference.table} {key}: live {difference.live} != rebuilt {difference.rebuilt}"


@contextmanager
def _progress(quiet: bool) -> Iterator[Progress | None]:
    """A progress bar on a terminal, a plain line per tenth when piped, nothing with --json."""
    if quiet:
        yield None
        return
    if sys.stderr.isatty():
        with click.progressbar(length=1, label="replaying", file=sys.stderr) as bar:

            def on_terminal(done: int, total: int) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)

            yield on_terminal
        return
    shown = {"tenth": -1}

    def plain(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if tenth != shown["tenth"]:
            shown["tenth"] = tenth
            click.echo(f"replayed {done} of {total} events", err=True)

    yield plain
