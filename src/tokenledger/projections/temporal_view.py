"""The ledger as it stood at a past position, read from the temporal projection.

``TemporalView`` answers what a token's answer reads (``domain.authority``: ``standing``,
``judge_token``, ``verify_secret``, ``as_listed``) as of one position, each by an indexed
lookup of the intervals that hold it (``projections.temporal_handlers``): the work and the
memory of a question are those of the principal and tokens it is about, never the log's
length. The facts that never change once recorded (a token's secret hash, kind, grants and
parent; an account's org and name; an org's creation) are read from the current tables.

It gives the same answers as the reference fold of the log's prefix
(``projections.history.state_at``); the property tests hold it to that.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from tokenledger.clock import ensure_utc
from tokenledger.domain.model import (
    PREDEFINED_ROLES,
    ServiceAccountView,
    TokenView,
    UserView,
    is_service_account_id,
    predefined_role_grants,
)
from tokenledger.domain.permissions import Grant
from tokenledger.projections.schema import (
    account_suspensions,
    held_grants,
    held_memberships,
    held_permissions,
    held_roles,
    held_users,
    orgs,
    service_accounts,
    token_expiries,
    token_suspensions,
    token_uses,
    tokens,
    users,
)
from tokenledger.store import EventStore
from tokenledger.store.schema import events

__all__ = ["TemporalView", "holds", "position_on", "view_at", "view_on"]

_grants_decoder = msgspec.json.Decoder(tuple[Grant, ...])
#: Bound on the values of one "IN (...)" list.
_IN_CHUNK = 500


def holds(table: sa.Table, position: int) -> ColumnElement[bool]:
    """The rows of a table of intervals whose interval holds ``position``."""
    return sa.and_(
        table.c.from_position <= position,
        sa.or_(table.c.to_position.is_(None), table.c.to_position > position),
    )


@dataclass(frozen=True, slots=True)
class TemporalView:
    """What a token's answer reads, as it stood at ``position`` (recorded at or before
    ``moment``, the last such one)."""

    connection: Connection
    position: int
    moment: datetime
    _orgs: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)
    # What ``read_ahead`` read for many principals at once, answered from here after.
    _ahead: dict[tuple[str, str], Any] = field(default_factory=dict, compare=False, repr=False)

    def read_ahead(self, principals: Sequence[str]) -> None:
        """Read in a few statements what a principal's standing reads of each of
        ``principals`` (``domain.authority.standing_paths``), for the questions that follow:
        who-can asks it of every candidate, one by one."""
        accounts = sorted(p for p in principals if is_service_account_id(p))
        emails = sorted(p for p in principals if not is_service_account_id(p) and "@" in p)
        for start in range(0, max(len(accounts), len(emails)), _IN_CHUNK):
            self._read_accounts_ahead(accounts[start : start + _IN_CHUNK])
            self._read_users_ahead(emails[start : start + _IN_CHUNK])

    def _read_accounts_ahead(self, accounts: Sequence[str]) -> None:
        if not accounts:
            return
        latest: dict[str, Any] = {}
        for row in self.connection.execute(
            self._account_query(service_accounts.c.account_id.in_(accounts))
        ):
            latest.setdefault(row[0], row)  # newest interval first
        for account_id in accounts:
            newest = latest.get(account_id)
            self._ahead[("account", account_id)] = None if newest is None else self._account(newest)

    def _read_users_ahead(self, emails: Sequence[str]) -> None:
        if not emails:
            return
        found = {row[0]: row for row in self.connection.execute(self._user_query(emails))}
        grants: dict[str, list[Grant]] = {email: [] for email in emails}
        for principal, resource, level in self.connection.execute(
            sa.select(held_grants.c.principal, held_grants.c.resource, held_grants.c.level).where(
                held_grants.c.principal.in_(emails), holds(held_grants, self.position)
            )
        ):
            grants[principal].append(Grant(resource, level))
        roles: dict[str, dict[str, str]] = {email: {} for email in emails}
        for email, org, role in self.connection.execute(
            sa.select(held_memberships.c.email, held_memberships.c.org, held_memberships.c.role)
            .where(held_memberships.c.email.in_(emails), holds(held_memberships, self.position))
            .order_by(held_memberships.c.email, held_memberships.c.org)
        ):
            roles[email][org] = role
        for email in emails:
            row = found.get(email)
            self._ahead[("user", email)] = None if row is None else self._user(row)
            self._ahead[("grants", email)] = sorted(grants[email])
            self._ahead[("memberships", email)] = roles[email]

    # -- principals ---------------------------------------------------------------------------

    def org_exists(self, org: str) -> bool:
        # Orgs are never removed, and ``recorded_at`` never goes backwards along the log. Kept:
        # every role of every candidate of ``who_can`` asks it of the same org.
        known = self._orgs.get(org)
        if known is None:
            found = self.connection.execute(
                sa.select(orgs.c.org).where(orgs.c.org == org, orgs.c.created_at <= self.moment)
            ).first()
            known = self._orgs[org] = found is not None
        return known

    def user(self, email: str) -> UserView | None:
        if ("user", email) in self._ahead:
            return self._ahead[("user", email)]  # type: ignore[no-any-return]
        row = self.connection.execute(self._user_query([email])).first()
        return None if row is None else self._user(row)

    def _user_query(self, emails: Sequence[str]) -> sa.Select[Any]:
        return (
            sa.select(
                users.c.email,
                users.c.name,
                users.c.created_at,
                users.c.account_id,
                held_users.c.to_position,
            )
            .join(held_users, held_users.c.email == users.c.email)
            .where(users.c.email.in_(emails), held_users.c.from_position <= self.position)
        )

    def _user(self, row: Any) -> UserView:
        email, name, created_at, account_id, ended = row
        return UserView(
            email=email,
            name=name,
            disabled=ended is not None and ended <= self.position,
            created_at=created_at,
            account_id=account_id,
        )

    def direct_grants(self, email: str) -> Sequence[Grant]:
        if ("grants", email) in self._ahead:
            return self._ahead[("grants", email)]  # type: ignore[no-any-return]
        rows = self.connection.execute(
            sa.select(held_grants.c.resource, held_grants.c.level).where(
                held_grants.c.principal == email, holds(held_grants, self.position)
            )
        )
        return sorted(Grant(resource, level) for resource, level in rows)

    def memberships(self, email: str) -> dict[str, str]:
        if ("memberships", email) in self._ahead:
            return dict(self._ahead[("memberships", email)])
        rows = self.connection.execute(
            sa.select(held_memberships.c.org, held_memberships.c.role).where(
                held_memberships.c.email == email, holds(held_memberships, self.position)
            )
        )
        return dict(sorted((org, role) for org, role in rows))

    def role(self, org: str, name: str) -> tuple[Grant, ...] | None:
        if not self.org_exists(org):
            return None
        predefined = predefined_role_grants(org, name)
        if predefined is not None:
            return predefined
        if ("roles", org) in self._ahead:  # read by ``roles_of``
            return self._ahead[("roles", org)].get(name)  # type: ignore[no-any-return]
        stored = self.connection.execute(
            sa.select(held_roles.c.grants).where(
                held_roles.c.org == org,
                held_roles.c.role == name,
                holds(held_roles, self.position),
            )
        ).scalar_one_or_none()
        return None if stored is None else _grants_decoder.decode(stored)

    def service_account(self, account_id: str) -> ServiceAccountView | None:
        if ("account", account_id) in self._ahead:
            return self._ahead[("account", account_id)]  # type: ignore[no-any-return]
        query = self._account_query(service_accounts.c.account_id == account_id).limit(1)
        row = self.connection.execute(query).first()
        return None if row is None else self._account(row)

    def _account_query(self, which: ColumnElement[bool]) -> sa.Select[Any]:
        """Each account's permissions up to the position, newest first (the newest is open
        while it lives, closed once it was deleted; none when the account was created later),
        with its suspension then."""
        suspension = account_suspensions
        return (
            sa.select(
                service_accounts.c.account_id,
                service_accounts.c.org,
                service_accounts.c.name,
                service_accounts.c.created_at,
                held_permissions.c.resource,
                held_permissions.c.level,
                held_permissions.c.to_position,
                suspension.c.from_time,
                suspension.c.disabled_by,
            )
            .join(held_permissions, held_permissions.c.account_id == service_accounts.c.account_id)
            .outerjoin(
                suspension,
                sa.and_(
                    suspension.c.account_id == service_accounts.c.account_id,
                    holds(suspension, self.position),
                ),
            )
            .where(which, held_permissions.c.from_position <= self.position)
            .order_by(service_accounts.c.account_id, held_permissions.c.from_position.desc())
        )

    def _account(self, row: Any) -> ServiceAccountView:
        account_id, org, name, created_at, resource, level, ended, disabled_at, disabled_by = row
        return ServiceAccountView(
            account_id=account_id,
            org=org,
            name=name,
            permission=Grant(resource, level),
            deleted=ended is not None and ended <= self.position,
            created_at=created_at,
            disabled_at=disabled_at,
            disabled_by=disabled_by,
        )

    # -- who could hold a level on a resource (``domain.who_can``) ------------------------------

    def grant_holders(self, resources: Sequence[str]) -> Sequence[str]:
        rows = self.connection.execute(
            sa.select(held_grants.c.principal)
            .where(held_grants.c.resource.in_(resources), holds(held_grants, self.position))
            .distinct()
        )
        return sorted(rows.scalars())

    def members(self, org: str) -> dict[str, str]:
        rows = self.connection.execute(
            sa.select(held_memberships.c.email, held_memberships.c.role).where(
                held_memberships.c.org == org, holds(held_memberships, self.position)
            )
        )
        return dict(sorted((email, role) for email, role in rows))

    def accounts_on(self, resources: Sequence[str]) -> Sequence[str]:
        rows = self.connection.execute(
            sa.select(held_permissions.c.account_id).where(
                held_permissions.c.resource.in_(resources), holds(held_permissions, self.position)
            )
        )
        return sorted(rows.scalars())

    def roles_of(self, org: str) -> dict[str, tuple[Grant, ...]]:
        if not self.org_exists(org):
            return {}
        rows = self.connection.execute(
            sa.select(held_roles.c.role, held_roles.c.grants).where(
                held_roles.c.org == org, holds(held_roles, self.position)
            )
        )
        found = {name: _grants_decoder.decode(grants) for name, grants in rows}
        self._ahead[("roles", org)] = dict(found)
        for name in PREDEFINED_ROLES:
            grants = predefined_role_grants(org, name)
            assert grants is not None  # a predefined role exists with its org
            found[name] = grants
        return dict(sorted(found.items()))

    # -- tokens -----------------------------------------------------------------------------

    def token(self, token_id: str) -> TokenView | None:
        found = self._tokens(tokens.c.token_id == token_id)
        return found[0] if found else None

    def token_by_secret_hash(self, secret_hash: str) -> TokenView | None:
        found = self._tokens(tokens.c.secret_hash == secret_hash)
        return found[0] if found else None

    def tokens_of(self, principal: str) -> Sequence[TokenView]:
        return self.tokens_of_any([principal])

    def tokens_of_any(self, principals: Iterable[str]) -> Sequence[TokenView]:
        """The tokens of every principal named, by id."""
        # Their ids first, off the tokens table's principal index, then the tokens by id: a
        # join filtered on the principal lets PostgreSQL's planner hash whole tables of
        # intervals where a few index lookups do.
        ids = self.connection.execute(
            sa.select(tokens.c.token_id).where(tokens.c.principal.in_(sorted(set(principals))))
        ).scalars()
        ordered = sorted(ids)
        found: list[TokenView] = []
        for start in range(0, len(ordered), _IN_CHUNK):
            chunk = ordered[start : start + _IN_CHUNK]
            found.extend(self._tokens(tokens.c.token_id.in_(chunk)))
        return found

    def _tokens(self, condition: ColumnElement[bool]) -> list[TokenView]:
        """The tokens issued up to the position that ``condition`` selects, as they stood
        then, by id."""
        expiry, suspension, use = token_expiries, token_suspensions, token_uses
        query = (
            sa.select(
                tokens.c.token_id,
                tokens.c.principal,
                tokens.c.kind,
                tokens.c.name,
                tokens.c.grants,
                tokens.c.issued_at,
                tokens.c.parent_id,
                tokens.c.issued_expires_at,
                tokens.c.revoked_position,
                tokens.c.revoked_at,
                tokens.c.revoked_reason,
                expiry.c.expires_at.label("later_expiry"),
                suspension.c.from_time.label("disabled_at"),
                suspension.c.disabled_by,
                suspension.c.disabled_cause,
                use.c.last_used_at,
            )
            .select_from(tokens)
            .outerjoin(expiry, self._holding_for_token(expiry))
            .outerjoin(suspension, self._holding_for_token(suspension))
            .outerjoin(use, self._holding_for_token(use))
            .where(condition, tokens.c.issued_position <= self.position)
            .order_by(tokens.c.token_id)
        )
        return [self._token(row) for row in self.connection.execute(query)]

    def _holding_for_token(self, table: sa.Table) -> ColumnElement[bool]:
        # A join on the table's key and the position: one index lookup per token.
        return sa.and_(table.c.token_id == tokens.c.token_id, holds(table, self.position))

    def _token(self, row: Any) -> TokenView:
        (
            token_id,
            principal,
            kind,
            name,
            grants,
            issued_at,
            parent_id,
            issued_expiry,
            ended,
            ended_at,
            reason,
            later_expiry,
            disabled_at,
            disabled_by,
            disabled_cause,
            last_used_at,
        ) = row
        revoked = ended is not None and ended <= self.position
        return TokenView(
            token_id=token_id,
            principal=principal,
            kind=kind,
            grants=_grants_decoder.decode(grants),
            name=name,
            issued_at=issued_at,
            expires_at=later_expiry if later_expiry is not None else issued_expiry,
            parent_id=parent_id,
            revoked_at=ended_at if revoked else None,
            revoked_reason=reason if revoked else None,
            disabled_at=disabled_at,
            disabled_by=disabled_by,
            disabled_cause=disabled_cause,
            last_used_at=last_used_at,
        )


@contextmanager
def view_at(store: EventStore, moment: datetime) -> Iterator[TemporalView]:
    """The ledger as it stood at ``moment``: at the last position recorded at or before it
    (0, nothing at all, when the log starts later)."""
    with store.engine.connect() as connection:
        yield view_on(connection, moment)


def view_on(connection: Connection, moment: datetime) -> TemporalView:
    """``view_at`` on a connection of the caller's."""
    moment = ensure_utc(moment)
    return TemporalView(connection, position_on(connection, moment), moment)


def position_on(connection: Connection, moment: datetime) -> int:
    """The last position recorded at or before ``moment`` (0: the log starts later)."""
    # Read backwards off the log's recorded_at index (SQLite's ends in the position: one
    # entry; PostgreSQL's sorts the events sharing that time, one transaction's):
    # ``max(position)`` would read every earlier entry.
    position = connection.execute(
        sa.select(events.c.position)
        .where(events.c.recorded_at <= ensure_utc(moment))
        .order_by(events.c.recorded_at.desc(), events.c.position.desc())
        .limit(1)
    ).scalar_one_or_none()
    return int(position or 0)
