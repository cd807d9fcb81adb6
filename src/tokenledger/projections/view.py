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

import functools
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
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
from tokenledger.projections.endpoint_view import EndpointViews
from tokenledger.projections.login_view import LoginViews
from tokenledger.projections.policy_view import PolicyViews
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
from tokenledger.projections.webhook_view import WebhookViews
from tokenledger.store.driver import DriverStatement

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from tokenledger.domain.model import LedgerView
    from tokenledger.domain.token_filter import TokenFilter

__all__ = ["SqlLedgerView", "at_or_below", "below"]

_grants_decoder = msgspec.json.Decoder(tuple[Grant, ...])
# Bound on the values in one "IN (...)" list.
_IN_CHUNK = 500
# From this many tokens, ``child_tokens`` first reads which tokens are parents at all.
_MANY_PARENTS = 10 * _IN_CHUNK


def below(column: ColumnElement[str], path: str) -> ColumnElement[bool]:
    """``column`` names a strict descendant of ``path`` (an index range, no LIKE)."""
    return sa.and_(column >= path + "/", column < path + "0")


def at_or_below(column: ColumnElement[str], path: str) -> ColumnElement[bool]:
    """``column`` is ``path`` or names one of its descendants."""
    return sa.or_(column == path, below(column, path))


@functools.lru_cache(maxsize=4096)
def _decode_grants(stored: str) -> tuple[Grant, ...]:
    # Kept: an account's tokens mostly hold the same grants, and a listing or a revocation
    # by filter reads thousands of them (the decoded tuple is immutable, so it is shared).
    return _grants_decoder.decode(stored)


# Rows are unpacked in their table's column order: the tuples of a ``DriverStatement``
# and SQLAlchemy's rows alike.


def _user(row: Any) -> UserView:
    email, name, disabled, _disabled_at, created_at, account_id = row
    return UserView(
        email=email,
        name=name,
        disabled=bool(disabled),
        created_at=created_at,
        account_id=account_id,
    )


def _resource(row: Any) -> ResourceView:
    path, _org, _parent, kind, _depth, created_at, license, data_class = row
    return ResourceView(
        path=path, kind=kind, created_at=created_at, license=license, data_class=data_class
    )


def _service_account(row: Any) -> ServiceAccountView:
    account_id, org, name, resource, level, deleted, created_at, disabled_at, disabled_by = row
    return ServiceAccountView(
        account_id=account_id,
        org=org,
        name=name,
        permission=Grant(resource, level),
        deleted=bool(deleted),
        created_at=created_at,
        disabled_at=disabled_at,
        disabled_by=disabled_by,
    )


def _token(row: Any) -> TokenView:
    (
        token_id,
        _secret_hash,
        principal,
        kind,
        name,
        grants,
        issued_at,
        expires_at,
        parent_id,
        revoked_at,
        revoked_reason,
        disabled_at,
        disabled_by,
        disabled_cause,
        last_used_at,
    ) = row
    return TokenView(
        token_id=token_id,
        principal=principal,
        kind=kind,
        grants=_decode_grants(grants),
        name=name,
        issued_at=issued_at,
        expires_at=expires_at,
        parent_id=parent_id,
        revoked_at=revoked_at,
        revoked_reason=revoked_reason,
        disabled_at=disabled_at,
        disabled_by=disabled_by,
        disabled_cause=disabled_cause,
        last_used_at=last_used_at,
    )


def _client_credential(row: Any) -> ClientCredentialView:
    (
        client_id,
        account_id,
        _secret_hash,
        name,
        issued_at,
        expires_at,
        revoked_at,
        revoked_reason,
        disabled_at,
        disabled_by,
        last_used_at,
    ) = row
    return ClientCredentialView(
        client_id=client_id,
        account_id=account_id,
        name=name,
        issued_at=issued_at,
        expires_at=expires_at,
        revoked_at=revoked_at,
        revoked_reason=revoked_reason,
        disabled_at=disabled_at,
        disabled_by=disabled_by,
        last_used_at=last_used_at,
    )


def _by_key(table: sa.Table | Sequence[sa.Column[Any]], **where: sa.Column[Any]) -> DriverStatement:
    """``SELECT * FROM table WHERE column = :name ...`` (or the columns given), run on the
    driver's cursor."""
    selected = (table,) if isinstance(table, sa.Table) else tuple(table)
    return DriverStatement(
        sa.select(*selected).where(
            *(column == sa.bindparam(name) for name, column in where.items())
        )
    )


