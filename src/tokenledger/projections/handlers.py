"""Folding one event into the projection tables.

Each handler is a small function of ``(connection, record, event)`` that
writes what the event says, and nothing else: cascades are events of their
own (design decision 6), so no handler infers one. Timestamps of the ledger's
own doing (``created_at``, ``disabled_at``, ``revoked_at``) are the record's
``recorded_at``; a token's ``issued_at`` and ``expires_at`` are the event's.

Handlers are idempotent, so a replay can safely re-apply events that are
already folded in:

* creations insert only when the row is absent (re-applying ``TokenIssued``
  does not bring a revoked token back);
* "set" events overwrite with the event's values;
* first-time facts (a revocation, a user's disabling) are written only if not
  yet recorded, so the first one keeps its time and reason;
* deletions of absent rows do nothing.

Re-applying a run of events in log order therefore leaves the tables as they
were.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import singledispatch
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from tokenledger.domain.events import (
    ClientCredentialIssued,
    ClientCredentialRevoked,
    Event,
    GrantRemoved,
    GrantSet,
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    OrgCreated,
    ResourceCreated,
    ResourceDeleted,
    RoleCreated,
    ServiceAccountCreated,
    ServiceAccountDeleted,
    ServiceAccountPermissionLevelChanged,
    ServiceAccountPermissionMoved,
    TokenIssued,
    TokenRevoked,
    UserCreated,
    UserDisabled,
)
from tokenledger.domain.permissions import Grant, Level, parent_of
from tokenledger.errors import StorageError
from tokenledger.projections.schema import (
    client_credentials,
    memberships,
    orgs,
    resources,
    roles,
    service_accounts,
    token_grants,
    tokens,
    user_grants,
    users,
)
from tokenledger.store.records import RecordedEvent

__all__ = [
    "ORG_RESOURCE_KIND",
    "apply_event",
    "encode_grants",
    "handled_event_types",
    "insert_if_absent",
    "upsert",
]

#: The kind of the root resource every org has (its path is the org's name).
ORG_RESOURCE_KIND = "org"

_encoder = msgspec.json.Encoder()


def encode_grants(grants: Sequence[Grant]) -> str:
    """The stored form of a grant list: msgspec JSON text of ``tuple[Grant, ...]``."""
    return _encoder.encode(tuple(grants)).decode("utf-8")


def apply_event(connection: Connection, record: RecordedEvent, event: Event) -> None:
    """Fold ``event`` (stored as ``record``) into the projection tables on ``connection``.

    Takes any ``Event`` so that callers holding ``list[Event]`` need no cast;
    an event class outside the handled union raises ``TypeError``.
    """
    _handle(event, connection, record)


def handled_event_types() -> frozenset[type[Event]]:
    """Every event class with a handler (a test checks this covers the whole union)."""
    return frozenset(cls for cls in _handle.registry if cls is not object)


# -- dialect-neutral statements -------------------------------------------------


def _insert(connection: Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which knows ``ON CONFLICT`` (SQLite and PostgreSQL only)."""
    name = connection.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise StorageError(f"projections support SQLite and PostgreSQL, not {name!r}")


def _key_columns(table: sa.Table) -> list[str]:
    return [column.name for column in table.primary_key.columns]


def insert_if_absent(
    connection: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]
) -> None:
    if not rows:
        return
    statement = _insert(connection, table).on_conflict_do_nothing(
        index_elements=_key_columns(table)
    )
    connection.execute(statement, list(rows))


def upsert(connection: Connection, table: sa.Table, row: Mapping[str, Any]) -> None:
    """Insert ``row``, or overwrite the non-key columns of the row with its primary key."""
    keys = _key_columns(table)
    statement = _insert(connection, table).values(dict(row))
    statement = statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: statement.excluded[name] for name in row if name not in keys},
    )
    connection.execute(statement)


# -- the handlers -----------------------------------------------------------------


@singledispatch
def _handle(event: Event, connection: Connection, record: RecordedEvent) -> None:
    # A new event type without a handler would silently leave the projections
    # behind the log; fail the command's transaction instead.
    raise TypeError(f"no projection handler for {type(event).__name__}")


@_handle.register
def _org_created(event: OrgCreated, connection: Connection, record: RecordedEvent) -> None:
    insert_if_absent(connection, orgs, [{"org": event.org, "created_at": record.recorded_at}])
    _insert_resource(connection, event.org, ORG_RESOURCE_KIND, record)


@_handle.register
def _user_created(event: UserCreated, connection: Connection, record: RecordedEvent) -> None:
    row = {
        "email": event.email,
        "name": event.name,
        "disabled": False,
        "disabled_at": None,
        "created_at": record.recorded_at,
    }
    insert_if_absent(connection, users, [row])


@_handle.register
def _user_disabled(event: UserDisabled, connection: Connection, record: RecordedEvent) -> None:
    connection.execute(
        sa.update(users)
        .where(users.c.email == event.email, sa.not_(users.c.disabled))
        .values(disabled=True, disabled_at=record.recorded_at)
    )


@_handle.register
def _member_added(event: MemberAdded, connection: Connection, record: RecordedEvent) -> None:
    row = {"org": event.org, "email": event.email, "role": event.role}
    insert_if_absent(connection, memberships, [row])


@_handle.register
def _member_role_changed(
    event: MemberRoleChanged, connection: Connection, record: RecordedEvent
) -> None:
    connection.execute(
        sa.update(memberships)
        .where(memberships.c.org == event.org, memberships.c.email == event.email)
        .values(role=event.role)
    )


