"""The application service: the one entry point that runs commands and answers queries.

The CLI and the HTTP API are thin adapters over ``Ledger``. A command runs in
one transaction: take the write lock, read the current state from the inline
projections, decide, append the events, fold them into the projections, commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import msgspec
from sqlalchemy.engine import URL

from tokenledger.clock import Clock, SystemClock, ensure_utc
from tokenledger.domain import commands as c
from tokenledger.domain.authority import (
    actor_level,
    principal_active,
    principal_grants,
    token_level,
)
from tokenledger.domain.decide import Context, decide
from tokenledger.domain.events import Event, TokenIssued, TokenRevoked
from tokenledger.domain.model import (
    Actor,
    ActorKind,
    ResourceView,
    ServiceAccountView,
    TokenView,
    UserView,
    is_service_account_id,
)
from tokenledger.domain.names import check_name, check_path, check_principal, check_token_id
from tokenledger.domain.permissions import Grant, Level, level_at
from tokenledger.domain.secrets import (
    TokenKind,
    generate_secret,
    hash_secret,
    new_token_id,
    parse_secret,
)
from tokenledger.errors import NotFound, PermissionDenied, ValidationError
from tokenledger.projections import Projector, SqlLedgerView
from tokenledger.store import DEFAULT_DATABASE_URL, EventStore, RecordedEvent, open_event_store
from tokenledger.store.mapper import to_pending

__all__ = ["CommandResult", "GrantSource", "Ledger", "Verification"]

logger = logging.getLogger("tokenledger")


class CommandResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a command appended, and the one-time secret when it issued a token."""

    command_id: str
    correlation_id: str
    events: tuple[Event, ...]
    records: tuple[RecordedEvent, ...]
    secret: str | None = None

    @property
    def revoked(self) -> list[str]:
        """Token ids this command revoked (its cascade included), in log order."""
        return [e.token_id for e in self.events if isinstance(e, TokenRevoked)]

    @property
    def issued(self) -> TokenIssued | None:
        return next((e for e in self.events if isinstance(e, TokenIssued)), None)


