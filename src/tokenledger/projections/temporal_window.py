"""Questions about a window of time, read from the temporal projection: the tokens alive
during it, and the moments within it when a token may have become usable.

A token's answer changes only when an interval it reads begins or ends (its life, a
suspension, its principal's grants, memberships, roles, permission, suspension, active
life) and, between two such moments, can only turn from usable to unusable (an expiry
passes). So it was usable at some moment of a window exactly when it was usable at the
window's start or at one of those moments inside it (``change_moments``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from tokenledger.domain.model import is_role_principal, role_of_principal
from tokenledger.domain.permissions import org_of
from tokenledger.projections.schema import (
    account_suspensions,
    audit_index,
    held_grants,
    held_memberships,
    held_permissions,
    held_roles,
    held_users,
    token_expiries,
    token_grants,
    token_suspensions,
    tokens,
)
from tokenledger.projections.temporal_view import position_on
from tokenledger.store.schema import events

__all__ = ["change_moments", "first_recorded_at", "resource_existed", "tokens_alive_during"]


def first_recorded_at(connection: Connection) -> datetime | None:
    """When the log's first event was recorded (None: the log is empty)."""
    return connection.execute(
        sa.select(events.c.recorded_at).where(events.c.position == 1)
    ).scalar_one_or_none()


def resource_existed(connection: Connection, path: str, first: int, last: int) -> bool:
    """Whether resource ``path`` existed at some position of ``[first, last]``: created at or
    before ``first`` and not deleted since, or created after it up to ``last``; an org's
    root from the org's creation on. Read off the audit index's (subject, position) key,
    which keeps a deleted resource's history where the resources table keeps only those
    that exist now (an org's root is the subject of every event in the org, hence its own
    case)."""
    if "/" not in path:  # an org's root: it exists from the org's creation on, for good
        org_created = connection.execute(
            sa.select(audit_index.c.position)
            .where(
                audit_index.c.subject == path,
                audit_index.c.event_type == "OrgCreated",
                audit_index.c.position <= last,
            )
            .limit(1)
        ).first()
        return org_created is not None
    created, deleted = "ResourceCreated", "ResourceDeleted"
    about = sa.and_(audit_index.c.subject == path, audit_index.c.event_type.in_((created, deleted)))
    standing = connection.execute(
        sa.select(audit_index.c.event_type)
        .where(about, audit_index.c.position <= first)
        .order_by(audit_index.c.position.desc())
        .limit(1)
    ).scalar_one_or_none()
    if standing == created:
        return True
    created_later = connection.execute(
        sa.select(audit_index.c.position)
        .where(
            about,
            audit_index.c.event_type == created,
            audit_index.c.position > first,
            audit_index.c.position <= last,
        )
        .limit(1)
    ).first()
    return created_later is not None


def tokens_alive_during(
    connection: Connection,
    start: datetime,
    end: datetime,
    *,
    principals: Sequence[str] | None = None,
    resources: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """(token id, principal) of the tokens issued by ``end`` and not revoked by ``start``,
    by id: of ``principals`` when given; with ``resources`` (a path and its ancestors), only
    those holding a grant on one of them, or keys of a role of their org (a role key holds
    its role's grants, whatever they were then)."""
    # As positions: ``recorded_at`` never goes backwards along the log, so an event was
    # recorded by a moment exactly when its position is at most the moment's position.
    first, last = position_on(connection, start), position_on(connection, end)
    conditions: list[ColumnElement[bool]] = [
        tokens.c.issued_position <= last,
        sa.or_(tokens.c.revoked_position.is_(None), tokens.c.revoked_position > first),
    ]
    if principals is not None:
        conditions.append(tokens.c.principal.in_(principals))
    if resources is not None:
        holding = sa.select(token_grants.c.token_id).where(token_grants.c.resource.in_(resources))
        org = org_of(resources[0])
        conditions.append(
            sa.or_(
                tokens.c.token_id.in_(holding),
                # ``ORG:ROLE`` (``role_principal``): an index range, as ``below`` in view.py.
                sa.and_(tokens.c.principal >= org + ":", tokens.c.principal < org + ";"),
            )
        )
    rows = connection.execute(
        sa.select(tokens.c.token_id, tokens.c.principal)
        .where(*conditions)
        .order_by(tokens.c.token_id)
    )
    return [(token_id, principal) for token_id, principal in rows]


def change_moments(
    connection: Connection, start: datetime, end: datetime, token_id: str, principal: str
) -> list[datetime]:
    """The moments in ``(start, end]`` when an interval the token's answer reads began or
    ended, in order (a superset of those when it may have become usable)."""
    found: set[datetime] = set(_life_moments(connection, start, end, token_id))
    keyed: list[tuple[sa.Table, ColumnElement[bool]]] = [
        (token_suspensions, token_suspensions.c.token_id == token_id),
        (token_expiries, token_expiries.c.token_id == token_id),
        (held_users, held_users.c.email == principal),
        (held_grants, held_grants.c.principal == principal),
        (held_memberships, held_memberships.c.email == principal),
        (held_permissions, held_permissions.c.account_id == principal),
        (account_suspensions, account_suspensions.c.account_id == principal),
    ]
    if is_role_principal(principal):
        org, role = role_of_principal(principal)
        keyed.append((held_roles, sa.and_(held_roles.c.org == org, held_roles.c.role == role)))
    else:
        # The roles of every org the user belonged to (a superset of those that mattered).
        orgs = sa.select(held_memberships.c.org).where(held_memberships.c.email == principal)
        keyed.append((held_roles, held_roles.c.org.in_(orgs)))
    for table, key in keyed:
        for column in (table.c.from_time, table.c.to_time):
            rows = connection.execute(
                sa.select(column).where(key, column > start, column <= end).distinct()
            )
            found.update(rows.scalars())
    return sorted(found)


def _life_moments(
    connection: Connection, start: datetime, end: datetime, token_id: str
) -> list[datetime]:
    """When the token's issue and first revocation were recorded, those in ``(start, end]``."""
    life = sa.select(tokens.c.issued_position, tokens.c.revoked_position).where(
        tokens.c.token_id == token_id
    )
    row = connection.execute(life).first()
    positions = [p for p in row or () if p is not None]
    if not positions:
        return []
    moments = connection.execute(
        sa.select(events.c.recorded_at).where(
            events.c.position.in_(positions),
            events.c.recorded_at > start,
            events.c.recorded_at <= end,
        )
    )
    return list(moments.scalars())
