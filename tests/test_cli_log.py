"""The command line over the log: exit codes, output shapes, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from helpers import assert_one_line_error, pending, tamper
from tokenledger.cli import cli
from tokenledger.store import EventStore, open_event_store


def run(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", database_url, *args])


@pytest.fixture
def ledger(database_url: str) -> Iterator[EventStore]:
    result = run(database_url, "db", "upgrade")
    assert result.exit_code == 0, result.output
    store = open_event_store(database_url)
    yield store
    store.engine.dispose()


def test_db_upgrade_migrates_once(database_url: str) -> None:
    first = run(database_url, "db", "upgrade", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["from_revision"] is None
    second = run(database_url, "db", "upgrade")
    assert second.exit_code == 0
    assert "already at revision" in second.stdout


def test_postgresql_must_be_upgraded_explicitly(postgres_server: object) -> None:
    url = postgres_server.fresh_schema()  # type: ignore[attr-defined]
    assert_one_line_error(run(url, "log", "verify"), 7, "tokenledger db upgrade")
    assert run(url, "db", "upgrade").exit_code == 0
    assert run(url, "log", "verify").exit_code == 0


def test_sqlite_file_is_created_and_migrated_on_first_use(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "first.db"
    result = run(str(path), "log", "head", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["position"] == 0
    assert path.is_file()


def test_unreachable_or_malformed_databases_give_one_line(tmp_path: Path) -> None:
    assert_one_line_error(
        run("postgresql://postgres@127.0.0.1:1/nothing", "log", "head"), 7, "cannot use"
    )
    assert_one_line_error(run("mysql://x@y/z", "log", "head"), 2, "unsupported database")


def test_log_head_and_verify(ledger: EventStore, database_url: str) -> None:
    ledger.append(pending("a", 3), actor="t")
    head = run(database_url, "log", "head", "--json")
    assert head.exit_code == 0
    saved = json.loads(head.stdout)
    assert saved["position"] == 3
    assert saved["hash"] == ledger.head().hash

    verified = run(database_url, "log", "verify")
    assert verified.exit_code == 0
    assert "chain ok: 3 events" in verified.stdout

    as_json = run(database_url, "log", "verify", "--json")
    assert json.loads(as_json.stdout)["ok"] is True


def test_log_verify_fails_naming_the_position(ledger: EventStore, database_url: str) -> None:
    ledger.append(pending("a", 5), actor="t")
    tamper(ledger.engine, "UPDATE events SET actor = 'mallory' WHERE position = 3")
    assert_one_line_error(run(database_url, "log", "verify"), 6, "position 3")
    report = run(database_url, "log", "verify", "--json")
    assert report.exit_code == 6
    assert json.loads(report.stdout)["first_bad_position"] == 3


def test_log_verify_with_saved_head_detects_truncation(
    ledger: EventStore, database_url: str, tmp_path: Path
) -> None:
    ledger.append(pending("a", 4), actor="t")
    head_file = tmp_path / "head.json"
    head_file.write_text(run(database_url, "log", "head", "--json").stdout)
    assert run(database_url, "log", "verify", "--head", str(head_file)).exit_code == 0
    tamper(ledger.engine, "DELETE FROM events WHERE position = 4")
    assert_one_line_error(
        run(database_url, "log", "verify", "--head", str(head_file)), 6, "truncated"
    )


def test_log_verify_rejects_a_malformed_head_file(
    ledger: EventStore, database_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "head.json"
    bad.write_text('{"position": "x"}')
    assert_one_line_error(run(database_url, "log", "verify", "--head", str(bad)), 2, "head")
    missing = tmp_path / "missing.json"
    assert_one_line_error(run(database_url, "log", "verify", "--head", str(missing)), 2)


def test_events_prints_json_lines(ledger: EventStore, database_url: str) -> None:
    ledger.append(pending("a", 2) + pending("b", 2), actor="operator:x", correlation_id="c-9")
    result = run(database_url, "events")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["position"] for e in lines] == [1, 2, 3, 4]
    assert lines[0]["data"] == {"n": 0}
    assert lines[0]["actor"] == "operator:x"
    assert lines[0]["correlation_id"] == "c-9"
    assert lines[0]["recorded_at"].endswith("Z")
    assert lines[1]["prev_hash"] == lines[0]["hash"]

    from_3 = run(database_url, "events", "--from", "3").stdout.splitlines()
    assert [json.loads(x)["position"] for x in from_3] == [3, 4]
    stream = run(database_url, "events", "--stream", "b", "--limit", "1").stdout.splitlines()
    assert [json.loads(x)["stream_version"] for x in stream] == [1]


def test_events_reports_a_corrupt_payload(ledger: EventStore, database_url: str) -> None:
    ledger.append(pending("a", 3), actor="t")
    tamper(ledger.engine, "UPDATE events SET data = :bad WHERE position = 2", bad=b"{oops")
    result = run(database_url, "events")
    assert_one_line_error(result, 6, "position 2", "corrupt payload")
    assert [json.loads(x)["position"] for x in result.stdout.splitlines()] == [1]


def test_a_dry_run_shows_each_event_as_the_events_command_prints_it(
    ledger: EventStore, database_url: str
) -> None:
    """One shape for a recorded event in JSON: the preview of a command and the line
    ``events`` prints once it ran differ only in what is drawn anew for each append (ids, time,
    and the hash that covers them)."""
    from freezegun import freeze_time

    with freeze_time("2026-06-01T12:00:00Z"):
        previewed = run(database_url, "orgs", "create", "acme", "--dry-run", "--json")
        assert previewed.exit_code == 0, previewed.output
        assert run(database_url, "orgs", "create", "acme").exit_code == 0
    shown = json.loads(previewed.stdout)["events"]
    printed = [json.loads(line) for line in run(database_url, "events").stdout.splitlines()]
    assert [list(event) for event in shown] == [list(line) for line in printed]
    drawn_anew = {"event_id", "command_id", "correlation_id", "hash"}
    for event, line in zip(shown, printed, strict=True):
        assert {k: v for k, v in event.items() if k not in drawn_anew} == {
            k: v for k, v in line.items() if k not in drawn_anew
        }
    assert printed[0]["recorded_at"] == "2026-06-01T12:00:00.000000Z"
