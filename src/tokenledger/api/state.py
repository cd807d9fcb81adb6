"""What every request handler reaches: the ledger, the signing keys, the settings, the metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import Request

from tokenledger.api.metrics import Metrics
from tokenledger.cache import HeadGatedCache
from tokenledger.domain.model import Actor, ActorKind, Introspection, is_service_account_id
from tokenledger.domain.permissions import Level
from tokenledger.domain.secrets import hash_secret
from tokenledger.errors import PermissionDenied
from tokenledger.keys import KeyRing, KeyStore
from tokenledger.ledger import DEFAULT_ACCESS_TOKEN_LIFETIME, Ledger

__all__ = ["DEFAULT_ISSUER", "MAX_ACCESS_TOKEN_LIFETIME", "ApiSettings", "ApiState", "api_state"]

#: The ``iss`` of access tokens unless configured (``--issuer``, ``TOKENLEDGER_ISSUER``).
DEFAULT_ISSUER = "tokenledger"
#: Access tokens live at most this long: retired signing keys stay published a day.
MAX_ACCESS_TOKEN_LIFETIME = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    issuer: str = DEFAULT_ISSUER
    access_token_lifetime: timedelta = DEFAULT_ACCESS_TOKEN_LIFETIME
    keys: KeyStore | None = None
    """Where the signing keys are; ``None`` serves no access tokens (``/oauth2/token`` is 503)."""
    cache_staleness: float | None = 0.0
    """Seconds the token-answer cache may go without re-reading the log head (see
    ``tokenledger.cache``); ``0`` is never stale, ``None`` turns the cache off."""

    def __post_init__(self) -> None:
        lifetime = self.access_token_lifetime
        if not timedelta(seconds=1) <= lifetime <= MAX_ACCESS_TOKEN_LIFETIME:
            raise ValueError("the access token lifetime must lie between 1 second and 1 day")
        if self.cache_staleness is not None and not 0 <= self.cache_staleness <= 60:
            raise ValueError("the cache staleness must lie between 0 and 60 seconds")


#: Inactive answers worth keeping: those that took more than one lookup to reach.
_CACHED_INACTIVE = frozenset({"revoked", "expired", "principal_disabled"})


@dataclass
class ApiState:
    ledger: Ledger
    settings: ApiSettings
    metrics: Metrics = field(default_factory=Metrics)
    answers: HeadGatedCache[Introspection] | None = None
    _head_read_at: float | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.settings.cache_staleness is not None and self.answers is None:
            self.answers = HeadGatedCache(self._read_head, staleness=self.settings.cache_staleness)

    def _read_head(self) -> int:
        started = time.monotonic()
        position = self.ledger.store.head().position
        self._head_read_at = started
        return position

    def head_is_stale(self) -> bool:
        """Whether the answer cache, with a positive staleness, went past its bound since
        the log's head was last read, so that ``peek`` answers nothing until
        ``refresh_head``. A hint kept beside the cache (never a reason to serve an answer:
        ``peek`` alone decides that); always false at staleness 0, where ``peek`` never
        answers and every lookup reads the head."""
        staleness = self.settings.cache_staleness
        if self.answers is None or not staleness:
            return False
        read_at = self._head_read_at
        return read_at is None or time.monotonic() - read_at >= staleness

    def refresh_head(self) -> None:
        """Re-read the log's head if the cache's bound has passed (a database query); the
        cache empties itself if the head moved."""
        if self.answers is not None:
            self.answers.generation()

    def key_ring(self) -> KeyRing | None:
        store = self.settings.keys
        return None if store is None else store.ring()

    def introspect(
        self, token: str, *, resource: str | None = None, level: Level | None = None
    ) -> Introspection:
        """``Ledger.introspect``, reusing an earlier answer while the log has not moved."""

        def compute() -> Introspection:
            return self.ledger.introspect(
                token,
                self.key_ring(),
                issuer=self.settings.issuer,
                resource=resource,
                level=level,
            )

        if self.answers is None:
            return compute()
        key = (hash_secret(token), resource, level)
        cached, generation = self.answers.get(key, int(self.ledger.now().timestamp()))
        if cached is not None:
            self.metrics.count("answer_cache", "hit")
            return cached
        self.metrics.count("answer_cache", "miss")
        answer = compute()
        if answer.active or answer.reason in _CACHED_INACTIVE:
            self.answers.put(key, answer, answer.exp if answer.active else None, generation)
        return answer

    def peek(
        self, token: str, *, resource: str | None = None, level: Level | None = None
    ) -> Introspection | None:
        """A cached answer that needs no database round trip (``None`` when there is none)."""
        if self.answers is None:
            return None
        key = (hash_secret(token), resource, level)
        found = self.answers.peek(key, int(self.ledger.now().timestamp()))
        if found is not None:
            self.metrics.count("answer_cache", "hit")
        return found

    def authenticate(self, secret: str) -> Actor:
        """``Ledger.authenticate`` through the answer cache: the principal of an active
        ledger token; ``PermissionDenied`` otherwise."""
        if self.answers is None:
            return self.ledger.authenticate(secret)
        answer = self.introspect(secret)
        if not answer.active or answer.sub is None or answer.token_type == "access_token":
            raise PermissionDenied(f"the presented token is not valid ({answer.reason})")
        kind = ActorKind.SERVICE_ACCOUNT if is_service_account_id(answer.sub) else ActorKind.USER
        return Actor(kind=kind, principal=answer.sub, token_id=answer.token_id)

    def wrote(self) -> None:
        """This process appended to the log: no earlier answer may be served any more."""
        if self.answers is not None:
            self.answers.invalidate()
            self._head_read_at = None


async def api_state(request: Request) -> ApiState:
    """Async on purpose: a plain function would cost each request a hop to the threadpool."""
    state: ApiState = request.app.state.tokenledger
    return state
