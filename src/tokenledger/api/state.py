"""What every request handler reaches: the ledger, the signing keys, the settings, the metrics."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from fastapi import Request

from tokenledger.api.metrics import Metrics
from tokenledger.domain.model import Actor, Introspection
from tokenledger.domain.permissions import Level
from tokenledger.errors import PermissionDenied
from tokenledger.service import DEFAULT_ACCESS_TOKEN_LIFETIME, DEFAULT_VERIFY_STALENESS, Ledger
from tokenledger.service.keys import KeyRing, KeyStore

if TYPE_CHECKING:  # the OpenID Connect client (httpx) loads with the first login
    from tokenledger.service.oidc import OidcClient

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
    cache_staleness: float | None = DEFAULT_VERIFY_STALENESS
    """While the worker does not hear of every commit (its database connection for
    notifications is lost), seconds its token-answer cache may go without re-reading the
    log head (``tokenledger.service.cache``); ``0`` is never stale, ``None`` turns the
    cache off."""
    follow_log: bool = True
    """Keep the answer cache exact by following the log (``service.follower``)."""
    public_url: str | None = None
    """The server's address as browsers and identity providers reach it (behind a proxy,
    say); ``None``: the address each request came to."""
    usage_interval: timedelta | None = None
    """Record credentials' uses at most once per credential and interval (last used,
    ``service.usage``); ``None`` records none. ``serve`` records them every hour."""

    def __post_init__(self) -> None:
        lifetime = self.access_token_lifetime
        if not timedelta(seconds=1) <= lifetime <= MAX_ACCESS_TOKEN_LIFETIME:
            raise ValueError("the access token lifetime must lie between 1 second and 1 day")
        if self.cache_staleness is not None and not 0 <= self.cache_staleness <= 60:
            raise ValueError("the cache staleness must lie between 0 and 60 seconds")


@dataclass
class ApiState:
    """The app's view of one ``Ledger``. The token answers and their cache are the
    ledger's (one cache, one owner): the app sets its staleness bound and counts its hits."""

    ledger: Ledger
    settings: ApiSettings
    metrics: Metrics = field(default_factory=Metrics)
    _oidc: OidcClient | None = field(default=None, repr=False)
    _oidc_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.ledger.use_answer_cache(self.settings.cache_staleness)
        if self.settings.follow_log:
            self.ledger.answers.follow()
        self.ledger.observe_answers(
            lambda hit: self.metrics.count("answer_cache", "hit" if hit else "miss")
        )

    def head_is_stale(self) -> bool:
        """Whether the answer cache went past its staleness bound since the log's head was
        last read, so that ``peek`` answers nothing until ``refresh_head``."""
        return self.ledger.answers_past_bound()

    def refresh_head(self) -> None:
        """Re-read the log's head if the cache's bound has passed (a database query)."""
        self.ledger.refresh_answers()

    def key_ring(self) -> KeyRing | None:
        store = self.settings.keys
        return None if store is None else store.ring()

    def introspect(
        self, token: str, *, resource: str | None = None, level: Level | None = None
    ) -> Introspection:
        """``Ledger.introspect`` with this app's issuer and signing keys."""
        return self.ledger.introspect(
            token, self.key_ring(), issuer=self.settings.issuer, resource=resource, level=level
        )

    def introspect_at_least(
        self,
        token: str,
        min_position: int | None,
        *,
        resource: str | None = None,
        level: Level | None = None,
    ) -> tuple[Introspection, int]:
        """``TokenAnswers.introspect_at_least`` with this app's issuer and signing keys."""
        return self.ledger.answers.introspect_at_least(
            token,
            self.key_ring(),
            min_position,
            issuer=self.settings.issuer,
            resource=resource,
            level=level,
        )

    def followed_position(self, min_position: int | None = None) -> int | None:
        """The position cached answers reflect, if they may be peeked for a caller asking
        for ``min_position``; None when the answer needs the thread pool."""
        position = self.ledger.answers.followed_position()
        if position is None or (min_position is not None and position < min_position):
            return None
        return position

    def peek(
        self, token: str, *, resource: str | None = None, level: Level | None = None
    ) -> Introspection | None:
        """A cached answer that needs no database round trip (``None`` when there is none)."""
        return self.ledger.peek_introspection(token, resource=resource, level=level)

    def authenticate(self, secret: str, *, read_through: bool = False) -> Actor:
        """The principal of an active ledger token (``Ledger.authenticate``)."""
        return self.ledger.authenticate(secret, read_through=read_through)

    def authenticate_access_token(self, token: str) -> Actor:
        """The principal of a usable access token (JWT) this server signed."""
        return self.ledger.authenticate_access_token(
            token, self.signing_keys(), issuer=self.settings.issuer
        )

    def signing_keys(self) -> KeyRing:
        """The key ring, or ``PermissionDenied`` when this server signs nothing."""
        ring = self.key_ring()
        if ring is None or not ring.keys:
            raise PermissionDenied("this server has no signing keys: it accepts no access tokens")
        return ring

    def oidc(self) -> OidcClient:
        """One OpenID Connect client for every request (its caches are shared)."""
        with self._oidc_lock:
            if self._oidc is None:
                from tokenledger.service.oidc import OidcClient

                self._oidc = OidcClient()
            return self._oidc

    def close(self) -> None:
        self.ledger.answers.stop_following()
        if self._oidc is not None:
            self._oidc.close()


async def api_state(request: Request) -> ApiState:
    """Async on purpose: a plain function would cost each request a hop to the threadpool."""
    state: ApiState = request.app.state.tokenledger
    return state