# What a ``TokenView`` is built of (``_token``): the tokens table but for the token's life in
# the log, which only questions about the past read (``projections.temporal_view``).
_TOKEN_VIEW_COLUMNS = [
    column
    for column in tokens.columns
    if column.name not in ("issued_position", "revoked_position", "issued_expires_at")
]


# The lookups decisions and verifications make on every call (see ``store.driver``).
_ORG = DriverStatement(sa.select(orgs.c.org).where(orgs.c.org == sa.bindparam("org")))
_USER = _by_key(users, email=users.c.email)
_USER_BY_ACCOUNT_ID = _by_key(users, account_id=users.c.account_id)
_MEMBERSHIPS = DriverStatement(
    sa.select(memberships.c.org, memberships.c.role)
    .where(memberships.c.email == sa.bindparam("email"))
    .order_by(memberships.c.org)
)
_RESOURCE = _by_key(resources, path=resources.c.path)
_ROLE = DriverStatement(
    sa.select(roles.c.grants).where(
        roles.c.org == sa.bindparam("org"), roles.c.role == sa.bindparam("role")
    )
)
_DIRECT_GRANTS = DriverStatement(
    sa.select(user_grants.c.resource, user_grants.c.level)
    .where(user_grants.c.email == sa.bindparam("email"))
    .order_by(user_grants.c.resource)
)
_SERVICE_ACCOUNT = _by_key(service_accounts, account_id=service_accounts.c.account_id)
_TOKEN = _by_key(_TOKEN_VIEW_COLUMNS, token_id=tokens.c.token_id)
_TOKEN_BY_HASH = _by_key(_TOKEN_VIEW_COLUMNS, secret_hash=tokens.c.secret_hash)
_TOKENS_OF = DriverStatement(
    sa.select(*_TOKEN_VIEW_COLUMNS)
    .where(tokens.c.principal == sa.bindparam("principal"))
    .order_by(tokens.c.token_id)
)
# What a token's answer reads of it: every column but its last use, which no answer needs
# (and which SQLite would parse on each verification).
_ANSWERED_COLUMNS = [column for column in _TOKEN_VIEW_COLUMNS if column.name != "last_used_at"]
_TOKEN_COLUMNS = len(_ANSWERED_COLUMNS)
_LAST_USED_AT = [column.name for column in _TOKEN_VIEW_COLUMNS].index("last_used_at")
# ``token_candidates``' statements, one per set of criteria given (by their bind names).
_CANDIDATES: dict[frozenset[str], DriverStatement] = {}


def _candidates_statement(binds: frozenset[str]) -> DriverStatement:
    found = _CANDIDATES.get(binds)
    if found is not None:
        return found
    bind = sa.bindparam
    conditions: list[ColumnElement[bool]] = [
        tokens.c.revoked_at.is_(None),
        sa.or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > bind("now")),
    ]
    if "principal" in binds:
        conditions.append(tokens.c.principal == bind("principal"))
    if "issued_before" in binds:
        conditions.append(tokens.c.issued_at < bind("issued_before"))
    if "expires_by" in binds:
        conditions.append(tokens.c.expires_at <= bind("expires_by"))
    if "unused_before" in binds:
        last_active = sa.func.coalesce(tokens.c.last_used_at, tokens.c.issued_at)
        conditions.append(last_active < bind("unused_before"))
    query = sa.select(*_TOKEN_VIEW_COLUMNS).where(*conditions).order_by(tokens.c.token_id)
    # Planned for the values given each time: how selective a criterion is varies.
    found = _CANDIDATES[binds] = DriverStatement(query, prepare=False)
    return found


# A token and, when its principal is a service account that exists and is not deleted, that
# account's permission and suspension (NULL otherwise): all a verification of such a token
# reads.
_TOKEN_AND_PERMISSION_BY_HASH = DriverStatement(
    sa.select(
        *_ANSWERED_COLUMNS,
        service_accounts.c.resource,
        service_accounts.c.level,
        service_accounts.c.disabled_at,
    )
    .select_from(
        tokens.outerjoin(
            service_accounts,
            sa.and_(
                service_accounts.c.account_id == tokens.c.principal,
                sa.not_(service_accounts.c.deleted),
            ),
        )
    )
    .where(tokens.c.secret_hash == sa.bindparam("secret_hash"))
)
_CLIENT_CREDENTIAL = _by_key(client_credentials, client_id=client_credentials.c.client_id)
_CLIENT_CREDENTIAL_BY_HASH = _by_key(
    client_credentials, secret_hash=client_credentials.c.secret_hash
)


