"""The current state, read from the projection tables.

``SqlLedgerView`` answers the ``LedgerView`` questions decisions ask (inside a
command's write transaction, so a decision sees every event committed before
it), plus the listings the service and the CLI show. It only reads.

"On ``path`` or below it" is always ``resource = path`` or the index range
``path + '/' <= resource < path + '0'``: bytewise, exactly the strings that
start with ``path + '/'`` (``'0'`` follows ``'/'``), so ``acme/alpha`` is below
``acme`` but not below ``acme/alph``. The identifier columns compare bytewise
on both backends (see ``projections.schema``), which this relies on.

Listings are ordered by their natural key (bytewise, which is Python's string
order), the same orders as the in-memory ``domain.state.LedgerState``, so that
a decision emits the same events in the same order against either view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.domain.model import (
    PREDEFINED_ROLES,
    ClientCredentialView,
    ResourceView,
    ServiceAccountView,
    TokenView,
    UserView,
    predefined_role_grants,
)
from tokenledger.domain.permissions import Grant
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

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from tokenledger.domain.model import LedgerView

__all__ = ["SqlLedgerView", "at_or_below", "below"]

_grants_decoder = msgspec.json.Decoder(tuple[Grant, ...])


def below(column: ColumnElement[str], path: str) -> ColumnElement[bool]:
    """``column`` names a strict descendant of ``path`` (an index range, no LIKE)."""
    return sa.and_(column >= path + "/", column < path + "0")


def at_or_below(column: ColumnElement[str], path: str) -> ColumnElement[bool]:
    """``column`` is ``path`` or names one of its descendants."""
    return sa.or_(column == path, below(column, path))


def _decode_grants(stored: str) -> tuple[Grant, ...]:
    return _grants_decoder.decode(stored)


def _user(row: Any) -> UserView:
    return UserView(
        email=row.email, name=row.name, disabled=bool(row.disabled), created_at=row.created_at
    )


def _resource(row: Any) -> ResourceView:
    return ResourceView(path=row.path, kind=row.kind, created_at=row.created_at)


def _service_account(row: Any) -> ServiceAccountView:
    return ServiceAccountView(
        account_id=row.account_id,
        org=row.org,
        name=row.name,
        permission=Grant(row.resource, row.level),
        deleted=bool(row.deleted),
        created_at=row.created_at,
    )


def _token(row: Any) -> TokenView:
    return TokenView(
        token_id=row.token_id,
        principal=row.principal,
        kind=row.kind,
        grants=_decode_grants(row.grants),
        name=row.name,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        parent_id=row.parent_id,
        revoked_at=row.revoked_at,
        revoked_reason=row.revoked_reason,
    )


def _client_credential(row: Any) -> ClientCredentialView:
    return ClientCredentialView(
        client_id=row.client_id,
        account_id=row.account_id,
        name=row.name,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        revoked_reason=row.revoked_reason,
    )


class SqlLedgerView:
    """``LedgerView`` over the projection tables, on the caller's connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    # -- orgs and users ----------------------------------------------------------

    def org_exists(self, org: str) -> bool:
        query = sa.select(orgs.c.org).where(orgs.c.org == org)
        return self.connection.execute(query).first() is not None

    def list_orgs(self) -> list[str]:
        return list(self.connection.execute(sa.select(orgs.c.org).order_by(orgs.c.org)).scalars())

    def user(self, email: str) -> UserView | None:
        row = self.connection.execute(sa.select(users).where(users.c.email == email)).first()
        return None if row is None else _user(row)

    def list_users(self, org: str | None = None) -> list[UserView]:
        """Every user, or the members of ``org``; by email."""
        query = sa.select(users).order_by(users.c.email)
        if org is not None:
            query = query.join(memberships, memberships.c.email == users.c.email).where(
                memberships.c.org == org
            )
        return [_user(row) for row in self.connection.execute(query)]

    def memberships(self, email: str) -> dict[str, str]:
        query = (
            sa.select(memberships.c.org, memberships.c.role)
            .where(memberships.c.email == email)
            .order_by(memberships.c.org)
        )
        return dict(self.connection.execute(query).all())

    def members(self, org: str) -> dict[str, str]:
        query = (
            sa.select(memberships.c.email, memberships.c.role)
            .where(memberships.c.org == org)
            .order_by(memberships.c.email)
        )
        return dict(self.connection.execute(query).all())

    # -- resources ---------------------------------------------------------------

    def resource(self, path: str) -> ResourceView | None:
        query = sa.select(resources).where(resources.c.path == path)
        row = self.connection.execute(query).first()
        return None if row is None else _resource(row)

    def resources_under(self, path: str) -> list[ResourceView]:
        """Descendants of ``path`` (not ``path`` itself), by path."""
        query = sa.select(resources).where(below(resources.c.path, path)).order_by(resources.c.path)
        return [_resource(row) for row in self.connection.execute(query)]

    def list_resources(self, prefix: str | None = None) -> list[ResourceView]:
        """Every resource, or ``prefix`` and everything below it; by path."""
        query = sa.select(resources).order_by(resources.c.path)
        if prefix is not None:
            query = query.where(at_or_below(resources.c.path, prefix))
        return [_resource(row) for row in self.connection.execute(query)]

    # -- roles and grants --------------------------------------------------------

    def role(self, org: str, name: str) -> tuple[Grant, ...] | None:
        """A role's grants; predefined roles win over a custom role of the same name."""
        if not self.org_exists(org):
            return None
        predefined = predefined_role_grants(org, name)
        if predefined is not None:
            return predefined
        query = sa.select(roles.c.grants).where(roles.c.org == org, roles.c.role == name)
        stored = self.connection.execute(query).scalar_one_or_none()
        return None if stored is None else _decode_grants(stored)

    def roles_of(self, org: str) -> dict[str, tuple[Grant, ...]]:
        """Every role of ``org`` (predefined and custom), by name; empty for an unknown org."""
        if not self.org_exists(org):
            return {}
        query = sa.select(roles.c.role, roles.c.grants).where(roles.c.org == org)
        found = {name: _decode_grants(stored) for name, stored in self.connection.execute(query)}
        for name in PREDEFINED_ROLES:
            grants = predefined_role_grants(org, name)
            assert grants is not None
            found[name] = grants
        return dict(sorted(found.items()))

    def direct_grants(self, email: str) -> list[Grant]:
        """The user's own grants (not those of their roles), by resource."""
        query = (
            sa.select(user_grants.c.resource, user_grants.c.level)
            .where(user_grants.c.email == email)
            .order_by(user_grants.c.resource)
        )
        return [Grant(resource, level) for resource, level in self.connection.execute(query)]

    def user_grants(self, email: str) -> list[Grant]:
        """The same as :meth:`direct_grants` (the CLI's name for it)."""
        return self.direct_grants(email)

    def direct_grants_under(self, path: str) -> list[tuple[str, Grant]]:
        """(email, grant) for every direct user grant on ``path`` or below it."""
        query = (
            sa.select(user_grants.c.email, user_grants.c.resource, user_grants.c.level)
            .where(at_or_below(user_grants.c.resource, path))
            .order_by(user_grants.c.email, user_grants.c.resource)
        )
        return [
            (email, Grant(resource, level))
            for email, resource, level in self.connection.execute(query)
        ]

    # -- service accounts --------------------------------------------------------

    def service_account(self, account_id: str) -> ServiceAccountView | None:
        query = sa.select(service_accounts).where(service_accounts.c.account_id == account_id)
        row = self.connection.execute(query).first()
        return None if row is None else _service_account(row)

    def service_accounts_under(self, path: str) -> list[ServiceAccountView]:
        """Service accounts (not deleted) whose permission lies on ``path`` or below it."""
        query = (
            sa.select(service_accounts)
            .where(
                at_or_below(service_accounts.c.resource, path),
                sa.not_(service_accounts.c.deleted),
            )
            .order_by(service_accounts.c.account_id)
        )
        return [_service_account(row) for row in self.connection.execute(query)]

    def service_accounts(
        self, org: str | None = None, include_deleted: bool = False
    ) -> list[ServiceAccountView]:
        """Service accounts of every org or of ``org``, deleted ones on request; by id."""
        query = sa.select(service_accounts).order_by(service_accounts.c.account_id)
        if org is not None:
            query = query.where(service_accounts.c.org == org)
        if not include_deleted:
            query = query.where(sa.not_(service_accounts.c.deleted))
        return [_service_account(row) for row in self.connection.execute(query)]

    # -- tokens ------------------------------------------------------------------

    def token(self, token_id: str) -> TokenView | None:
        return self._one_token(tokens.c.token_id == token_id)

    def token_by_secret_hash(self, secret_hash: str) -> TokenView | None:
        """The token whose secret hashes to ``secret_hash`` (hex SHA-256), revoked or not."""
        return self._one_token(tokens.c.secret_hash == secret_hash)

    def tokens_of(self, principal: str) -> list[TokenView]:
        """Every token of the principal, revoked and expired ones included; by id."""
        return self._tokens(tokens.c.principal == principal)

    def child_tokens(self, token_id: str) -> list[TokenView]:
        """Tokens derived directly from ``token_id``; by id."""
        return self._tokens(tokens.c.parent_id == token_id)

    def tokens_with_grant_under(self, path: str) -> list[TokenView]:
        """Unrevoked tokens (expired ones included) with a grant on ``path`` or below it."""
        with_grant = sa.select(token_grants.c.token_id).where(
            at_or_below(token_grants.c.resource, path)
        )
        return self._tokens(tokens.c.token_id.in_(with_grant), tokens.c.revoked_at.is_(None))

    # -- client credentials ---------------------------------------------------------

    def client_credential(self, client_id: str) -> ClientCredentialView | None:
        query = sa.select(client_credentials).where(client_credentials.c.client_id == client_id)
        row = self.connection.execute(query).first()
        return None if row is None else _client_credential(row)

    def client_credential_with_hash(
        self, client_id: str
    ) -> tuple[ClientCredentialView, str] | None:
        """The credential and its secret's stored hash, to check a presented secret against."""
        query = sa.select(client_credentials).where(client_credentials.c.client_id == client_id)
        row = self.connection.execute(query).first()
        return None if row is None else (_client_credential(row), row.secret_hash)

    def client_credential_by_secret_hash(self, secret_hash: str) -> ClientCredentialView | None:
        query = sa.select(client_credentials).where(client_credentials.c.secret_hash == secret_hash)
        row = self.connection.execute(query).first()
        return None if row is None else _client_credential(row)

    def client_credentials_of(self, account_id: str) -> list[ClientCredentialView]:
        """Every client credential of the account, revoked ones included; by client id."""
        query = (
            sa.select(client_credentials)
            .where(client_credentials.c.account_id == account_id)
            .order_by(client_credentials.c.client_id)
        )
        return [_client_credential(row) for row in self.connection.execute(query)]

    def _one_token(self, condition: ColumnElement[bool]) -> TokenView | None:
        row = self.connection.execute(sa.select(tokens).where(condition)).first()
        return None if row is None else _token(row)

    def _tokens(self, *conditions: ColumnElement[bool]) -> list[TokenView]:
        query = sa.select(tokens).where(*conditions).order_by(tokens.c.token_id)
        return [_token(row) for row in self.connection.execute(query)]


if TYPE_CHECKING:
    # mypy checks here that SqlLedgerView implements every LedgerView question.
    def _implements_ledger_view(view: SqlLedgerView) -> LedgerView:
        return view
