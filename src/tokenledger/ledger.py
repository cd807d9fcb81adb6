"""The application service: the one entry point that runs commands and answers queries.

The CLI and the HTTP API are thin adapters over ``Ledger``. A command runs in
one transaction: take the write lock, read the current state from the inline
projections, decide, append the events, fold them into the projections, commit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import msgspec
from sqlalchemy.engine import URL

from tokenledger import audit
from tokenledger.audit import AuditEntry, AuditQuery
from tokenledger.cache import HeadGatedCache
from tokenledger.clock import Clock, SystemClock, ensure_utc
from tokenledger.domain import commands as c
from tokenledger.domain.authority import (
    Verification,
    answer_token,
    may,
    may_see,
    may_see_account,
    may_see_event,
    may_see_grant,
    require_known_org,
    require_operator,
    require_principal_visible,
    require_reader,
    require_token_access,
    sees_every_event,
    standing,
    verify_token,
)
from tokenledger.domain.commands import check_client_id
from tokenledger.domain.decide import Context, decide
from tokenledger.domain.events import Event, TokenIssued
from tokenledger.domain.model import (
    Actor,
    ClientCredentialView,
    Introspection,
    IssuedAccessToken,
    ResourceView,
    ServiceAccountView,
    TokenView,
    UserView,
    is_service_account_id,
    service_account_org,
)
from tokenledger.domain.names import (
    check_name,
    check_path,
    check_principal,
    check_service_account_id,
    check_token_id,
)
from tokenledger.domain.outcome import Outcome, outcome_of
from tokenledger.domain.permissions import Grant, Level, level_at
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

__all__ = [
    "DEFAULT_ACCESS_TOKEN_LIFETIME",
    "CommandResult",
    "GrantSource",
    "Ledger",
    "Verification",
]

#: How long an access token from ``issue_access_token`` lives unless told otherwise.
DEFAULT_ACCESS_TOKEN_LIFETIME = timedelta(hours=1)

#: Seconds a token answer may be reused without re-reading the log's head. ``0``: the head
#: (one small indexed query) is read for every answer served from the cache, so no answer is
#: ever stale. A positive bound trades that query for a delay: a revocation committed by
#: another process reaches this one's answers within it (one committed through this
#: ``Ledger`` at once). The one default for ``Ledger`` and the HTTP API alike.
DEFAULT_VERIFY_STALENESS = 0.0

# A cached answer's key: the secret's SHA-256 digest, the resource and the level; an access
# token's answer (an ``Introspection``) is kept under the same key with a leading "jwt".
_AnswerKey = tuple[object, ...]

#: The only inactive answers ever kept: those that took more than one lookup to reach.
#: Unknown and malformed secrets are never kept, so guessing cannot fill the cache.
CACHED_INACTIVE = frozenset({"revoked", "expired", "principal_disabled"})

#: Rows read at a time when an audit answer is filtered to what the caller may see.
_AUDIT_PAGE = 200

logger = logging.getLogger("tokenledger")


class CommandResult(msgspec.Struct, frozen=True, kw_only=True):
    """What a command appended (``events``, ``records``), what that amounts to (``outcome``),
    and the one-time secret when it issued a token or credential."""

    command_id: str
    correlation_id: str
    events: tuple[Event, ...]
    records: tuple[RecordedEvent, ...]
    outcome: Outcome
    secret: str | None = None

    @property
    def revoked(self) -> list[str]:
        """Token ids this command revoked (its cascade included), in log order."""
        return list(self.outcome.revoked)

    @property
    def issued(self) -> TokenIssued | None:
        return self.outcome.issued


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
        self.store = store
        self.projector = Projector()
        # The system clock's "now" is read as time.time() on the verification hot path
        # (no datetime built); any other clock is asked as usual.
        self._wall_clock = type(store.clock) is SystemClock
        in_memory = store.engine.url.database in (None, "", ":memory:")
        # An in-memory SQLite database exists on its one shared connection only.
        self._readers = None if in_memory else ReadConnections(store.engine)
        self._answers: HeadGatedCache[Verification | Introspection] | None = None
        self._head_read_at: float | None = None
        self._answer_observer: Callable[[bool], None] | None = None
        self.use_answer_cache(verify_staleness)
        store.on_commit(self._forget_answers)

    def use_answer_cache(self, staleness: float | None) -> None:
        """Set the one answer cache's staleness bound in seconds (``None``: no cache, every
        answer read from the projections). Forgets every answer kept so far."""
        if staleness is not None and not 0 <= staleness <= 60:
            raise ValidationError("the answer cache staleness must lie between 0 and 60 seconds")
        self._answers = (
            None if staleness is None else HeadGatedCache(self._read_head, staleness=staleness)
        )
        self._head_read_at = None

    @property
    def cached_answers(self) -> int:
        """How many answers the cache holds now."""
        return 0 if self._answers is None else len(self._answers)

    @property
    def answer_staleness(self) -> float | None:
        return None if self._answers is None else self._answers.staleness

    def _forget_answers(self) -> None:
        """This process appended to the log: no earlier answer may be served any more."""
        if self._answers is not None:
            self._answers.invalidate()
            self._head_read_at = None

    def _read_head(self) -> int:
        started = time.monotonic()
        position = self._head_position()
        self._head_read_at = started
        return position

    def answers_past_bound(self) -> bool:
        """Whether the answer cache, with a positive staleness, went past its bound since the
        head was last read, so that ``peek_introspection`` answers nothing until
        ``refresh_answers``. Always false at staleness 0, where nothing is ever peeked."""
        answers = self._answers
        if answers is None or not answers.staleness:
            return False
        read_at = self._head_read_at
        return read_at is None or time.monotonic() - read_at >= answers.staleness

    def refresh_answers(self) -> None:
        """Re-read the log's head if the cache's bound has passed (a database query); the
        cache forgets its answers if the head moved."""
        if self._answers is not None:
            self._answers.generation()

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
                outcome=outcome_of(events),
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
            # A secret's key never holds an Introspection (no cast: this is the hot path).
            return cached  # type: ignore[return-value]
        return self._verify_now(secret, resource, wanted, keep_in=(answers, key))

    def _verify_now(
        self,
        secret: str,
        resource: str | None,
        wanted: Level,
        *,
        keep_in: tuple[HeadGatedCache[Verification | Introspection], _AnswerKey] | None = None,
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
        digest = cast(bytes, key[0])  # a secret's key starts with its digest
        answer = self._read_verification(digest.hex(), resource, wanted)
        if answer.active or answer.reason in CACHED_INACTIVE:
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
                current = (permission,) if permission is not None else None
                return answer_token(token, current, self.now()).verification(resource, wanted)
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
        """The actor a presented ledger token stands for (``TOKENLEDGER_TOKEN``, a Bearer
        caller), judged like every token, through the answer cache; ``PermissionDenied``
        unless it is active. Decisions check the acting token again under the write lock."""
        try:
            parse_secret(secret)
        except ValidationError as exc:
            raise PermissionDenied(f"the presented token is not valid ({exc})") from None
        answer = self.verify(secret)
        if not answer.active or answer.sub is None or answer.token_id is None:
            raise PermissionDenied(f"the presented token is not valid ({answer.reason})")
        return Actor.through_token(answer.sub, answer.token_id)

    # -- queries, each filtered to what the actor may see ------------------------------

    def list_orgs(self, actor: Actor) -> list[str]:
        now = self.now()
        with self.view() as view:
            return [o for o in view.list_orgs() if may_see(view, actor, o, now)]

    def list_users(self, actor: Actor, org: str | None = None) -> list[UserView]:
        org = _valid_org(org) if org is not None else None
        now = self.now()
        with self.view() as view:
            if org is None:
                require_operator(actor, "list every user: give --org")
                return view.list_users()
            require_reader(view, actor, org, now, f"list the members of {org}")
            require_known_org(view, actor, org, now)
            return view.list_users(org)

    def members(self, actor: Actor, org: str) -> dict[str, str]:
        org = _valid_org(org)
        now = self.now()
        with self.view() as view:
            require_reader(view, actor, org, now, f"list the members of {org}")
            require_known_org(view, actor, org, now)
            return view.members(org)

    def list_resources(self, actor: Actor, prefix: str | None = None) -> list[ResourceView]:
        prefix = _valid(check_path, prefix) if prefix is not None else None
        now = self.now()
        with self.view() as view:
            return [r for r in view.list_resources(prefix) if may_see(view, actor, r.path, now)]

    def grants_of(self, actor: Actor, principal: str) -> list[GrantSource]:
        principal = _valid(check_principal, principal)
        now = self.now()
        with self.view() as view:
            require_principal_visible(view, actor, principal, now)
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
            return [
                s
                for s in sources
                if may_see_grant(view, actor, principal, Grant(s.resource, s.level), now)
            ]

    def roles_of(self, actor: Actor, org: str) -> dict[str, tuple[Grant, ...]]:
        org = _valid_org(org)
        now = self.now()
        with self.view() as view:
            require_reader(view, actor, org, now, f"list the roles of {org}")
            require_known_org(view, actor, org, now)
            return view.roles_of(org)

    def service_accounts(self, actor: Actor, org: str | None = None) -> list[ServiceAccountView]:
        org = _valid_org(org) if org is not None else None
        now = self.now()
        with self.view() as view:
            if org is not None:
                require_known_org(view, actor, org, now)
            return [a for a in view.service_accounts(org) if may_see_account(view, actor, a, now)]

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
            require_principal_visible(view, actor, principal, self.now())
            require_token_access(view, actor, principal, self.now())
            tokens: Sequence[TokenView] = view.tokens_of(principal)
        moment = self.now() if at is None else ensure_utc(at)
        if at is not None:  # the tokens as they stood then
            tokens = state_at(self.store, moment)[0].tokens_of(principal)
        return [t for t in tokens if include_inactive or t.live(moment)]

    def get_token(self, actor: Actor, token_id: str, *, owner: str | None = None) -> TokenView:
        """One token (never its secret), for whoever may see its principal's tokens; with
        ``owner``, only if it is that principal's (another's is not found)."""
        token_id = _valid(check_token_id, token_id)
        with self.view() as view:
            token = view.token(token_id)
            if token is None or owner not in (None, token.principal):
                raise NotFound(f"no token {token_id}" + (f" of {owner}" if owner else ""))
            require_token_access(view, actor, token.principal, self.now())
            return token

    def get_service_account(self, actor: Actor, account_id: str) -> ServiceAccountView:
        """One service account (deleted ones included), if the actor may see it."""
        account_id = _valid(check_service_account_id, account_id)
        with self.view() as view:
            require_principal_visible(view, actor, account_id, self.now())
            account = view.service_account(account_id)
            if account is None:
                raise NotFound(f"no service account {account_id}")
            if not may_see_account(view, actor, account, self.now()):
                raise PermissionDenied(f"{actor.label} may not see {account_id}")
            return account

    def client_credentials_of(
        self, actor: Actor, account_id: str, *, include_inactive: bool = False
    ) -> list[ClientCredentialView]:
        """A service account's client credentials (never their secrets), seen like its tokens."""
        account_id = _valid(check_service_account_id, account_id)
        now = self.now()
        with self.view() as view:
            require_principal_visible(view, actor, account_id, now)
            require_token_access(view, actor, account_id, now)
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

        Answers come from the one answer cache while the log's head stands still, exactly
        as ``verify``'s do (they share it).
        """
        wanted = level if level is not None else Level.READ
        answers = self._answers
        jwt = looks_like_jwt(token)
        if jwt and keys is None:
            return Introspection(active=False, reason="unknown_key")
        if answers is None:
            return self._introspect_now(token, jwt, keys, issuer, resource, wanted)
        key = self._answer_key(token, jwt, resource, wanted)
        cached = answers.lookup(key, self.now().timestamp())
        self._observe_answer(cached is not None)
        if cached is not None:
            return _as_introspection(cached, resource)
        if not jwt:
            return _as_introspection(
                self._verify_now(token, resource, wanted, keep_in=(answers, key)), resource
            )
        generation = answers.generation()  # before reading: see HeadGatedCache.put
        answer = self._introspect_now(token, jwt, keys, issuer, resource, wanted)
        if answer.active or answer.reason in CACHED_INACTIVE:
            answers.put(key, answer, answer.exp if answer.active else None, generation)
        return answer

    def peek_introspection(
        self, token: str, *, resource: str | None = None, level: Level | None = None
    ) -> Introspection | None:
        """A cached introspection answer that needs no database round trip (None when there is
        none, or the cache is past its staleness bound): for an event loop, which must not
        wait on the database."""
        answers = self._answers
        if answers is None:
            return None
        wanted = level if level is not None else Level.READ
        key = self._answer_key(token, looks_like_jwt(token), resource, wanted)
        found = answers.peek(key, self.now().timestamp())
        if found is None:
            return None
        self._observe_answer(True)
        return _as_introspection(found, resource)

    def observe_answers(self, observer: Callable[[bool], None]) -> None:
        """Call ``observer(hit)`` for each introspection answered from the cache or not."""
        self._answer_observer = observer

    def _observe_answer(self, hit: bool) -> None:
        observer = self._answer_observer
        if observer is not None:
            observer(hit)

    @staticmethod
    def _answer_key(
        token: str, jwt: bool, resource: str | None, wanted: Level
    ) -> tuple[object, ...]:
        if jwt:  # exactly the bytes presented: an altered JWT never meets a cached answer
            return ("jwt", hashlib.sha256(token.encode()).digest(), resource, wanted)
        return (secret_digest(token), resource, wanted)

    def _introspect_now(
        self,
        token: str,
        jwt: bool,
        keys: KeyRing | None,
        issuer: str,
        resource: str | None,
        wanted: Level,
    ) -> Introspection:
        if jwt:
            assert keys is not None  # answered unknown_key before
            return self._introspect_access_token(token, keys, issuer, resource, wanted)
        return _as_introspection(self._verify_now(token, resource, wanted), resource)

    def _introspect_access_token(
        self,
        token: str,
        keys: KeyRing,
        issuer: str,
        resource: str | None,
        wanted: Level,
    ) -> Introspection:
        if resource is not None:
            resource = _valid(check_path, resource)
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
            current = standing(view, credential.account_id)
        # The access token is judged as a token that lives while its credential does and
        # carries the grants it was signed with: the one rule decides.
        as_token = TokenView(
            token_id=str(claims["jti"]),
            principal=credential.account_id,
            kind="access_token",
            grants=granted,
            name=None,
            issued_at=datetime.fromtimestamp(int(claims["iat"]), UTC),
            parent_id=None,
            expires_at=credential.expires_at,
            revoked_at=credential.revoked_at,
        )
        answer = answer_token(as_token, current, now)
        if not answer.usable:
            return Introspection(active=False, reason=answer.reason)
        effective = answer.effective_grants()
        return Introspection(
            active=True,
            sub=credential.account_id,
            scope=" ".join(str(g) for g in effective),
            exp=int(claims["exp"]),
            iat=int(claims["iat"]),
            token_type="access_token",
            client_id=credential.client_id,
            token_id=str(claims["jti"]),
            iss=str(claims["iss"]),
            org=service_account_org(credential.account_id),
            grants=effective,
            allowed=None if resource is None else answer.level_on(resource) >= wanted,
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
        """The events matching ``query`` that ``actor`` may see (``may_see_event``), up to
        its limit: the limit counts the rows the actor may see, so a narrow token asking
        for 3 gets 3 while there are 3 to see, however many others lie between."""
        if sees_every_event(actor):  # no page to filter
            return audit.search(self.store, query)
        now = self.now()
        readable: dict[str, bool] = {}
        page = dataclasses.replace(query, limit=max(query.limit, _AUDIT_PAGE))
        visible: list[AuditEntry] = []
        beyond: int | None = None
        with self.view() as view:

            def may_read_org(name: str) -> bool:
                if name not in readable:
                    readable[name] = view.org_exists(name) and may(
                        view, actor, name, Level.READ, now
                    )
                return readable[name]

            while len(visible) < query.limit:
                entries = audit.search(self.store, page, beyond=beyond)
                visible.extend(
                    entry
                    for entry in entries
                    if may_see_event(actor, subjects(entry.event), may_read_org)
                )
                if len(entries) < page.limit:
                    break
                beyond = entries[-1].record.position
        return visible[: query.limit]

    def require_operator(self, actor: Actor, action: str) -> None:
        """Maintenance (rebuilding projections, exporting the whole log) is the operator's."""
        require_operator(actor, action)

    def explain_token(self, actor: Actor, token_id: str) -> audit.Explanation:
        """A token's story and the cause of its revocation, for whoever may see the token."""
        self.get_token(actor, token_id)
        return audit.explain(self.store, token_id)


def _as_introspection(answer: Verification | Introspection, resource: str | None) -> Introspection:
    """A ledger token's answer in RFC 7662's shape (an access token's is one already)."""
    if isinstance(answer, Introspection):
        return answer
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
