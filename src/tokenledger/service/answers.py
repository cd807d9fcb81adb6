"""Token answers: "is this token valid, and may it do this?", now or at a past moment, for a
ledger token's secret or an access token, through the one answer cache.

The rule itself is ``domain.authority.answer_token``; this module finds what it needs (the
token by its secret's hash, its principal's standing) as cheaply as each backend allows, and
keeps answers while the log's head stands still or, in a process that follows the log
(``service.follower``), until an event changes them (``service.cache``). The ``*_at_least``
forms also say the log position an answer reflects, at least a position asked for.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, NamedTuple, cast

from tokenledger.clock import SystemClock, ensure_utc
from tokenledger.domain.affected import Affected
from tokenledger.domain.authority import Verification, answer_token, verify_secret, verify_token
from tokenledger.domain.model import Actor, Introspection, is_service_account_id
from tokenledger.domain.names import resource_path
from tokenledger.domain.permissions import Level
from tokenledger.domain.secrets import hash_secret, looks_like_jwt, parse_secret, secret_digest
from tokenledger.errors import PermissionDenied, PositionNotReached, ValidationError
from tokenledger.projections import SqlLedgerView
from tokenledger.projections.temporal_view import view_at
from tokenledger.service import oauth
from tokenledger.service.cache import FollowedCache, HeadGatedCache
from tokenledger.service.reading import Reader, valid, within_log
from tokenledger.service.usage import recording_uses
from tokenledger.store import EventStore
from tokenledger.store.eventstore import read_head
from tokenledger.store.readers import ReadConnections

if TYPE_CHECKING:  # the signing keys (cryptography) load with the first access token
    from tokenledger.service.follower import LogFollower
    from tokenledger.service.keys import KeyRing
    from tokenledger.service.usage import UsageRecorder

__all__ = [
    "CACHED_INACTIVE",
    "DEFAULT_VERIFY_STALENESS",
    "MIN_POSITION_WAIT",
    "Freshness",
    "TokenAnswers",
]

#: Seconds a token answer may be reused without re-reading the log's head. ``0``: the head
#: (one small indexed query) is read for every answer served from the cache, so no answer is
#: ever stale. A positive bound trades that query for a delay: a revocation committed by
#: another process reaches this one's answers within it (one committed through this
#: ``Ledger`` at once). The one default for ``Ledger`` and the HTTP API alike.
DEFAULT_VERIFY_STALENESS = 0.0

#: The only inactive answers ever kept: those that took more than one lookup to reach.
#: Unknown and malformed secrets are never kept, so guessing cannot fill the cache.
CACHED_INACTIVE = frozenset({"revoked", "expired", "principal_disabled"})

# A cached answer's key: the secret's SHA-256 digest, the resource and the level; an access
# token's answer (an ``Introspection``) is kept under its exact bytes' digest after "jwt".
_AnswerKey = tuple[object, ...]
_Answers = (
    HeadGatedCache[Verification | Introspection] | FollowedCache[Verification | Introspection]
)

#: How long an answer asked to reflect at least a position waits for this process's
#: follower to apply it (seconds) before reading the projections directly.
MIN_POSITION_WAIT = 0.5


class Freshness(NamedTuple):
    """The log position the next answers reflect at least, and whether they must be read
    from the projections (``read_through``) because the cache is not known to be there."""

    position: int
    read_through: bool


class TokenAnswers:
    """Every answer about a token, and the one cache they share.

    Any write committed through ``store`` drops every cached answer at once, so this
    process never answers from before its own writes.
    """

    def __init__(
        self,
        reader: Reader,
        readers: ReadConnections | None,
        *,
        staleness: float | None = DEFAULT_VERIFY_STALENESS,
    ) -> None:
        self._reader = reader
        self._store: EventStore = reader.store
        self._readers = readers
        # The system clock's "now" is read as time.time() on the hot path (no datetime
        # built); any other clock is asked as usual.
        self._wall_clock = type(self._store.clock) is SystemClock
        self._answers: _Answers | None = None
        self._follower: LogFollower | None = None
        self._head_read_at: float | None = None
        self._observer: Callable[[bool], None] | None = None
        # Notes each successful answer as a use of its credential (``service.usage``).
        self._usage: UsageRecorder | None = None
        self.use_cache(staleness)
        self._store.on_commit(self._forget)

    def record_uses(self, recorder: UsageRecorder | None) -> None:
        """Note every successful answer (a cached one too) as a use of its credential."""
        self._usage = recorder

    def note_use(self, credential_id: str | None) -> None:
        """A credential was used successfully outside these answers (a client credential
        authenticated, a session refreshed): memory only."""
        usage = self._usage
        if usage is not None:
            usage.note(credential_id)

    def _note(self, answer: Verification | Introspection, now: float | None = None) -> None:
        usage = self._usage
        if usage is None or not answer.active:
            return
        # An access token's use is its source's (session or client credential).
        source = answer.source if isinstance(answer, Introspection) else None
        if now is None and self._wall_clock:
            now = time.time()
        usage.note(source or answer.token_id, now)

    # -- the cache -----------------------------------------------------------------------

    def use_cache(self, staleness: float | None) -> None:
        """Set the cache's staleness bound in seconds (``None``: no cache, every answer read
        from the projections). Forgets every answer kept so far."""
        if staleness is not None and not 0 <= staleness <= 60:
            raise ValidationError("the answer cache staleness must lie between 0 and 60 seconds")
        self._head_read_at = None
        if staleness is None:
            self._answers = None
        elif self._follower is not None:
            self._answers = FollowedCache(self._follower, self._read_head, staleness=staleness)
        else:
            self._answers = HeadGatedCache(self._read_head, staleness=staleness)

    def follow(self) -> None:
        """Keep the cache exact by following the log (``service.follower``) instead of
        re-reading its head: each event drops the answers it may change. ``staleness``
        then bounds only how long the cache trusts a read of the head while the follower
        does not hear of every commit."""
        if self._follower is not None or self._readers is None:
            # An in-memory database's commits are all this process's own, and each one
            # already drops the cache (``_forget``).
            return
        from tokenledger.service.follower import LogFollower  # loaded with the first follower

        self._follower = LogFollower(self._store, self._drop)
        self.use_cache(self.staleness if self._answers is not None else None)

    @property
    def following(self) -> bool:
        return self._follower is not None

    def _drop(self, affected: Affected) -> None:
        answers = self._answers
        if isinstance(answers, FollowedCache):
            answers.drop(affected)

    def stop_following(self) -> None:
        """Stop following the log; the cache re-reads the head again."""
        follower = self._follower
        if follower is None:
            return
        self._follower = None
        follower.close()
        self.use_cache(self.staleness if self._answers is not None else None)

    def followed_position(self) -> int | None:
        """The position the follower has applied, if this process follows the log with a
        cache (no database query: for an event loop); None otherwise."""
        follower = self._follower
        if follower is None or self._answers is None or follower.position < 0:
            return None
        return follower.position

    def wait_for(self, position: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the follower to apply ``position`` (True at
        once when not following: every answer is then read against the head)."""
        follower = self._follower
        return follower is None or follower.wait_for(position, timeout)

    def freshness(self, min_position: int | None = None) -> Freshness:
        """The position the next answers reflect at least, and whether they must be read
        from the projections. Given ``min_position`` that the cache is not known to reflect,
        the head is read: ``PositionNotReached`` at once when it is short (so no caller can
        hold a thread waiting for a position that may never come); otherwise the follower
        is given ``MIN_POSITION_WAIT`` to apply it, and answers are read through if it has
        not."""
        answers = self._answers
        follower = self._follower
        known: int | None = None
        if answers is not None and follower is not None:
            known = follower.position if follower.position >= 0 else None
        elif isinstance(answers, HeadGatedCache):
            known = answers.generation()  # its entries hold for that head
        if known is not None and (min_position is None or known >= min_position):
            return Freshness(known, read_through=False)
        head = self._read_head()
        if min_position is not None and head < min_position:
            raise PositionNotReached(min_position, head)
        if (
            min_position is not None
            and answers is not None
            and follower is not None
            and follower.position >= 0
            and follower.wait_for(min_position, MIN_POSITION_WAIT)
        ):
            return Freshness(follower.position, read_through=False)
        return Freshness(head, read_through=True)

    def verify_at_least(
        self,
        secret: str,
        min_position: int | None,
        *,
        resource: str | None = None,
        level: Level | None = None,
    ) -> tuple[Verification, int]:
        """``verify``, and the log position the answer reflects: at least ``min_position``
        (``freshness``). May query the database."""
        fresh = self.freshness(min_position)
        answer = self.verify(
            secret, resource=resource, level=level, read_through=fresh.read_through
        )
        return answer, fresh.position

    def introspect_at_least(
        self,
        token: str,
        keys: KeyRing | None,
        min_position: int | None,
        *,
        issuer: str,
        resource: str | None = None,
        level: Level | None = None,
    ) -> tuple[Introspection, int]:
        """``introspect``, and the log position the answer reflects: at least
        ``min_position`` (``freshness``). May query the database."""
        fresh = self.freshness(min_position)
        answer = self.introspect(
            token,
            keys,
            issuer=issuer,
            resource=resource,
            level=level,
            read_through=fresh.read_through,
        )
        return answer, fresh.position

    @property
    def cached(self) -> int:
        """How many answers the cache holds now."""
        return 0 if self._answers is None else len(self._answers)

    @property
    def staleness(self) -> float | None:
        return None if self._answers is None else self._answers.staleness

    def observe(self, observer: Callable[[bool], None]) -> None:
        """Call ``observer(hit)`` for each introspection answered from the cache or not."""
        self._observer = observer

    def past_bound(self) -> bool:
        """Whether the cache, with a positive staleness, went past its bound since the head was
        last read, so that ``peek_introspection`` answers nothing until ``refresh``. Always
        false at staleness 0, where nothing is ever peeked (unless following the log)."""
        answers = self._answers
        if isinstance(answers, FollowedCache):
            return bool(answers.staleness) and answers.past_bound()
        if answers is None or not answers.staleness:
            return False
        read_at = self._head_read_at
        return read_at is None or time.monotonic() - read_at >= answers.staleness

    def refresh(self) -> None:
        """Re-read the log's head if the bound has passed (a database query); the cache
        forgets its answers if the head moved."""
        answers = self._answers
        if isinstance(answers, FollowedCache):
            answers.vouched()
        elif answers is not None:
            answers.generation()

    def _forget(self) -> None:
        """This process appended to the log: no earlier answer may be served any more (a
        recorded use changes no answer)."""
        if self._answers is not None and not recording_uses():
            self._answers.invalidate()
            self._head_read_at = None

    def _read_head(self) -> int:
        started = time.monotonic()
        if self._readers is None:
            with self._reader.view() as view:
                position = read_head(view.connection).position
        else:
            with self._readers.statement() as connection:
                position = read_head(connection).position
        self._head_read_at = started
        return position

    def _observe(self, hit: bool) -> None:
        observer = self._observer
        if observer is not None:
            observer(hit)

    # -- ledger tokens -------------------------------------------------------------------

    def verify(
        self,
        secret: str,
        *,
        resource: str | None = None,
        level: Level | None = None,
        read_through: bool = False,
    ) -> Verification:
        """Is the token active, and (given a resource) does it allow ``level`` there now?

        Answers are reused while the log's head stands still; an active answer is never
        reused past its token's expiry. ``read_through`` reads the projections whatever
        the cache holds (see ``freshness``).
        """
        wanted = level if level is not None else Level.READ
        answers = self._answers
        if answers is None or read_through:
            answer = self._verify_now(secret, resource, wanted)
            self._note(answer)
            return answer
        # Looked up before any validation: only answers to valid input are ever kept.
        key = (secret_digest(secret), resource, wanted)
        now = time.time() if self._wall_clock else self._reader.now().timestamp()
        cached = answers.lookup(key, now)
        if cached is not None:
            usage = self._usage
            if usage is not None and cached.active:
                if not usage.stamp_from <= now < usage.stamp_until:
                    usage.stamp(now)  # once a second at most
                usage.note_id(cached.token_id)  # type: ignore[arg-type]  # one append
            # A secret's key never holds an Introspection (no cast: this is the hot path).
            return cached  # type: ignore[return-value]
        answer = self._verify_now(secret, resource, wanted, keep_in=(answers, key))
        self._note(answer, now)
        return answer

    def _verify_now(
        self,
        secret: str,
        resource: str | None,
        wanted: Level,
        *,
        keep_in: tuple[_Answers, _AnswerKey] | None = None,
    ) -> Verification:
        """The answer read from the projections (and kept in the cache ``keep_in`` names)."""
        if resource is not None:
            resource = valid(resource_path, resource)
        try:
            parse_secret(secret)
        except ValidationError:
            return Verification(active=False, allowed=False, reason="malformed")
        if keep_in is None:
            return self._read(hash_secret(secret), resource, wanted)
        answers, key = keep_in
        generation = answers.generation()  # before reading: see HeadGatedCache.put
        digest = cast(bytes, key[0])  # a secret's key starts with its digest
        answer = self._read(digest.hex(), resource, wanted)
        if answer.active or answer.reason in CACHED_INACTIVE:
            expires = answer.exp if answer.active else None
            answers.put(key, answer, expires, generation, (answer.token_id, answer.sub))
        return answer

    def _read(self, secret_hash: str, resource: str | None, wanted: Level) -> Verification:
        now = self._reader.now
        if self._readers is None:
            with self._reader.view() as view:
                return _answer(view, secret_hash, now(), resource, wanted)
        # A service account's token is answered from one statement (the token joined with
        # its account's permission), which reads a snapshot by itself. A user's token takes
        # more (their grants, memberships, roles): on SQLite those are read again, all in one
        # snapshot.
        with self._readers.statement() as connection:
            view = SqlLedgerView(connection, remember=True)
            found = view.token_and_permission(secret_hash)
            if found is None:
                return verify_token(view, None, now())
            token, permission, suspended = found
            if is_service_account_id(token.principal):
                current = (permission,) if permission is not None else None
                answer = answer_token(token, current, now(), suspended=suspended)
                return answer.verification(resource, wanted)
            if not self._readers.snapshots_span_statements:
                return verify_token(view, token, now(), resource=resource, level=wanted)
        with self._readers.snapshot() as connection:
            view = SqlLedgerView(connection, remember=True)
            return _answer(view, secret_hash, now(), resource, wanted)

    def verify_at(
        self,
        secret: str,
        moment: datetime,
        *,
        resource: str | None = None,
        level: Level | None = None,
    ) -> tuple[Verification, int]:
        """The answer ``verify`` would have given at ``moment``, and the log position it
        reflects. The state then is read from the temporal projection (intervals of who held
        what, ``projections.temporal_view``), so the answer holds for the past even after the
        current projections have moved on, and costs a few index lookups however long the
        log."""
        if resource is not None:
            resource = valid(resource_path, resource)
        wanted = level if level is not None else Level.READ
        moment = within_log(self._reader, ensure_utc(moment), "the moment")
        with view_at(self._store, moment) as view:
            answer = verify_secret(view, secret, moment, resource=resource, level=wanted)
            return answer, view.position

    def authenticate(self, secret: str, *, read_through: bool = False) -> Actor:
        """The actor a presented ledger token stands for (``TOKENLEDGER_TOKEN``, a Bearer
        caller), judged like every token, through the cache (``read_through``: from the
        projections); ``PermissionDenied`` unless it is active. Decisions check the acting
        token again under the write lock."""
        try:
            parse_secret(secret)
        except ValidationError as exc:
            raise PermissionDenied(f"the presented token is not valid ({exc})") from None
        answer = self.verify(secret, read_through=read_through)
        if not answer.active or answer.sub is None or answer.token_id is None:
            raise PermissionDenied(f"the presented token is not valid ({answer.reason})")
        return Actor.through_token(answer.sub, answer.token_id)

    # -- introspection (ledger tokens and access tokens) --------------------------------

    def introspect(
        self,
        token: str,
        keys: KeyRing | None,
        *,
        issuer: str,
        resource: str | None = None,
        level: Level | None = None,
        read_through: bool = False,
    ) -> Introspection:
        """RFC 7662: is a ledger token's secret or an access token (JWT) active, for whom,
        with which effective grants (and, given a resource, does it allow ``level`` there)?
        Answered from the cache while the log's head stands still, as ``verify`` is."""
        wanted = level if level is not None else Level.READ
        answers = self._answers
        jwt = looks_like_jwt(token)
        if jwt and keys is None:
            return Introspection(active=False, reason="unknown_key")
        if answers is None or read_through:
            answer = self._introspect_now(token, jwt, keys, issuer, resource, wanted)
            self._note(answer)
            return answer
        key = _answer_key(token, jwt, resource, wanted)
        now = self._reader.now().timestamp()
        cached = answers.lookup(key, now)
        self._observe(cached is not None)
        if cached is not None:
            self._note(cached, now)
            return _as_introspection(cached, resource)
        if not jwt:
            verified = self._verify_now(token, resource, wanted, keep_in=(answers, key))
            self._note(verified, now)
            return _as_introspection(verified, resource)
        generation = answers.generation()  # before reading: see HeadGatedCache.put
        answer = self._introspect_now(token, jwt, keys, issuer, resource, wanted)
        if answer.active or answer.reason in CACHED_INACTIVE:
            expires = answer.exp if answer.active else None
            answers.put(key, answer, expires, generation, (answer.token_id, answer.sub))
        self._note(answer, now)
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
        key = _answer_key(token, looks_like_jwt(token), resource, wanted)
        now = self._reader.now().timestamp()
        found = answers.peek(key, now)
        if found is None:
            return None
        self._observe(True)
        self._note(found, now)
        return _as_introspection(found, resource)

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
            return oauth.introspect_access_token(
                self._reader, token, keys, issuer, resource, wanted
            )
        return _as_introspection(self._verify_now(token, resource, wanted), resource)


def _answer(
    view: SqlLedgerView, secret_hash: str, now: datetime, resource: str | None, wanted: Level
) -> Verification:
    token = view.token_by_secret_hash(secret_hash)
    return verify_token(view, token, now, resource=resource, level=wanted)


def _answer_key(token: str, jwt: bool, resource: str | None, wanted: Level) -> _AnswerKey:
    if jwt:  # exactly the bytes presented: an altered JWT never meets a cached answer
        return ("jwt", hashlib.sha256(token.encode()).digest(), resource, wanted)
    return (secret_digest(token), resource, wanted)


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
