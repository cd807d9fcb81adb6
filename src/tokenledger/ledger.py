"""The application service: the one entry point that runs commands and answers queries.

The CLI and the HTTP API are thin adapters over ``Ledger``. A command runs in
one transaction: take the write lock, read the current state from the inline
projections, decide, append the events, fold them into the projections, commit.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy.engine import URL

from tokenledger import audit
from tokenledger.audit import AuditEntry, AuditQuery
from tokenledger.cache import HeadGatedCache
from tokenledger.clock import Clock, SystemClock, ensure_utc
from tokenledger.domain import commands as c
from tokenledger.domain.authority import (
    actor_level,
    principal_grants,
    require_operator,
)
from tokenledger.domain.commands import check_client_id
from tokenledger.domain.decide import Context, decide
from tokenledger.domain.events import Event, TokenIssued, TokenRevoked
from tokenledger.domain.model import (
    Actor,
    ActorKind,
    ClientCredentialView,
    Introspection,
    IssuedAccessToken,
    ResourceView,
    ServiceAccountView,
    TokenView,
    UserView,
    is_service_account_id,
)
from tokenledger.domain.names import (
    check_name,
    check_path,
    check_principal,
    check_service_account_id,
    check_token_id,
)
from tokenledger.domain.permissions import Grant, Level, level_at, org_of
from tokenledger.domain.secrets import (
    TokenKind,
    generate_secret,
    hash_secret,
    new_token_id,
    parse_secret,
    secret_digest,
)
from tokenledger.domain.subjects import subjects
from tokenledger.errors import Conflict, NotFound, PermissionDenied, ValidationError
from tokenledger.gc_pause import gc_paused
from tokenledger.history import state_at
from tokenledger.keys import InvalidAccessToken, KeyRing, looks_like_jwt
from tokenledger.projections import Projector, SqlLedgerView
from tokenledger.projections.projector import BULK_EVENTS
from tokenledger.store import DEFAULT_DATABASE_URL, EventStore, RecordedEvent, open_event_store
from tokenledger.store.driver import pipelined
from tokenledger.store.eventstore import read_head
from tokenledger.store.mapper import to_pending
from tokenledger.store.readers import ReadConnections
from tokenledger.verification import (
    Verification,
    effective_grants,
    inactive_reason,
    verify_service_token,
    verify_token,
)

__all__ = [
    "DEFAULT_ACCESS_TOKEN_LIFETIME",
    "CommandResult",
    "GrantSource",
    "Ledger",
    "Verification",
]

#: How long an access token from ``issue_access_token`` lives unless told otherwise.
DEFAULT_ACCESS_TOKEN_LIFETIME = timedelta(hours=1)

#: Seconds ``Ledger.verify`` may reuse an answer without re-reading the log's head: a
#: revocation committed by another process reaches this one's answers within this bound
#: (one committed through this ``Ledger`` at once).
DEFAULT_VERIFY_STALENESS = 1.0

# A cached verification's key: the secret's SHA-256 digest, the resource and the level.
_AnswerKey = tuple[bytes, str | None, Level]

# Inactive answers worth keeping: those that took more than one lookup to reach. Unknown and
# malformed secrets are not kept, so guessing cannot fill the cache.
_CACHED_INACTIVE = frozenset({"revoked", "expired", "principal_disabled"})

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


class GrantSource(msgspec.Struct, frozen=True, kw_only=True):
    """One of a principal's grants and where it comes from (``direct``, ``role:<org>/<name>``)."""

    resource: str
    level: str
    source: str