@_handle.register
def _member_removed(event: MemberRemoved, connection: Connection, record: RecordedEvent) -> None:
    connection.execute(
        sa.delete(memberships).where(
            memberships.c.org == event.org, memberships.c.email == event.email
        )
    )


@_handle.register
def _resource_created(
    event: ResourceCreated, connection: Connection, record: RecordedEvent
) -> None:
    _insert_resource(connection, event.path, event.kind, record)


def _insert_resource(connection: Connection, path: str, kind: str, record: RecordedEvent) -> None:
    segments = path.split("/")
    row = {
        "path": path,
        "org": segments[0],
        "parent": parent_of(path),
        "kind": kind,
        "depth": len(segments),
        "created_at": record.recorded_at,
    }
    insert_if_absent(connection, resources, [row])


@_handle.register
def _resource_deleted(
    event: ResourceDeleted, connection: Connection, record: RecordedEvent
) -> None:
    connection.execute(sa.delete(resources).where(resources.c.path == event.path))


@_handle.register
def _grant_set(event: GrantSet, connection: Connection, record: RecordedEvent) -> None:
    grant = event.grant
    if grant.rank is Level.NONE:
        # Setting "none" is how a grant is taken away; no row means no grant.
        _delete_user_grant(connection, event.principal, grant.resource)
        return
    row = {"email": event.principal, "resource": grant.resource, "level": grant.level}
    upsert(connection, user_grants, row)


@_handle.register
def _grant_removed(event: GrantRemoved, connection: Connection, record: RecordedEvent) -> None:
    _delete_user_grant(connection, event.principal, event.resource)


def _delete_user_grant(connection: Connection, email: str, resource: str) -> None:
    connection.execute(
        sa.delete(user_grants).where(
            user_grants.c.email == email, user_grants.c.resource == resource
        )
    )


@_handle.register
def _role_created(event: RoleCreated, connection: Connection, record: RecordedEvent) -> None:
    row = {"org": event.org, "role": event.role, "grants": encode_grants(event.grants)}
    insert_if_absent(connection, roles, [row])


@_handle.register
def _service_account_created(
    event: ServiceAccountCreated, connection: Connection, record: RecordedEvent
) -> None:
    row = {
        "account_id": event.account_id,
        "org": event.org,
        "name": event.name,
        "resource": event.permission.resource,
        "level": event.permission.level,
        "deleted": False,
        "created_at": record.recorded_at,
    }
    insert_if_absent(connection, service_accounts, [row])


@_handle.register
def _service_account_moved(
    event: ServiceAccountPermissionMoved, connection: Connection, record: RecordedEvent
) -> None:
    _set_service_account_permission(connection, event.account_id, event.permission)


@_handle.register
def _service_account_level_changed(
    event: ServiceAccountPermissionLevelChanged, connection: Connection, record: RecordedEvent
) -> None:
    _set_service_account_permission(connection, event.account_id, event.permission)


def _set_service_account_permission(connection: Connection, account_id: str, grant: Grant) -> None:
    connection.execute(
        sa.update(service_accounts)
        .where(service_accounts.c.account_id == account_id)
        .values(resource=grant.resource, level=grant.level)
    )


@_handle.register
def _service_account_deleted(
    event: ServiceAccountDeleted, connection: Connection, record: RecordedEvent
) -> None:
    connection.execute(
        sa.update(service_accounts)
        .where(service_accounts.c.account_id == event.account_id)
        .values(deleted=True)
    )


@_handle.register
def _token_issued(event: TokenIssued, connection: Connection, record: RecordedEvent) -> None:
    row = {
        "token_id": event.token_id,
        "secret_hash": event.secret_hash,
        "principal": event.principal,
        "kind": event.kind,
        "name": event.name,
        "grants": encode_grants(event.grants),
        "issued_at": event.issued_at,
        "expires_at": event.expires_at,
        "parent_id": event.parent_id,
        "revoked_at": None,
        "revoked_reason": None,
    }
    insert_if_absent(connection, tokens, [row])
    # A set: the same grant listed twice is one row (the key is the whole row).
    grant_rows = [
        {"token_id": event.token_id, "resource": grant.resource, "level": grant.level}
        for grant in sorted(set(event.grants))
    ]
    insert_if_absent(connection, token_grants, grant_rows)


@_handle.register
def _token_revoked(event: TokenRevoked, connection: Connection, record: RecordedEvent) -> None:
    # The first revocation is the one that counts: its time and reason stay.
    connection.execute(
        sa.update(tokens)
        .where(tokens.c.token_id == event.token_id, tokens.c.revoked_at.is_(None))
        .values(revoked_at=record.recorded_at, revoked_reason=event.reason)
    )


@_handle.register
def _client_credential_issued(
    event: ClientCredentialIssued, connection: Connection, record: RecordedEvent
) -> None:
    row = {
        "client_id": event.client_id,
        "account_id": event.account_id,
        "secret_hash": event.secret_hash,
        "name": event.name,
        "issued_at": event.issued_at,
        "expires_at": event.expires_at,
        "revoked_at": None,
        "revoked_reason": None,
    }
    insert_if_absent(connection, client_credentials, [row])


@_handle.register
def _client_credential_revoked(
    event: ClientCredentialRevoked, connection: Connection, record: RecordedEvent
) -> None:
    # The first revocation is the one that counts, as for tokens.
    connection.execute(
        sa.update(client_credentials)
        .where(
            client_credentials.c.client_id == event.client_id,
            client_credentials.c.revoked_at.is_(None),
        )
        .values(revoked_at=record.recorded_at, revoked_reason=event.reason)
    )
