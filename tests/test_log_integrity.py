"""The log's integrity whatever is stored in it: verification, saved heads, and replays.

Every case runs on SQLite and PostgreSQL. A forger with DDL rights can store anything in
``events``: values of other types than the ledger writes (a payload turned into text, a
number, a NULL, a timestamp that is not a time), or values the driver cannot even read.
Each must be named as a break at its position (exit 6, one line), never a traceback; a
saved head no log could have had must be refused rather than pass any log; and no replay
may build projections from a chain that does not verify.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy.engine import Engine

from helpers import assert_one_line_error, drop_immutability_triggers, pending, tamper
from tokenledger.cli import cli
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.errors import IntegrityViolation, ValidationError
from tokenledger.projections.projector import projection_tables
from tokenledger.projections.rebuild import build_into, check, rebuild
from tokenledger.service import Ledger
from tokenledger.store import GENESIS_HASH, EventStore, Head, open_event_store

OPERATOR = Actor.operator("alice")


def run(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", database_url, *args])


def allow_nulls(engine: Engine) -> None:
    """Let every column of ``events`` hold NULL, as a forger with DDL rights can."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            for column in ("data", "recorded_at", "hash", "actor"):
                conn.exec_driver_sql(f"ALTER TABLE events ALTER COLUMN {column} DROP NOT NULL")
            return
        # SQLite cannot drop a NOT NULL: the table's declaration is rewritten in place.
        conn.exec_driver_sql("PRAGMA writable_schema=ON")
        conn.exec_driver_sql(
            "UPDATE sqlite_master SET sql = replace(sql, 'NOT NULL', 'NULL') "
            "WHERE type = 'table' AND name = 'events'"
        )
        conn.exec_driver_sql("PRAGMA writable_schema=OFF")
    engine.dispose()  # connections that read the old declaration would still enforce it


# -- 1. any stored value: the position is named, never a traceback -----------------------

# (stream id, backend -> (statements, position named, words of the problem)). The events
# are five of one stream, "YWJj": the base64 text of the bytes "abc", so that a BLOB of
# those bytes encodes, in the hashed envelope, exactly like the text it replaced.
STREAM = "YWJj"
TamperCase = dict[str, tuple[list[str], int, str]]
TAMPERED: dict[str, TamperCase] = {
    "payload turned into text by replace()": {
        "sqlite": (
            ["UPDATE events SET data = replace(data, 'n', 'n') WHERE position = 3"],
            3,
            "data holds text",
        ),
        # A column's type changes for every row: the first event breaks.
        "postgresql": (
            ["ALTER TABLE events ALTER COLUMN data TYPE text USING convert_from(data, 'UTF8')"],
            1,
            "data holds text",
        ),
    },
    "numeric payload": {
        "sqlite": (["UPDATE events SET data = 42 WHERE position = 3"], 3, "data holds the number"),
        "postgresql": (
            ["ALTER TABLE events ALTER COLUMN data TYPE bigint USING length(data)"],
            1,
            "data holds the number",
        ),
    },
    "NULL payload": {
        backend: (["UPDATE events SET data = NULL WHERE position = 3"], 3, "data holds NULL")
        for backend in ("sqlite", "postgresql")
    },
    "recorded_at not a time": {
        "sqlite": (
            ["UPDATE events SET recorded_at = 'yesterday' WHERE position = 3"],
            3,
            "recorded_at holds text 'yesterday'",
        ),
        # PostgreSQL stores 'infinity', which the driver refuses to read.
        "postgresql": (
            ["UPDATE events SET recorded_at = 'infinity' WHERE position = 3"],
            3,
            "cannot be read",
        ),
    },
    "recorded_at a number": {
        "sqlite": (
            ["UPDATE events SET recorded_at = 12345 WHERE position = 3"],
            3,
            "recorded_at holds the number 12345",
        ),
        "postgresql": (
            [
                "ALTER TABLE events ALTER COLUMN recorded_at TYPE bigint "
                "USING extract(epoch FROM recorded_at)::bigint"
            ],
            1,
            "recorded_at holds the number",
        ),
    },
    "recorded_at NULL": {
        backend: (
            ["UPDATE events SET recorded_at = NULL WHERE position = 3"],
            3,
            "recorded_at holds NULL",
        )
        for backend in ("sqlite", "postgresql")
    },
    # The same instant in another text form: the old reading accepted it and hashed it the
    # same, but time ranges compare the stored text, so the event would fall out of them.
    "recorded_at in another text form": {
        "sqlite": (
            ["UPDATE events SET recorded_at = replace(recorded_at, ' ', 'T') WHERE position = 3"],
            3,
            "recorded_at holds text",
        ),
    },
    "hash of the wrong type and length": {
        "sqlite": (["UPDATE events SET hash = x'00' WHERE position = 3"], 3, "hash holds 1 bytes"),
        "postgresql": (["UPDATE events SET hash = 'zz' WHERE position = 3"], 3, "hash holds text"),
    },
    "hash NULL": {
        backend: (["UPDATE events SET hash = NULL WHERE position = 3"], 3, "hash holds NULL")
        for backend in ("sqlite", "postgresql")
    },
    # Hashes alike (bytes are encoded as base64 text): only the type shows the forgery.
    "stream id of bytes that encode like the text": {
        "sqlite": (
            ["UPDATE events SET stream_id = x'616263' WHERE position = 3"],
            3,
            "stream_id holds 3 bytes",
        ),
        "postgresql": (
            [
                "ALTER TABLE events ALTER COLUMN stream_id TYPE bytea "
                "USING decode(stream_id, 'base64')"
            ],
            1,
            "stream_id holds 3 bytes",
        ),
    },
    "stream version of text": {
        "sqlite": (
            ["UPDATE events SET stream_version = 'three' WHERE position = 3"],
            3,
            "stream_version holds text 'three'",
        ),
        "postgresql": (
            [
                "ALTER TABLE events DROP CONSTRAINT ck_events_stream_version_positive",
                "ALTER TABLE events ALTER COLUMN stream_version TYPE text",
            ],
            1,
            "stream_version holds text '1'",
        ),
    },
    "text that is not UTF-8": {
        "sqlite": (
            ["UPDATE events SET actor = CAST(x'ff' AS TEXT) WHERE position = 3"],
            3,
            "cannot be read",
        ),
    },
    "actor NULL": {
        backend: (["UPDATE events SET actor = NULL WHERE position = 3"], 3, "actor holds NULL")
        for backend in ("sqlite", "postgresql")
    },
}