class Ledger:
    """The service over one event store.

    ``verify_staleness`` bounds, in seconds, how long ``verify`` may reuse an
    answer without re-reading the log's head (``0``: re-read on every call, so
    never stale; ``None``: no cache, every call reads the projections). Any
    write committed through this ledger's store drops every cached answer at
    once, so this process never answers from before its own writes.
    """

    def __init__(
        self, store: EventStore, *, verify_staleness: float | None = DEFAULT_VERIFY_STALENESS
    ) -> None:
        if verify_staleness is not None and verify_staleness < 0:
            raise ValidationError("the verification cache staleness cannot be negative")
        self.store = store
        self.projector = Projector()
        # The system clock's "now" is read as time.time() on the verification hot path
        # (no datetime built); any other clock is asked as usual.
        self._wall_clock = type(store.clock) is SystemClock
        in_memory = store.engine.url.database in (None, "", ":memory:")
        # An in-memory SQLite database exists on its one shared connection only.
        self._readers = None if in_memory else ReadConnections(store.engine)
        self._answers: HeadGatedCache[Verification] | None = None
        if verify_staleness is not None:
            self._answers = HeadGatedCache(self._head_position, staleness=verify_staleness)
            store.on_commit(self._answers.invalidate)

    @classmethod
    def open(
        cls,
        database_url: str | URL = DEFAULT_DATABASE_URL,
        *,
        clock: Clock | None = None,
        verify_staleness: float | None = DEFAULT_VERIFY_STALENESS,
    ) -> Ledger:
        store = open_event_store(database_url, clock=clock or SystemClock())
        return cls(store, verify_staleness=verify_staleness)

    def close(self) -> None:
        if self._readers is not None:
            self._readers.close()
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
        minted: set[str] = set()
        # Under the write lock, one command at a time: the collector is paused for the
        # decision and its writes (thousands of objects in a cascade), never for long.
        with (
            self.store.transaction(actor=actor.label, correlation_id=correlation_id) as tx,
            gc_paused(),
        ):

            def mint(kind: TokenKind) -> tuple[str, str]:
                secret = generate_secret(kind)
                secrets.append(secret)
                token_id = new_token_id(tx.recorded_at)
                minted.add(token_id)
                return token_id, hash_secret(secret)

            # The decision reads before anything is written, under the write lock: what it
            # looked up once (an account, a user) stays as it was for the rest of it.
            view = SqlLedgerView(tx.connection, remember=True)
            events = decide(command, view, Context(actor=actor, now=tx.recorded_at, mint=mint))
            for event in events:
                if isinstance(event, TokenIssued) and event.token_id in minted:
                    tx.new_stream(event.stream_id)  # no need to read its version: none yet
            # PostgreSQL: a command's few events and their projection rows are sent in one
            # pipeline (one round trip); a cascade's thousands are loaded with COPY instead,
            # which a pipeline cannot carry.
            few = len(events) < BULK_EVENTS
            with pipelined(tx.connection) if few else nullcontext():
                records = tx.append([to_pending(event) for event in events])
                # Several events (a cascade's thousands) are folded in executemany batches.
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

    def _head_position(self) -> int:
        if self._readers is None:
            with self.view() as view:
                return read_head(view.connection).position
        with self._readers.statement() as connection:
            return read_head(connection).position

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
        """Is the token active, and (given a resource) does it allow ``level`` there now?

        Answers are reused while the log's head stands still (see ``verify_staleness``);
        an active answer is never reused past its token's expiry.
        """
        wanted = level if level is not None else Level.READ
        answers = self._answers
        if answers is None:
            return self._verify_now(secret, resource, wanted)
        # Looked up before any validation: only answers to valid input are ever kept.
        key = (secret_digest(secret), resource, wanted)
        now = time.time() if self._wall_clock else self.now().timestamp()
        cached = answers.lookup(key, now)
        if cached is not None:
            return cached
        return self._verify_now(secret, resource, wanted, keep_in=(answers, key))

    def _verify_now(
        self,
        secret: str,
        resource: str | None,
        wanted: Level,
        *,
        keep_in: tuple[HeadGatedCache[Verification], _AnswerKey] | None = None,
    ) -> Verification:
        """The answer read from the projections (and kept in the cache ``keep_in`` names)."""
        if resource is not None:
            resource = _valid(check_path, resource)
        try:
            parse_secret(secret)
        except ValidationError:
            return Verification(active=False, allowed=False, reason="malformed")
        if keep_in is None:
            return self._read_verification(hash_secret(secret), resource, wanted)
        answers, key = keep_in
        generation = answers.generation()  # before reading: see HeadGatedCache.put
        answer = self._read_verification(key[0].hex(), resource, wanted)  # the digest, in hex
        if answer.active or answer.reason in _CACHED_INACTIVE:
            answers.put(key, answer, answer.exp if answer.active else None, generation)
        return answer

    def _read_verification(
        self, secret_hash: str, resource: str | None, wanted: Level
    ) -> Verification:
        if self._readers is None:
            with self.view() as view:
                return self._answer(view, secret_hash, resource, wanted)
        # A service account's token is answered from one statement (the token joined with
        # its account's permission), which reads a snapshot by itself. A user's token takes
        # more (their grants, memberships, roles): on SQLite those are read again, all in one
        # snapshot.
        with self._readers.statement() as connection:
            view = SqlLedgerView(connection, remember=True)
            found = view.token_and_permission(secret_hash)
            if found is None:
                return verify_token(view, None, self.now())
            token, permission = found
            if is_service_account_id(token.principal):
                return verify_service_token(
                    token, permission, self.now(), resource=resource, level=wanted
                )
            if not self._readers.snapshots_span_statements:
                return verify_token(view, token, self.now(), resource=resource, level=wanted)
        with self._readers.snapshot() as connection:
            return self._answer(
                SqlLedgerView(connection, remember=True), secret_hash, resource, wanted
            )

    def _answer(
        self, view: SqlLedgerView, secret_hash: str, resource: str | None, wanted: Level
    ) -> Verification:
        token = view.token_by_secret_hash(secret_hash)
        return verify_token(view, token, self.now(), resource=resource, level=wanted)

    def verify_at(
        self,
        secret: str,
        moment: datetime,
        *,
        resource: str | None = None,
        level: Level | None = None,
    ) -> tuple[Verification, int]:
        """The answer ``verify`` would have given at ``moment``, and the log position it reflects.

        The state is folded from the log up to that moment, so the answer holds
        for the past even after the projections have moved on.
        """
        if resource is not None:
            resource = _valid(check_path, resource)
        wanted = level if level is not None else Level.READ
        moment = ensure_utc(moment)
        state, position = state_at(self.store, moment)
        try:
            parse_secret(secret)
        except ValidationError:
            return Verification(active=False, allowed=False, reason="malformed"), position
        token = state.token_by_secret_hash(hash_secret(secret))
        return verify_token(state, token, moment, resource=resource, level=wanted), position

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
            inactive = inactive_reason(view, token, self.now())
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
        self,
        actor: Actor,
        principal: str,
        *,
        include_inactive: bool = False,
        at: datetime | None = None,
    ) -> list[TokenView]:
        principal = _valid(check_principal, principal)
        with self.view() as view:
            self._require_principal(view, principal)
            self._require_token_access(view, actor, principal)
            tokens: Sequence[TokenView] = view.tokens_of(principal)
        moment = self.now() if at is None else ensure_utc(at)
        if at is not None:  # the tokens as they stood then
            tokens = state_at(self.store, moment)[0].tokens_of(principal)
        return [t for t in tokens if include_inactive or t.live(moment)]

    def get_token(self, actor: Actor, token_id: str) -> TokenView:
        token_id = _valid(check_token_id, token_id)
        with self.view() as view:
            token = view.token(token_id)
            if token is None:
                raise NotFound(f"no token {token_id}")
            self._require_token_access(view, actor, token.principal)
            return token

    def get_service_account(self, actor: Actor, account_id: str) -> ServiceAccountView:
        """One service account (deleted ones included), if the actor may see it."""
        account_id = _valid(check_service_account_id, account_id)
        with self.view() as view:
            account = view.service_account(account_id)
            if account is None:
                raise NotFound(f"no service account {account_id}")
            if actor.principal != account_id and not self._may(
                view, actor, account.permission.resource, Level.READ
            ):
                raise PermissionDenied(f"{actor.label} may not see {account_id}")
            return account

    def client_credentials_of(
        self, actor: Actor, account_id: str, *, include_inactive: bool = False
    ) -> list[ClientCredentialView]:
        """A service account's client credentials (never their secrets), seen like its tokens."""
        account_id = _valid(check_service_account_id, account_id)
        now = self.now()
        with self.view() as view:
            self._require_principal(view, account_id)
            self._require_token_access(view, actor, account_id)
            found = view.client_credentials_of(account_id)
        return [cred for cred in found if include_inactive or cred.live(now)]

    # -- OAuth2: client credentials, access tokens, introspection, revocation ----------

    def authenticate_client(
        self, client_id: str, client_secret: str
    ) -> tuple[ClientCredentialView, ServiceAccountView]:
        """The live credential and active account a client id and secret stand for.

        ``PermissionDenied`` with one message for every failure, so that a caller
        learns nothing about which part was wrong.
        """
        refused = PermissionDenied("client authentication failed")
        try:
            check_client_id(client_id)
            if parse_secret(client_secret) is not TokenKind.CLIENT:
                raise refused
        except (ValueError, ValidationError):
            raise refused from None
        presented = hash_secret(client_secret)
        with self.view() as view:
            found = view.client_credential_with_hash(client_id)
            if found is None:
                raise refused
            credential, stored = found
            if not hmac.compare_digest(stored, presented) or not credential.live(self.now()):
                raise refused
            account = view.service_account(credential.account_id)
            if account is None or account.deleted:
                raise refused
        return credential, account

    def issue_access_token(
        self,
        credential: ClientCredentialView,
        account: ServiceAccountView,
        keys: KeyRing,
        *,
        issuer: str,
        scope: str | None = None,
        lifetime: timedelta = DEFAULT_ACCESS_TOKEN_LIFETIME,
    ) -> IssuedAccessToken:
        """Sign an access token (JWT) for a client that ``authenticate_client`` accepted
        (RFC 6749 section 4.4).

        The token carries the account's permission, or the narrower ``scope`` asked
        for (space-separated ``level:resource``; more than the account holds is
        ``PermissionDenied``). It never outlives its credential. Issuing one changes
        no state, so it appends no event: its validity derives from the credential,
        whose issue and revocation are in the log.
        """
        grants = (account.permission,) if not scope else _scope_grants(scope)
        for grant in grants:
            if level_at((account.permission,), grant.resource) < grant.rank:
                raise PermissionDenied(
                    f"scope {grant} exceeds {account.account_id}'s permission "
                    f"({account.permission})"
                )
        now = self.now()
        expires_at = now + lifetime
        if credential.expires_at is not None and credential.expires_at < expires_at:
            expires_at = credential.expires_at
        jti = uuid.uuid4().hex
        scope_text = " ".join(str(g) for g in grants)
        claims: dict[str, Any] = {
            "iss": issuer,
            "sub": account.account_id,
            "org": account.org,
            "client_id": credential.client_id,
            "jti": jti,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "scope": scope_text,
            "grants": [{"resource": g.resource, "level": g.level} for g in grants],
        }
        token = keys.sign(claims)
        logger.info(
            "access token %s issued to %s through client %s until %s",
            jti,
            account.account_id,
            credential.client_id,
            expires_at.isoformat(),
        )
        return IssuedAccessToken(
            access_token=token,
            expires_in=max(0, int(expires_at.timestamp()) - int(now.timestamp())),
            scope=scope_text,
            jti=jti,
            expires_at=expires_at,
        )

    def introspect(
        self,
        token: str,
        keys: KeyRing | None,
        *,
        issuer: str,
        resource: str | None = None,
        level: Level | None = None,
    ) -> Introspection:
        """RFC 7662: is a ledger token's secret or an access token (JWT) active, for whom,
        with which effective grants (and, given a resource, does it allow ``level`` there)?

        Always read from the projections, never from ``verify``'s cache: the HTTP API
        keeps its own per-worker cache of these answers, with its own staleness setting.
        """
        if looks_like_jwt(token):
            if keys is None:
                return Introspection(active=False, reason="unknown_key")
            return self._introspect_access_token(token, keys, issuer, resource, level)
        answer = self._verify_now(token, resource, level if level is not None else Level.READ)
        if not answer.active:
            return Introspection(active=False, reason=answer.reason)
        return Introspection(
            active=True,
            sub=answer.sub,
            scope=answer.scope,
            exp=answer.exp,
            iat=answer.iat,
            token_type=answer.token_type,
            token_id=answer.token_id,
            grants=answer.grants,
            allowed=answer.allowed if resource is not None else None,
            resource=answer.resource,
            level=answer.level,
        )

    def _introspect_access_token(
        self,
        token: str,
        keys: KeyRing,
        issuer: str,
        resource: str | None,
        level: Level | None,
    ) -> Introspection:
        if resource is not None:
            resource = _valid(check_path, resource)
        wanted = level if level is not None else Level.READ
        now = self.now()
        try:
            claims = keys.decode(token, issuer=issuer, now=now)
            granted = _claimed_grants(claims.get("grants"))
        except InvalidAccessToken as exc:
            return Introspection(active=False, reason=exc.reason)
        with self.view() as view:
            credential = view.client_credential(str(claims["client_id"]))
            if credential is None or credential.account_id != claims["sub"]:
                return Introspection(active=False, reason="unknown")
            if credential.revoked:
                return Introspection(active=False, reason="revoked")
            if credential.expired(now):
                return Introspection(active=False, reason="expired")
            account = view.service_account(credential.account_id)
            if account is None or account.deleted:
                return Introspection(active=False, reason="principal_disabled")
            current = principal_grants(view, account.account_id)
        effective = effective_grants(granted, current)
        allowed = None if resource is None else level_at(effective, resource) >= wanted
        return Introspection(
            active=True,
            sub=account.account_id,
            scope=" ".join(str(g) for g in effective),
            exp=int(claims["exp"]),
            iat=int(claims["iat"]),
            token_type="access_token",
            client_id=credential.client_id,
            token_id=str(claims["jti"]),
            iss=str(claims["iss"]),
            org=account.org,
            grants=effective,
            allowed=allowed,
            resource=resource,
            level=wanted.label if resource is not None else None,
        )

    def revoke_presented(
        self,
        secret: str,
        actor: Actor,
        *,
        reason: str | None = None,
        correlation_id: str | None = None,
    ) -> CommandResult | None:
        """RFC 7009: revoke the token or client credential whose secret is presented.

        Authorised like ``tokens revoke``. ``None`` when there is nothing to revoke
        (malformed, unknown or already revoked), which the RFC answers like success.
        """
        try:
            kind = parse_secret(secret)
        except ValidationError:
            return None
        presented = hash_secret(secret)
        command: c.Command
        with self.view() as view:
            if kind is TokenKind.CLIENT:
                credential = view.client_credential_by_secret_hash(presented)
                if credential is None or credential.revoked:
                    return None
                command = c.build(
                    c.RevokeClientCredential, client_id=credential.client_id, reason=reason
                )
            else:
                token = view.token_by_secret_hash(presented)
                if token is None or token.revoked:
                    return None
                command = c.build(c.RevokeToken, token_id=token.token_id, reason=reason)
        try:
            return self.execute(command, actor, correlation_id=correlation_id)
        except Conflict:  # revoked concurrently: the outcome the caller asked for
            return None

    # -- audit, for principals acting through a token ---------------------------------

    def audit_search(self, actor: Actor, query: AuditQuery) -> list[AuditEntry]:
        """The events matching ``query`` that ``actor`` may see.

        An operator sees everything; anyone else sees the events about themselves and
        the events concerning an org they may read as a whole (its admins and
        auditors). Filtering happens after the query's limit, so a page may hold
        fewer entries than asked for.
        """
        entries = audit.search(self.store, query)
        if actor.kind is ActorKind.OPERATOR:
            return entries
        readable: dict[str, bool] = {}
        with self.view() as view:

            def may_read_org(name: str) -> bool:
                if name not in readable:
                    readable[name] = view.org_exists(name) and self._may(
                        view, actor, name, Level.READ
                    )
                return readable[name]

            return [
                entry
                for entry in entries
                if actor.principal in (found := subjects(entry.event))
                or any(may_read_org(org_of(s)) for s in found if "@" not in s)
            ]

    def require_operator(self, actor: Actor, action: str) -> None:
        """Maintenance (rebuilding projections, exporting the whole log) is the operator's."""
        require_operator(actor, action)

    def explain_token(self, actor: Actor, token_id: str) -> audit.Explanation:
        """A token's story and the cause of its revocation, for whoever may see the token."""
        self.get_token(actor, token_id)
        return audit.explain(self.store, token_id)

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


