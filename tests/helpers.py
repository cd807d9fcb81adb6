"""Helpers shared by tests (importable from worker processes too)."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import msgspec
import sqlalchemy as sa
from click.testing import CliRunner, Result
from sqlalchemy.engine import Connection, Engine

from tokenledger.cli import cli
from tokenledger.domain.events import TokenIssued
from tokenledger.domain.permissions import Grant
from tokenledger.domain.state import LedgerState, fold
from tokenledger.projections import SqlLedgerView
from tokenledger.projections.schema import (
    checkpoints,
    memberships,
    roles,
    token_grants,
    tokens,
    user_grants,
)
from tokenledger.service import Ledger
from tokenledger.store import PendingEvent, RecordedEvent, open_event_store
from tokenledger.store.mapper import decode_event
from tokenledger.store.schema import events as events_table

roles_decoder = msgspec.json.Decoder(tuple[Grant, ...])


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


# -- projections versus the log ---------------------------------------------------------------


def read_log(connection: Connection) -> list[RecordedEvent]:
    """Every event of the log, in order, read on ``connection``."""
    columns = [events_table.c[name] for name in RecordedEvent.__struct_fields__]
    query = sa.select(*columns).order_by(events_table.c.position)
    return [RecordedEvent(*row) for row in connection.execute(query)]


def fold_records(records: Sequence[RecordedEvent]) -> LedgerState:
    """The reference in-memory fold (``domain.state``) of ``records``."""
    return fold((decode_event(record), record.recorded_at) for record in records)


def fold_log(ledger: Ledger) -> LedgerState:
    with ledger.store.engine.connect() as connection:
        return fold_records(read_log(connection))


def assert_projections_match_log(ledger: Ledger) -> LedgerState:
    """The live SQL projections hold exactly what a fresh fold of the whole log gives.

    "Rebuild equals live": users, orgs, memberships, resources, roles, user grants, service
    accounts, tokens (with their grant rows and secret hashes) and client credentials, read
    through ``SqlLedgerView`` and the tables, against ``domain.state.fold`` of every event read
    back from the log. Runs under the ledger's write lock, so the log and the tables are one
    consistent snapshot even while other processes write. Also checks that the positions are
    gap-free and the projections' checkpoint is the head. Returns the folded state.
    """
    with ledger.store.transaction(actor="test:compare") as tx:
        connection = tx.connection
        records = read_log(connection)
        assert [r.position for r in records] == list(range(1, len(records) + 1))
        state = fold_records(records)
        view = SqlLedgerView(connection)
        head = records[-1].position if records else 0
        checkpoint = connection.execute(
            sa.select(checkpoints.c.position).where(checkpoints.c.name == "ledger")
        ).scalar_one_or_none()
        assert (checkpoint or 0) == head, f"checkpoint {checkpoint} != head {head}"

        assert view.list_orgs() == sorted(state.orgs)
        assert view.list_users() == [state.users[e] for e in sorted(state.users)]
        for account_id in sorted(state.emails_by_account_id):
            assert view.user_by_account_id(account_id) == state.user_by_account_id(account_id)
        live_memberships = {tuple(row) for row in connection.execute(sa.select(memberships))}
        folded_memberships = {
            (org, email, role)
            for org, members in state.memberships_by_org.items()
            for email, role in members.items()
        }
        assert live_memberships == folded_memberships
        assert view.list_resources() == [state.resources[p] for p in sorted(state.resources)]
        live_roles = {
            (org, role): roles_decoder.decode(grants)
            for org, role, grants in connection.execute(
                sa.select(roles.c.org, roles.c.role, roles.c.grants)
            )
        }
        assert live_roles == state.roles
        live_grants = {tuple(row) for row in connection.execute(sa.select(user_grants))}
        folded_grants = {
            (email, g.resource, g.level)
            for email, grants in state.user_grants.items()
            for g in grants.values()
        }
        assert live_grants == folded_grants
        assert view.service_accounts(include_deleted=True) == [
            state.accounts[a] for a in sorted(state.accounts)
        ]

        principals = sorted({t.principal for t in state.tokens.values()})
        live_tokens = {t.token_id: t for p in principals for t in view.tokens_of(p)}
        token_count = connection.execute(sa.select(sa.func.count()).select_from(tokens)).scalar()
        assert token_count == len(state.tokens)
        assert live_tokens == state.tokens
        live_token_grants = {tuple(row) for row in connection.execute(sa.select(token_grants))}
        folded_token_grants = {
            (t.token_id, g.resource, g.level) for t in state.tokens.values() for g in t.grants
        }
        assert live_token_grants == folded_token_grants
        issued_hashes = {
            event.token_id: event.secret_hash
            for event in (decode_event(r) for r in records if r.event_type == "TokenIssued")
            if isinstance(event, TokenIssued)
        }
        live_hashes = dict(
            connection.execute(sa.select(tokens.c.token_id, tokens.c.secret_hash)).all()
        )
        assert live_hashes == issued_hashes

        credentials = getattr(state, "credentials", None)
        if credentials is not None and hasattr(view, "client_credentials_of"):
            accounts = sorted({c.account_id for c in credentials.values()})
            live_credentials = {
                c.client_id: c for a in accounts for c in view.client_credentials_of(a)
            }
            assert live_credentials == credentials

        for org in state.orgs:
            assert view.identity_provider(org) == state.providers.get(org)
        users = sorted({s.principal for s in state.sessions.values()})
        live_sessions = {s.session_id: s for u in users for s in view.sessions_of(u)}
        assert live_sessions == state.sessions
        for refresh_hash, session_id in state.session_ids_by_refresh_hash.items():
            found = view.session_by_refresh_hash(refresh_hash)
            assert found is not None
            assert found.session_id == session_id
        trusting = sorted({t.account_id for t in state.trusts.values()})
        live_trusts = {t.trust_id: t for a in trusting for t in view.issuer_trusts_of(a)}
        assert live_trusts == state.trusts

        endpoints = getattr(state, "endpoints", None)
        if endpoints is not None:
            for endpoint_id, endpoint in endpoints.items():
                assert view.endpoint(endpoint_id) == endpoint
            assert view.live_endpoints() == state.live_endpoints()
            holders = sorted(
                {a for a, _ in state.trusted_endpoints}
                | {c.account_id for c in state.s3_credentials.values()}
            )
            for account in holders:
                assert view.trusted_endpoints_of(account) == state.trusted_endpoints_of(account)
                assert view.s3_credentials_of(account) == state.s3_credentials_of(account)
            for endpoint_id in endpoints:
                assert view.accounts_trusting(endpoint_id) == state.accounts_trusting(endpoint_id)
                assert view.s3_credentials_at(endpoint_id) == state.s3_credentials_at(endpoint_id)

        for rotated_id, successor_id in getattr(state, "successors", {}).items():
            assert view.successor_of(rotated_id) == successor_id
            assert view.predecessor_of(successor_id) == rotated_id
        for org in getattr(state, "policies", {}):
            assert view.org_policy(org) == state.org_policy(org)
        for org in state.orgs:
            assert (view.org_policy(org) is None) == (org not in getattr(state, "policies", {}))
        folded_webhooks = getattr(state, "webhooks", None)
        if folded_webhooks is not None:
            for webhook_id, webhook in folded_webhooks.items():
                assert view.webhook(webhook_id) == webhook
            for org in state.orgs:
                assert view.webhooks_of(org) == state.webhooks_of(org)
    return state


def head_position(ledger: Ledger) -> int:
    return ledger.store.head().position


# -- the command line -----------------------------------------------------------------------

TOKEN_ENV = "TOKENLEDGER_TOKEN"


def cli_run(
    url: str, *args: str, token: str | None = None, stdin: str | bytes | None = None
) -> Result:
    """Invoke ``tokenledger --db URL ARGS`` in-process; ``token`` sets TOKENLEDGER_TOKEN."""
    return CliRunner().invoke(cli, ["--db", url, *args], env={TOKEN_ENV: token}, input=stdin)


def cli_json(url: str, *args: str, token: str | None = None, stdin: str | None = None) -> Any:
    """Invoke with ``--json``; expect success and one JSON document on stdout."""
    result = cli_run(url, *args, "--json", token=token, stdin=stdin)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def cli_head(url: str) -> int:
    position = cli_json(url, "log", "head")["position"]
    assert isinstance(position, int)
    return position


def rebuild_worker(database_url: str, started: Any) -> None:
    """Run a rebuild that signals after its first page, then blocks until killed."""
    from tokenledger.projections.rebuild import rebuild

    store = open_event_store(database_url, auto_upgrade=False)

    def progress(done: int, total: int) -> None:
        started.set()
        threading.Event().wait()  # hold the rebuild midway until the test kills the process

    rebuild(store, batch_size=5, progress=progress)