@pytest.fixture
def stored(store: EventStore) -> EventStore:
    """A store holding five events of the stream ``STREAM``, its NOT NULLs and triggers gone."""
    store.append(pending(STREAM, 5), actor="t")
    drop_immutability_triggers(store.engine)
    allow_nulls(store.engine)
    return store


def forge(store: EventStore, case: str) -> tuple[int, str]:
    dialect = store.engine.dialect.name
    if dialect not in TAMPERED[case]:
        pytest.skip(f"{dialect} cannot store this")
    statements, position, problem = TAMPERED[case][dialect]
    with store.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    store.engine.dispose()  # PostgreSQL: a column's new type is read by new sessions
    return position, problem


@pytest.mark.parametrize("case", list(TAMPERED))
def test_verify_names_the_position_of_any_stored_value(
    stored: EventStore, database_url: str, case: str
) -> None:
    position, problem = forge(stored, case)

    report = stored.verify_chain(batch_size=2)  # the break is on the second page
    assert not report.ok
    assert report.first_bad_position == position
    assert problem in (report.problem or "")
    assert report.events_checked == position - 1

    assert_one_line_error(
        run(database_url, "log", "verify"), 6, f"chain broken at position {position}", problem
    )
    as_json = run(database_url, "log", "verify", "--json")
    assert as_json.exit_code == 6, as_json.output
    assert json.loads(as_json.stdout)["first_bad_position"] == position
    assert "Traceback" not in as_json.stderr


def test_unreadable_rows_after_a_gap_name_the_gap(stored: EventStore) -> None:
    """The first break is named, even when the driver refuses a later row of the page."""
    with stored.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM events WHERE position = 2")
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("UPDATE events SET actor = CAST(x'ff' AS TEXT) WHERE position = 4")
        else:
            conn.exec_driver_sql("UPDATE events SET recorded_at = 'infinity' WHERE position = 4")
    report = stored.verify_chain()
    assert (report.first_bad_position, report.problem) == (2, "position 2 is missing")


# -- 2. saved heads that no log could have had ------------------------------------------


@pytest.fixture
def ledger_url(database_url: str) -> str:
    assert run(database_url, "db", "upgrade").exit_code == 0
    return database_url