def _scope_grants(scope: str) -> tuple[Grant, ...]:
    """``read:acme/alpha write:acme/alpha/raw``: an OAuth2 scope as grants."""
    grants: dict[str, Grant] = {}
    for item in scope.split()[:100]:
        level_text, sep, path = item.partition(":")
        if not sep:
            raise ValidationError(
                f"invalid scope item {item[:80]!r}: expected level:resource, e.g. read:acme/alpha"
            )
        try:
            grant_level = Level.parse(level_text)
            path = check_path(path)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None
        if grant_level is Level.NONE:
            raise ValidationError("a scope item needs a level above none")
        if path not in grants or grant_level > grants[path].rank:
            grants[path] = Grant(path, grant_level.label)
    if not grants:
        raise ValidationError("the scope is empty")
    return tuple(sorted(grants.values()))


def _claimed_grants(value: object) -> tuple[Grant, ...]:
    """The ``grants`` claim of an access token we signed; anything else is malformed."""
    try:
        grants = msgspec.convert(value, tuple[Grant, ...])
        for grant in grants:
            check_path(grant.resource)
            Level.parse(grant.level)
    except (msgspec.ValidationError, ValueError):
        raise InvalidAccessToken("malformed") from None
    return grants


def _source(grant: Grant, source: str) -> GrantSource:
    return GrantSource(resource=grant.resource, level=grant.level, source=source)
