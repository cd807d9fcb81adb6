"""The temporal projection: the log folded into intervals of who held what.

Every fact a token's answer depends on (``domain.state.TOKEN_ANSWER_EVENTS``) is kept as
intervals ``[from_position, to_position)`` with the ``recorded_at`` of both ends
(``projections.schema``, ``TEMPORAL_TABLES``): a user's direct grants, memberships, roles'
grants, users' active lives, service accounts' permissions and suspensions, and each token's
later expiries, suspensions and last recorded uses. A token's life itself (the positions of
its issue and revocation) is kept on its ``tokens`` row by the main projection. An event
that changes a fact closes the fact's open interval at its own position and, unless it ends
the fact, opens the next one there. Nothing is ever rewritten otherwise, so the state at
any position is a lookup of the rows whose interval holds it
(``projections.temporal_view``).

Like the other handlers these only state row operations and read nothing. They are
idempotent: a close reaches only an interval opened before the closing event, and an
opening inserts only when absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import singledispatch
from typing import Any

import sqlalchemy as sa

from tokenledger.domain import events as e
from tokenledger.projections.handlers import encode_grants
from tokenledger.projections.schema import (
    TEMPORAL_TABLES,
    account_suspensions,
    held_grants,
    held_memberships,
    held_permissions,
    held_roles,
    held_users,
    token_expiries,
    token_suspensions,
    token_uses,
)
from tokenledger.projections.writes import Writes
from tokenledger.store.records import RecordedEvent

__all__ = ["TEMPORAL_PROJECTION", "TemporalProjection"]

#: The checkpoint name of the temporal projection.
TEMPORAL_PROJECTION = "temporal"


class TemporalProjection:
    """Intervals of every fact a token's answer reads, for questions about a past moment."""

    name = TEMPORAL_PROJECTION

    @property
    def tables(self) -> Sequence[sa.Table]:
        return TEMPORAL_TABLES

    def apply(self, writes: Writes, record: RecordedEvent, event: e.Event) -> None:
        handler = _handle.dispatch(type(event))
        if handler is not _keeps_nothing:  # most events of a rebuild change nothing here
            handler(event, _Interval(writes, record))


class _Interval:
    """Opening and closing intervals at one record's position and time."""

    __slots__ = ("record", "writes")

    def __init__(self, writes: Writes, record: RecordedEvent) -> None:
        self.writes = writes
        self.record = record

    def open(self, table: sa.Table, row: Mapping[str, Any]) -> None:
        self.writes.insert_if_absent(
            table,
            [
                {
                    **row,
                    "from_position": self.record.position,
                    "to_position": None,
                    "from_time": self.record.recorded_at,
                    "to_time": None,
                }
            ],
        )

    def close(self, table: sa.Table, key: Mapping[str, Any], **ended: Any) -> None:
        self.writes.close_interval(
            table,
            key,
            {"to_position": self.record.position, "to_time": self.record.recorded_at, **ended},
        )

    def replace(self, table: sa.Table, key: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        """The fact ``key`` names holds ``values`` from here on."""
        self.close(table, key)
        self.open(table, {**key, **values})


@singledispatch
def _handle(event: e.Event, at: _Interval) -> None:
    """Events that change nothing a token's answer reads keep no interval."""


_keeps_nothing = _handle.dispatch(e.Event)


@_handle.register
def _(event: e.UserCreated, at: _Interval) -> None:
    at.open(held_users, {"email": event.email})


@_handle.register
def _(event: e.UserDisabled, at: _Interval) -> None:
    at.close(held_users, {"email": event.email})


@_handle.register
def _(event: e.GrantSet, at: _Interval) -> None:
    key = {"principal": event.principal, "resource": event.grant.resource}
    if event.grant.level == "none":  # setting none removes the grant
        at.close(held_grants, key)
    else:
        at.replace(held_grants, key, {"level": event.grant.level})


@_handle.register
def _(event: e.GrantRemoved, at: _Interval) -> None:
    at.close(held_grants, {"principal": event.principal, "resource": event.resource})


@_handle.register(e.MemberAdded)
@_handle.register(e.MemberRoleChanged)
def _(event: e.MemberAdded | e.MemberRoleChanged, at: _Interval) -> None:
    at.replace(held_memberships, {"org": event.org, "email": event.email}, {"role": event.role})


@_handle.register
def _(event: e.MemberRemoved, at: _Interval) -> None:
    at.close(held_memberships, {"org": event.org, "email": event.email})


@_handle.register(e.RoleCreated)
@_handle.register(e.RolePolicyAdded)
@_handle.register(e.RolePolicyRemoved)
def _(event: e.RoleCreated | e.RolePolicyAdded | e.RolePolicyRemoved, at: _Interval) -> None:
    key = {"org": event.org, "role": event.role}
    at.replace(held_roles, key, {"grants": encode_grants(event.grants)})


@_handle.register
def _(event: e.RoleDeleted, at: _Interval) -> None:
    at.close(held_roles, {"org": event.org, "role": event.role})


@_handle.register(e.ServiceAccountCreated)
@_handle.register(e.ServiceAccountPermissionMoved)
@_handle.register(e.ServiceAccountPermissionLevelChanged)
def _(
    event: e.ServiceAccountCreated
    | e.ServiceAccountPermissionMoved
    | e.ServiceAccountPermissionLevelChanged,
    at: _Interval,
) -> None:
    permission = {"resource": event.permission.resource, "level": event.permission.level}
    at.replace(held_permissions, {"account_id": event.account_id}, permission)


@_handle.register
def _(event: e.ServiceAccountDeleted, at: _Interval) -> None:
    at.close(held_permissions, {"account_id": event.account_id})


@_handle.register
def _(event: e.ServiceAccountDisabled, at: _Interval) -> None:
    key = {"account_id": event.account_id}
    at.replace(account_suspensions, key, {"disabled_by": event.disabled_by})


@_handle.register
def _(event: e.ServiceAccountEnabled, at: _Interval) -> None:
    at.close(account_suspensions, {"account_id": event.account_id})


@_handle.register(e.TokenRotated)
@_handle.register(e.TokenExpiryShortened)
def _(event: e.TokenRotated | e.TokenExpiryShortened, at: _Interval) -> None:
    at.replace(token_expiries, {"token_id": event.token_id}, {"expires_at": event.expires_at})


@_handle.register
def _(event: e.TokenDisabled, at: _Interval) -> None:
    suspension = {"disabled_by": event.disabled_by, "disabled_cause": event.cause}
    at.replace(token_suspensions, {"token_id": event.token_id}, suspension)


@_handle.register
def _(event: e.TokenEnabled, at: _Interval) -> None:
    at.close(token_suspensions, {"token_id": event.token_id})


@_handle.register
def _(event: e.TokenUsed, at: _Interval) -> None:
    if event.token_id is not None:
        key = {"token_id": event.token_id}
        at.replace(token_uses, key, {"last_used_at": event.last_used_at})
