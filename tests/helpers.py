"""Helpers shared by tests (importable from worker processes too)."""

from __future__ import annotations

import sqlalchemy as sa
from click.testing import Result
from sqlalchemy.engine import Engine

from tokenledger.store import PendingEvent, open_event_store


def pending(stream_id: str, n: int = 1, event_type: str = "ThingHappened") -> list[PendingEvent]:
    return [
        PendingEvent(stream_id=stream_id, event_type=event_type, data=b'{"n":%d}' % i)
        for i in range(n)
    ]


def drop_immutability_triggers(engine: Engine) -> None:
    """What an attacker with DDL rights would do first; tests use it to tamper."""
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER events_refuse_update")
            conn.exec_driver_sql("DROP TRIGGER events_refuse_delete")
        else:
            conn.exec_driver_sql("DROP TRIGGER events_refuse_update_delete ON events")
            conn.exec_driver_sql("DROP TRIGGER events_refuse_truncate ON events")


def tamper(engine: Engine, statement: str, **params: object) -> None:
    drop_immutability_triggers(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def append_worker(database_url: str, worker: int, count: int) -> None:
    """Append ``count`` single-event transactions to this worker's own stream."""
    store = open_event_store(database_url, auto_upgrade=False)
    try:
        for i in range(count):
            store.append(
                [PendingEvent(stream_id=f"w{worker}", event_type="Counted", data=b'{"i":%d}' % i)],
                actor=f"worker{worker}",
            )
    finally:
        store.engine.dispose()


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    """A refused CLI command: the category's exit code and one line on stderr, no traceback."""
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tokenledger: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.stderr