def saved(tmp_path: Path, head: dict[str, Any], name: str = "head.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(head))
    return str(path)


def test_the_empty_logs_head_round_trips(ledger_url: str, tmp_path: Path) -> None:
    """``log head --json`` on an empty log prints position 0 and the genesis hash: a head
    every log extends, so it verifies before and after the log grows."""
    printed = run(ledger_url, "log", "head", "--json")
    assert json.loads(printed.stdout) == {"position": 0, "hash": GENESIS_HASH, "recorded_at": None}
    head_file = tmp_path / "empty.json"
    head_file.write_text(printed.stdout)
    assert run(ledger_url, "log", "verify", "--head", str(head_file)).exit_code == 0
    store = open_event_store(ledger_url)
    try:
        store.append(pending("a", 3), actor="t")
        assert store.verify_chain(expected_head=Head(position=0, hash=GENESIS_HASH)).ok
    finally:
        store.engine.dispose()
    result = run(ledger_url, "log", "verify", "--head", str(head_file))
    assert result.exit_code == 0, result.output
    assert "chain ok: 3 events" in result.stdout


@pytest.mark.parametrize(
    ("head", "problem"),
    [
        ({"position": -1}, "position"),
        ({"position": -(2**40)}, "position"),
        ({"position": 2**63}, "position"),
        ({"position": 0}, "position 0 is the empty log's"),
        ({"position": 0, "hash": GENESIS_HASH, "recorded_at": "2026-01-01T00:00:00Z"}, "no time"),
        ({"position": 2, "hash": GENESIS_HASH}, "empty log's"),
        ({"hash": "ab" * 31}, "64 lowercase hexadecimal"),
        ({"hash": "AB" * 32}, "64 lowercase hexadecimal"),
        ({"hash": "zz" * 32}, "64 lowercase hexadecimal"),
        ({"hash": "ab" * 33}, "64 lowercase hexadecimal"),
        ({"position": "2"}, "Expected `int`"),
        ({"position": 2.0}, "Expected `int`"),
        ({"position": True}, "Expected `int`"),
        ({"hash": None}, "Expected `str`"),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else "",
)
def test_an_impossible_saved_head_is_refused(
    ledger_url: str, tmp_path: Path, head: dict[str, Any], problem: str
) -> None:
    store = open_event_store(ledger_url)
    try:
        store.append(pending("a", 3), actor="t")
        real = store.head()
    finally:
        store.engine.dispose()
    # The real head at position 2 (or the last), with the case's change.
    path = saved(tmp_path, {"position": 3, "hash": real.hash, "recorded_at": None, **head})
    assert_one_line_error(run(ledger_url, "log", "verify", "--head", path), 2, "head", problem)
    assert_one_line_error(run(ledger_url, "log", "verify", "--head", path, "--json"), 2, problem)


def test_the_api_refuses_an_impossible_head(store: EventStore) -> None:
    store.append(pending("a", 3), actor="t")
    real = store.head()
    for impossible in (
        Head(position=-1, hash=real.hash),
        Head(position=0, hash=real.hash),
        Head(position=3, hash=real.hash.upper()),
        Head(position=3, hash=GENESIS_HASH),
    ):
        with pytest.raises(ValidationError, match="impossible"):
            store.verify_chain(expected_head=impossible)


def test_a_possible_head_that_does_not_match_is_a_break(ledger_url: str, tmp_path: Path) -> None:
    """Well formed but not this log's: exit 6, naming where the log departs from it."""
    store = open_event_store(ledger_url)
    try:
        store.append(pending("a", 3), actor="t")
        real = store.head()
    finally:
        store.engine.dispose()
    beyond = saved(tmp_path, {"position": 10**9, "hash": real.hash}, "beyond.json")
    assert_one_line_error(
        run(ledger_url, "log", "verify", "--head", beyond), 6, "position 4", "truncated"
    )
    other = saved(tmp_path, {"position": 2, "hash": "ab" * 32}, "other.json")
    assert_one_line_error(
        run(ledger_url, "log", "verify", "--head", other), 6, "position 2", "rewritten"
    )


# -- 3. replays verify the chain first and refuse a broken one ---------------------------


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    instance = Ledger(open_event_store(database_url, auto_upgrade=True))
    yield instance
    instance.close()


def snapshot(ledger: Ledger) -> dict[str, list[tuple[Any, ...]]]:
    with ledger.store.engine.connect() as connection:
        return {
            table.name: [
                tuple(row)
                for row in connection.execute(sa.select(table).order_by(*table.primary_key.columns))
            ]
            for table in projection_tables()
        }


def history(ledger: Ledger) -> int:
    """A short history; returns the position of the event that names Alice."""
    ledger.execute(c.CreateOrg(org="acme"), OPERATOR)
    ledger.execute(c.CreateResource(path="acme/alpha"), OPERATOR)
    created = ledger.execute(c.CreateUser(email="alice@acme.io", name="Alice"), OPERATOR)
    ledger.execute(c.AddMember(org="acme", email="alice@acme.io", role="member"), OPERATOR)
    ledger.execute(c.CreateResource(path="acme/beta"), OPERATOR)
    return created.records[0].position


def forge_name(ledger: Ledger, position: int) -> None:
    """Rewrite Alice's name in her event's payload, leaving its hash as it was."""
    with ledger.store.engine.connect() as conn:
        data = conn.execute(
            sa.text("SELECT data FROM events WHERE position = :p"), {"p": position}
        ).scalar_one()
    assert b'"Alice"' in data
    tamper(
        ledger.store.engine,
        "UPDATE events SET data = :data WHERE position = :p",
        data=data.replace(b'"Alice"', b'"Mallory"'),
        p=position,
    )


def test_replay_and_check_refuse_a_broken_chain(ledger: Ledger, database_url: str) -> None:
    position = history(ledger)
    live = snapshot(ledger)
    forge_name(ledger, position)
    broken = f"chain broken at position {position}"

    # --check: not a list of differences (the forged name would be one) nor a match.
    checked = run(database_url, "replay", "--check", "--json")
    assert_one_line_error(checked, 6, broken, "nothing was compared")
    assert checked.stdout == ""

    replayed = run(database_url, "replay", "--json")
    assert_one_line_error(replayed, 6, broken, "left as they were")
    assert snapshot(ledger) == live  # the forged name was not swapped in

    # Piped, progress lines may come first; the verdict is the last line.
    result = run(database_url, "replay")
    assert result.exit_code == 6
    assert result.stderr.strip().splitlines()[-1].startswith(f"tokenledger: error: {broken}")
    assert "Traceback" not in result.stderr
    assert "rebuilt" not in result.stdout
    rechecked = run(database_url, "replay", "--check")
    assert rechecked.exit_code == 6
    assert broken in rechecked.stderr
    assert "match" not in rechecked.stdout
    assert snapshot(ledger) == live

    with pytest.raises(IntegrityViolation, match=broken):
        rebuild(ledger.store, batch_size=2)
    with pytest.raises(IntegrityViolation, match=broken):
        check(ledger.store, batch_size=2)
    assert snapshot(ledger) == live


def test_replay_refuses_stored_values_it_cannot_read(ledger: Ledger, database_url: str) -> None:
    position = history(ledger)
    live = snapshot(ledger)
    drop_immutability_triggers(ledger.store.engine)
    value = "'yesterday'" if ledger.store.engine.dialect.name == "sqlite" else "'infinity'"
    with ledger.store.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE events SET recorded_at = {value} WHERE position = {position}")
    for mode in (["replay"], ["replay", "--check"]):
        result = run(database_url, *mode, "--json")
        assert_one_line_error(result, 6, f"chain broken at position {position}")
    assert snapshot(ledger) == live


def test_events_appended_during_a_rebuild_are_verified_too(ledger: Ledger) -> None:
    """The first pass reads without the write lock; what is appended meanwhile is folded under
    it, and checked there too: the chain holds up to the head the swap is made at."""
    history(ledger)
    live_before = snapshot(ledger)
    appended: list[int] = []

    def append_and_forge(done: int, total: int) -> None:
        if appended:
            return
        created = ledger.execute(c.CreateUser(email="bob@acme.io", name="Alice"), OPERATOR)
        appended.append(created.records[0].position)
        forge_name(ledger, appended[0])

    with pytest.raises(IntegrityViolation, match="chain broken at position") as raised:
        rebuild(ledger.store, progress=append_and_forge)
    assert appended
    assert f"position {appended[0]}:" in str(raised.value)
    # The live tables are the ones the inline projections wrote (Bob included), not a rebuild.
    assert len(snapshot(ledger)["users"]) == len(live_before["users"]) + 1


def test_replay_into_refuses_a_broken_chain(ledger: Ledger, tmp_path: Path) -> None:
    position = history(ledger)
    forge_name(ledger, position)
    target = open_event_store(f"sqlite:///{tmp_path / 'past.db'}", auto_upgrade=True)
    try:
        with pytest.raises(IntegrityViolation, match=f"chain broken at position {position}"):
            build_into(ledger.store, target, until_position=ledger.store.head().position)
        assert target.head().position < position
        assert target.verify_chain().ok
    finally:
        target.engine.dispose()


def test_reading_commands_refuse_stored_values_they_cannot_read(
    ledger: Ledger, database_url: str
) -> None:
    """``events``, ``audit``, ``audit explain`` and ``audit export`` over a forged time: one
    line, exit 6, pointing at ``log verify``; never a traceback."""
    history(ledger)
    account = c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level=Level.READ)
    ledger.execute(account, OPERATOR)
    issued = ledger.execute(c.IssueToken(principal="ci@acme.service.tokenledger"), OPERATOR)
    assert issued.issued is not None
    token_id = issued.issued.token_id
    drop_immutability_triggers(ledger.store.engine)
    value = "'yesterday'" if ledger.store.engine.dialect.name == "sqlite" else "'infinity'"
    with ledger.store.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE events SET recorded_at = {value}")
    for args in (
        ["events"],
        ["audit"],
        ["audit", "--subject", "acme"],
        ["audit", "explain", token_id],
        ["audit", "export"],
    ):
        result = run(database_url, *args)
        assert_one_line_error(result, 6, "cannot be read", "log verify")