class SqlLedgerView(LoginViews, EndpointViews, PolicyViews, WebhookViews):
    """``LedgerView`` over the projection tables, on the caller's connection (the questions
    about logging in are answered by ``LoginViews``, those about the data plane by
    ``EndpointViews``, those about orgs' token policies by ``PolicyViews``, those about
    webhooks by ``WebhookViews``)."""

    def __init__(self, connection: Connection, *, remember: bool = False) -> None:
        """``remember``: keep each service account and user looked up for the view's
        lifetime: for a short read-only snapshot, where a verification would otherwise ask
        for its principal twice, or a command's decision, which reads under the write lock
        before anything is written."""
        self.connection = connection
        self._remembered: dict[tuple[str, str], Any] | None = {} if remember else None

    # -- orgs and users ----------------------------------------------------------

    def org_exists(self, org: str) -> bool:
        return _ORG.first(self.connection, {"org": org}) is not None

    def list_orgs(self) -> list[str]:
        return list(self.connection.execute(sa.select(orgs.c.org).order_by(orgs.c.org)).scalars())

    def user(self, email: str) -> UserView | None:
        found: UserView | None = self._remember("user", email, self._user)
        return found

    def _user(self, email: str) -> UserView | None:
        row = _USER.first(self.connection, {"email": email})
        return None if row is None else _user(row)

    def user_by_account_id(self, account_id: str) -> UserView | None:
        row = _USER_BY_ACCOUNT_ID.first(self.connection, {"account_id": account_id})
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
        return dict(_MEMBERSHIPS.all(self.connection, {"email": email}))

    def members(self, org: str) -> dict[str, str]:
        query = (
            sa.select(memberships.c.email, memberships.c.role)
            .where(memberships.c.org == org)
            .order_by(memberships.c.email)
        )
        return dict(self.connection.execute(query).all())

    # -- resources ---------------------------------------------------------------

    def resource(self, path: str) -> ResourceView | None:
        row = _RESOURCE.first(self.connection, {"path": path})
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
        stored = _ROLE.scalar(self.connection, {"org": org, "role": name})
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
        rows = _DIRECT_GRANTS.all(self.connection, {"email": email})
        return [Grant(resource, level) for resource, level in rows]

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
        found: ServiceAccountView | None = self._remember(
            "service_account", account_id, self._service_account
        )
        return found

    def _service_account(self, account_id: str) -> ServiceAccountView | None:
        row = _SERVICE_ACCOUNT.first(self.connection, {"account_id": account_id})
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
        row = _TOKEN.first(self.connection, {"token_id": token_id})
        return None if row is None else _token(row)

    def token_by_secret_hash(self, secret_hash: str) -> TokenView | None:
        """The token whose secret hashes to ``secret_hash`` (hex SHA-256), revoked or not."""
        row = _TOKEN_BY_HASH.first(self.connection, {"secret_hash": secret_hash})
        return None if row is None else _token(row)

    def token_and_permission(self, secret_hash: str) -> tuple[TokenView, Grant | None, bool] | None:
        """The token whose secret hashes to ``secret_hash``, and, when its principal is a
        service account that exists and is not deleted, that account's permission (None
        otherwise) and whether it is suspended; read by one statement, which is one snapshot
        on every database. For an answer: the token's last use is not read (``last_used_at``
        is None)."""
        row = _TOKEN_AND_PERMISSION_BY_HASH.first(self.connection, {"secret_hash": secret_hash})
        if row is None:
            return None
        token = list(row[:_TOKEN_COLUMNS])
        token.insert(_LAST_USED_AT, None)
        resource, level, disabled_at = row[_TOKEN_COLUMNS:]
        permission = None if resource is None else Grant(resource, level)
        return _token(token), permission, disabled_at is not None

    def tokens_of(self, principal: str) -> list[TokenView]:
        """Every token of the principal, revoked and expired ones included; by id."""
        # On the driver's cursor: a cascade reads its account's thousands of tokens here.
        return [_token(row) for row in _TOKENS_OF.all(self.connection, {"principal": principal})]

    def child_tokens(self, token_ids: Collection[str]) -> list[TokenView]:
        """Tokens derived directly from any of ``token_ids``; by id."""
        wanted = list(token_ids)
        if len(wanted) > _MANY_PARENTS:
            # A cascade over many tokens first reads which tokens have children at all (one
            # pass over the parent index), then asks only about those: a chunked IN per 500
            # tokens is planned by PostgreSQL as a scan of the whole table per chunk while
            # its statistics lag a bulk load (minutes for 100,000 tokens).
            parents = set(
                self.connection.execute(
                    sa.select(tokens.c.parent_id).where(tokens.c.parent_id.is_not(None)).distinct()
                ).scalars()
            )
            wanted = [token_id for token_id in wanted if token_id in parents]
        found: list[TokenView] = []
        for start in range(0, len(wanted), _IN_CHUNK):
            found += self._tokens(tokens.c.parent_id.in_(wanted[start : start + _IN_CHUNK]))
        return sorted(found, key=lambda t: t.token_id)

    def tokens_with_grant_under(self, path: str) -> list[TokenView]:
        """Unrevoked tokens (expired ones included) with a grant on ``path`` or below it."""
        with_grant = sa.select(token_grants.c.token_id).where(
            at_or_below(token_grants.c.resource, path)
        )
        return self._tokens(tokens.c.token_id.in_(with_grant), tokens.c.revoked_at.is_(None))

    def token_candidates(self, token_filter: TokenFilter, now: datetime) -> list[TokenView]:
        """Unrevoked, unexpired tokens narrowed by the ids named (read by key), or else by the
        principal (an index) and the issue, expiry and last use times (columns); by id. The other
        criteria are left to ``TokenFilter.matches``, which decides: a grant under a path is judged
        on the token's own grants, since a semi-join with ``token_grants`` is planned as a nested
        loop over every grant under the path whenever PostgreSQL's statistics lag a bulk load
        (minutes for 100,000 tokens), while the token's row already holds its grants."""
        if token_filter.ids is not None:
            # Named one by one (a blast radius's few): read by key, not by a scan.
            named = (self.token(token_id) for token_id in sorted(token_filter.ids))
            return [t for t in named if t is not None and t.live(now)]
        params: dict[str, Any] = {"now": now}
        if token_filter.principal is not None:
            params["principal"] = token_filter.principal
        if token_filter.issued_before is not None:
            params["issued_before"] = token_filter.issued_before
        if token_filter.expires_within is not None:
            params["expires_by"] = now + token_filter.expires_within
        if token_filter.unused_for is not None:
            params["unused_before"] = now - token_filter.unused_for
        statement = _candidates_statement(frozenset(params))
        # On the driver's cursor: a revocation by filter reads 100,000 tokens here.
        return [_token(row) for row in statement.all(self.connection, params)]

    # -- client credentials ---------------------------------------------------------

    def client_credential(self, client_id: str) -> ClientCredentialView | None:
        row = _CLIENT_CREDENTIAL.first(self.connection, {"client_id": client_id})
        return None if row is None else _client_credential(row)

    def client_credential_with_hash(
        self, client_id: str
    ) -> tuple[ClientCredentialView, str] | None:
        """The credential and its secret's stored hash, to check a presented secret against."""
        row = _CLIENT_CREDENTIAL.first(self.connection, {"client_id": client_id})
        return None if row is None else (_client_credential(row), row[2])

    def client_credential_by_secret_hash(self, secret_hash: str) -> ClientCredentialView | None:
        row = _CLIENT_CREDENTIAL_BY_HASH.first(self.connection, {"secret_hash": secret_hash})
        return None if row is None else _client_credential(row)

    def client_credentials_of(self, account_id: str) -> list[ClientCredentialView]:
        """Every client credential of the account, revoked ones included; by client id."""
        query = (
            sa.select(client_credentials)
            .where(client_credentials.c.account_id == account_id)
            .order_by(client_credentials.c.client_id)
        )
        return [_client_credential(row) for row in self.connection.execute(query)]

    def _remember(self, kind: str, key: str, look_up: Callable[[str], Any]) -> Any:
        remembered = self._remembered
        if remembered is None:
            return look_up(key)
        if (kind, key) not in remembered:
            remembered[(kind, key)] = look_up(key)
        return remembered[(kind, key)]

    def _tokens(self, *conditions: ColumnElement[bool]) -> list[TokenView]:
        query = sa.select(*_TOKEN_VIEW_COLUMNS).where(*conditions).order_by(tokens.c.token_id)
        return [_token(row) for row in self.connection.execute(query)]


if TYPE_CHECKING:
    # mypy checks here that SqlLedgerView implements every LedgerView question.
    def _implements_ledger_view(view: SqlLedgerView) -> LedgerView:
        return view