class Verification(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The answer to "is this token valid, and may it do this?" in RFC 7662 vocabulary."""

    active: bool
    allowed: bool
    reason: str | None = None
    token_id: str | None = None
    sub: str | None = None
    token_type: str | None = None
    iat: int | None = None
    exp: int | None = None
    scope: str | None = None
    grants: tuple[Grant, ...] = ()
    resource: str | None = None
    level: str | None = None


class GrantSource(msgspec.Struct, frozen=True, kw_only=True):
    """One of a principal's grants and where it comes from (``direct``, ``role:<org>/<name>``)."""

    resource: str
    level: str
    source: str


class Ledger:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.projector = Projector()

    @classmethod
    def open(
        cls, database_url: str | URL = DEFAULT_DATABASE_URL, *, clock: Clock | None = None
    ) -> Ledger:
        return cls(open_event_store(database_url, clock=clock or SystemClock()))

    def close(self) -> None:
        self.store.engine.dispose()

    @property
    def clock(self) -> Clock:
        return self.store.clock

    # -- commands -------------------------------------------------------------------

    def execute(
        self,
        command: c.Command,
        actor: Actor,
        *,
        correlation_id: str | None = None,
    ) -> CommandResult:
        """Decide and record ``command`` atomically; raise a ``LedgerError`` and append nothing
        when it is refused."""
        secrets: list[str] = []

        def mint(kind: TokenKind) -> tuple[str, str]:
            secret = generate_secret(kind)
            secrets.append(secret)
            return new_token_id(), hash_secret(secret)

        with self.store.transaction(actor=actor.label, correlation_id=correlation_id) as tx:
            view = SqlLedgerView(tx.connection)
            events = decide(command, view, Context(actor=actor, now=tx.recorded_at, mint=mint))
            records = tx.append([to_pending(event) for event in events])
            self.projector.apply(tx.connection, list(zip(records, events, strict=True)))
            result = CommandResult(
                command_id=tx.command_id,
                correlation_id=tx.correlation_id,
                events=tuple(events),
                records=tuple(records),
                secret=secrets[0] if secrets else None,
            )
        # Names and ids only: a command's fields may be personal data, never a secret.
        logger.info(
            "%s by %s appended %d event(s) up to position %s (correlation %s)",
            type(command).__name__,
            actor.label,
            len(records),
            records[-1].position if records else "-",
            result.correlation_id,
        )
        return result

    # -- reading --------------------------------------------------------------------

    @contextmanager
    def view(self) -> Iterator[SqlLedgerView]:
        """A consistent read of the projections."""
        with self.store.engine.connect() as connection, connection.begin():
            yield SqlLedgerView(connection)

    def now(self) -> datetime:
        return ensure_utc(self.clock.now())

    # -- verification ---------------------------------------------------------------

    def verify(
        self,
        secret: str,
        *,
        resource: str | None = None,
        level: Level | None = None,
    ) -> Verification:
        """Is the token active, and (given a resource) does it allow ``level`` there now?"""
        if resource is not None:
            resource = _valid(check_path, resource)
        wanted = level if level is not None else Level.READ
        try:
            parse_secret(secret)
        except ValidationError:
            return Verification(active=False, allowed=False, reason="malformed")
        now = self.now()
        with self.view() as view:
            token = view.token_by_secret_hash(hash_secret(secret))
            if token is None:
                return Verification(active=False, allowed=False, reason="unknown")
            inactive = _inactive_reason(view, token, now)
            if inactive is not None:
                return Verification(active=False, allowed=False, reason=inactive)
            current = principal_grants(view, token.principal)
            effective = _effective_grants(token, current)
            allowed = True
            if resource is not None:
                allowed = token_level(view, token, resource, now, current) >= wanted
        return Verification(
            active=True,
            allowed=allowed,
            reason=None if allowed else "not_allowed",
            token_id=token.token_id,
            sub=token.principal,
            token_type=token.kind,
            iat=int(token.issued_at.timestamp()),
            exp=int(token.expires_at.timestamp()) if token.expires_at else None,
            scope=" ".join(str(g) for g in effective),
            grants=effective,
            resource=resource,
            level=wanted.label if resource is not None else None,
        )

    def authenticate(self, secret: str) -> Actor:
        """The actor a presented secret stands for; ``PermissionDenied`` unless it is active."""
        try:
            parse_secret(secret)
        except ValidationError as exc:
            raise PermissionDenied(f"the presented token is not valid ({exc})") from None
        with self.view() as view:
            token = view.token_by_secret_hash(hash_secret(secret))
            if token is None:
                raise PermissionDenied("the presented token is not valid (unknown)")
            inactive = _inactive_reason(view, token, self.now())
            if inactive is not None:
                raise PermissionDenied(f"the presented token is not valid ({inactive})")
        kind = (
            ActorKind.SERVICE_ACCOUNT if is_service_account_id(token.principal) else ActorKind.USER
        )
        return Actor(kind=kind, principal=token.principal, token_id=token.token_id)

    # -- queries, each filtered to what the actor may see ------------------------------

    def list_orgs(self, actor: Actor) -> list[str]:
        with self.view() as view:
            orgs = view.list_orgs()
            return [o for o in orgs if self._may(view, actor, o, Level.READ)]

    def list_users(self, actor: Actor, org: str | None = None) -> list[UserView]:
        org = _valid_org(org) if org is not None else None
        with self.view() as view:
            if org is None:
                if actor.kind is not ActorKind.OPERATOR:
                    raise PermissionDenied("only an operator may list every user: give --org")
                return view.list_users()
            self._require_org(view, org)
            self._require(view, actor, org, Level.READ, f"list the members of {org}")
            return view.list_users(org)

    def members(self, actor: Actor, org: str) -> dict[str, str]:
        org = _valid_org(org)
        with self.view() as view:
            self._require_org(view, org)
            self._require(view, actor, org, Level.READ, f"list the members of {org}")
            return view.members(org)

    def list_resources(self, actor: Actor, prefix: str | None = None) -> list[ResourceView]:
        prefix = _valid(check_path, prefix) if prefix is not None else None
        with self.view() as view:
            return [
                r for r in view.list_resources(prefix) if self._may(view, actor, r.path, Level.READ)
            ]

    def grants_of(self, actor: Actor, principal: str) -> list[GrantSource]:
        principal = _valid(check_principal, principal)
        with self.view() as view:
            sources: list[GrantSource] = []
            if is_service_account_id(principal):
                account = view.service_account(principal)
                if account is None:
                    raise NotFound(f"no service account {principal}")
                if not account.deleted:
                    sources.append(_source(account.permission, "service account permission"))
            else:
                if view.user(principal) is None:
                    raise NotFound(f"no user {principal}")
                sources.extend(_source(g, "direct") for g in view.direct_grants(principal))
                for org, role in view.memberships(principal).items():
                    for grant in view.role(org, role) or ():
                        sources.append(_source(grant, f"role:{org}/{role}"))
            if actor.kind is ActorKind.OPERATOR or actor.principal == principal:
                return sources
            return [s for s in sources if self._may(view, actor, s.resource, Level.ADMIN)]

    def roles_of(self, actor: Actor, org: str) -> dict[str, tuple[Grant, ...]]:
        org = _valid_org(org)
        with self.view() as view:
            self._require_org(view, org)
            self._require(view, actor, org, Level.READ, f"list the roles of {org}")
            return view.roles_of(org)

    def service_accounts(self, actor: Actor, org: str | None = None) -> list[ServiceAccountView]:
        org = _valid_org(org) if org is not None else None
        with self.view() as view:
            if org is not None:
                self._require_org(view, org)
            return [
                a
                for a in view.service_accounts(org)
                if actor.principal == a.account_id
                or self._may(view, actor, a.permission.resource, Level.READ)
            ]

    def tokens_of(
        self, actor: Actor, principal: str, *, include_inactive: bool = False
    ) -> list[TokenView]:
        principal = _valid(check_principal, principal)
        now = self.now()
        with self.view() as view:
            self._require_principal(view, principal)
            self._require_token_access(view, actor, principal)
            tokens = view.tokens_of(principal)
        return [t for t in tokens if include_inactive or t.live(now)]

    def get_token(self, actor: Actor, token_id: str) -> TokenView:
        token_id = _valid(check_token_id, token_id)
        with self.view() as view:
            token = view.token(token_id)
            if token is None:
                raise NotFound(f"no token {token_id}")
            self._require_token_access(view, actor, token.principal)
            return token

    # -- helpers ----------------------------------------------------------------------

    def _may(self, view: SqlLedgerView, actor: Actor, path: str, level: Level) -> bool:
        return actor_level(view, actor, path, self.now()) >= level

    def _require(
        self, view: SqlLedgerView, actor: Actor, path: str, level: Level, action: str
    ) -> None:
        if not self._may(view, actor, path, level):
            raise PermissionDenied(
                f"{actor.label} may not {action}: it needs {level.label} on {path}"
            )

    @staticmethod
    def _require_org(view: SqlLedgerView, org: str) -> None:
        if not view.org_exists(org):
            raise NotFound(f"no org {org}")

    @staticmethod
    def _require_principal(view: SqlLedgerView, principal: str) -> None:
        if is_service_account_id(principal):
            if view.service_account(principal) is None:
                raise NotFound(f"no service account {principal}")
        elif view.user(principal) is None:
            raise NotFound(f"no user {principal}")

    def _require_token_access(self, view: SqlLedgerView, actor: Actor, principal: str) -> None:
        if actor.kind is ActorKind.OPERATOR or actor.principal == principal:
            return
        account = view.service_account(principal) if is_service_account_id(principal) else None
        if account is None or not self._may(view, actor, account.permission.resource, Level.ADMIN):
            raise PermissionDenied(f"{actor.label} may not see the tokens of {principal}")


def _valid(check: Callable[[str], str], value: str) -> str:
    """Check a query argument with the same rule commands use."""
    try:
        return check(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _valid_org(value: str) -> str:
    return _valid(lambda v: check_name(v, "org name"), value)


def _inactive_reason(view: SqlLedgerView, token: TokenView, now: datetime) -> str | None:
    if token.revoked:
        return "revoked"
    if token.expired(now):
        return "expired"
    if not principal_active(view, token.principal):
        return "principal_disabled"
    return None


def _effective_grants(token: TokenView, current: tuple[Grant, ...]) -> tuple[Grant, ...]:
    """Each of the token's grants, lowered to what its principal may do there now."""
    effective = []
    for grant in token.grants:
        level = min(grant.rank, level_at(current, grant.resource))
        if level is not Level.NONE:
            effective.append(Grant(grant.resource, level.label))
    return tuple(effective)


def _source(grant: Grant, source: str) -> GrantSource:
    return GrantSource(resource=grant.resource, level=grant.level, source=source)
