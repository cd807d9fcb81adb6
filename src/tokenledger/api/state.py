"""What every request handler reaches: the ledger, the signing keys, the settings, the metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from fastapi import Request

from tokenledger.api.metrics import Metrics
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

    def __post_init__(self) -> None:
        lifetime = self.access_token_lifetime
        if not timedelta(seconds=1) <= lifetime <= MAX_ACCESS_TOKEN_LIFETIME:
            raise ValueError("the access token lifetime must lie between 1 second and 1 day")


@dataclass
class ApiState:
    ledger: Ledger
    settings: ApiSettings
    metrics: Metrics = field(default_factory=Metrics)

    def key_ring(self) -> KeyRing | None:
        store = self.settings.keys
        return None if store is None else store.ring()


def api_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.tokenledger
    return state
