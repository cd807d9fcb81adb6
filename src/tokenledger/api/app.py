"""The application factory: one FastAPI app over one ``Ledger``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy.engine import URL
from starlette.types import ASGIApp

from tokenledger.api import routes
from tokenledger.api.dry_run import DryRunMiddleware, preview_answer
from tokenledger.api.fastpath import IntrospectionFastPath
from tokenledger.api.metrics import MetricsMiddleware
from tokenledger.api.problems import install_error_handlers
from tokenledger.api.state import DEFAULT_ISSUER, ApiSettings, ApiState
from tokenledger.console import router as console_router
from tokenledger.domain.commands import parse_duration
from tokenledger.domain.usage import DEFAULT_USAGE_INTERVAL, check_usage_interval
from tokenledger.errors import ValidationError
from tokenledger.service import DEFAULT_ACCESS_TOKEN_LIFETIME, Ledger
from tokenledger.service.commands import PreviewReady
from tokenledger.service.keys import KeyStore
from tokenledger.store import DEFAULT_DATABASE_URL, parse_database_url

__all__ = [
    "ACCESS_TOKEN_LIFETIME_ENV",
    "CACHE_STALENESS_ENV",
    "DATABASE_URL_ENV",
    "FOLLOW_LOG_ENV",
    "ISSUER_ENV",
    "PUBLIC_URL_ENV",
    "USAGE_INTERVAL_ENV",
    "app_from_env",
    "create_app",
    "create_asgi_app",
    "parse_staleness",
    "settings_from_env",
]

DATABASE_URL_ENV = "TOKENLEDGER_DATABASE_URL"
ISSUER_ENV = "TOKENLEDGER_ISSUER"
ACCESS_TOKEN_LIFETIME_ENV = "TOKENLEDGER_ACCESS_TOKEN_LIFETIME"
CACHE_STALENESS_ENV = "TOKENLEDGER_CACHE_STALENESS"
FOLLOW_LOG_ENV = "TOKENLEDGER_FOLLOW_LOG"
PUBLIC_URL_ENV = "TOKENLEDGER_PUBLIC_URL"
USAGE_INTERVAL_ENV = "TOKENLEDGER_USAGE_INTERVAL"

_DESCRIPTION = """\
Management of orgs, users, resources, grants, roles, service accounts and tokens;
OAuth 2.0 client credentials (RFC 6749 4.4), introspection (RFC 7662) and
revocation (RFC 7009). Every call but health, metrics and discovery needs
`Authorization: Bearer <ledger token or access token>`; errors are
`{"error", "error_description"}`. Users log in through their org's OpenID Connect
provider (`/oauth2/authorize`, authorization code with PKCE).
"""


def create_app(source: str | URL | Ledger, settings: ApiSettings | None = None) -> FastAPI:
    """The API over ``source``: a database URL (opened here, closed at shutdown) or a
    ``Ledger`` the caller owns."""
    owned = not isinstance(source, Ledger)
    ledger = Ledger.open(source) if not isinstance(source, Ledger) else source
    settings = settings or ApiSettings()
    if settings.usage_interval is not None and ledger.usage is None:
        ledger.record_uses(settings.usage_interval)
    state = ApiState(ledger=ledger, settings=settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()
        if owned:
            ledger.close()

    app = FastAPI(
        title="TokenLedger",
        version="2",
        description=_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.tokenledger = state
    install_error_handlers(app)
    # ?dry_run=true: the routes preview their command (api.dry_run), answered here.
    app.add_exception_handler(PreviewReady, preview_answer)
    app.add_middleware(DryRunMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    app.include_router(routes.system.router)
    app.include_router(routes.oauth.router)
    app.include_router(routes.login.router)
    app.include_router(routes.sessions.router)
    app.include_router(routes.identity.router)
    app.include_router(routes.orgs.router)
    app.include_router(routes.roles.router)
    app.include_router(routes.users.router)
    app.include_router(routes.tokens.principal_tokens_router("/v2/users", "user_id", "users"))
    app.include_router(routes.resources.router)
    app.include_router(routes.service_accounts.router)
    app.include_router(routes.suspension.router)
    app.include_router(
        routes.tokens.principal_tokens_router(
            "/v2/service_accounts", "account_id", "service_accounts"
        )
    )
    app.include_router(routes.endpoints.router)
    app.include_router(routes.webhooks.router)
    app.include_router(routes.audit.router)
    app.include_router(routes.events.router)
    app.include_router(routes.token_selection.router)  # before /v2/tokens/{token_id}
    app.include_router(routes.unused.router)  # before /v2/tokens/{token_id}
    app.include_router(routes.tokens.router)
    app.include_router(routes.rotation.router)
    app.include_router(routes.org_policies.router)
    app.include_router(console_router)  # the web console at /console (tokenledger.console)
    return app


def create_asgi_app(source: str | URL | Ledger, settings: ApiSettings | None = None) -> ASGIApp:
    """The API as served: ``create_app``'s FastAPI app behind the introspection fast path
    (``api.fastpath``), which answers the common ``POST /oauth2/introspect`` itself and
    hands everything else, lifespan included, to the FastAPI app."""
    return IntrospectionFastPath.in_front_of(create_app(source, settings))


def settings_from_env(database_url: URL) -> ApiSettings:
    """``TOKENLEDGER_ISSUER``, ``TOKENLEDGER_ACCESS_TOKEN_LIFETIME`` (e.g. ``1h``),
    ``TOKENLEDGER_CACHE_STALENESS`` (seconds, ``off`` for no cache),
    ``TOKENLEDGER_FOLLOW_LOG`` (``0`` re-reads the log's head instead) and the signing keys
    (``TOKENLEDGER_SIGNING_KEYS``, ``TOKENLEDGER_KEYS_FILE`` or the default file)."""
    lifetime_text = os.environ.get(ACCESS_TOKEN_LIFETIME_ENV, "").strip()
    lifetime: timedelta = (
        parse_duration(lifetime_text) if lifetime_text else DEFAULT_ACCESS_TOKEN_LIFETIME
    )
    return ApiSettings(
        issuer=os.environ.get(ISSUER_ENV, "").strip() or DEFAULT_ISSUER,
        access_token_lifetime=lifetime,
        keys=KeyStore.from_environment(database_url),
        cache_staleness=parse_staleness(os.environ.get(CACHE_STALENESS_ENV, "0")),
        follow_log=os.environ.get(FOLLOW_LOG_ENV, "1").strip().lower() not in ("0", "no", "off"),
        public_url=os.environ.get(PUBLIC_URL_ENV, "").strip() or None,
        usage_interval=parse_usage_interval(os.environ.get(USAGE_INTERVAL_ENV, "1h")),
    )


def parse_usage_interval(text: str) -> timedelta | None:
    """How often at most a credential's use is recorded: a duration from 1 minute to 1 day
    (``1h``, the default), or ``off``."""
    value = text.strip().lower()
    if value == "off":
        return None
    try:
        interval = parse_duration(value) if value else DEFAULT_USAGE_INTERVAL
        check_usage_interval(interval)
    except ValidationError as exc:
        raise ValidationError(f"invalid usage interval: {exc}") from None
    return interval


def parse_staleness(text: str) -> float | None:
    """Seconds (``0``, ``0.05``) or ``off``."""
    value = text.strip().lower()
    if value == "off":
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise ValidationError(
            f"invalid cache staleness {text[:20]!r}: seconds such as 0 or 0.05, or 'off'"
        ) from None
    if not 0 <= seconds <= 60:
        raise ValidationError("the cache staleness must lie between 0 and 60 seconds")
    return seconds


def app_from_env() -> ASGIApp:
    """The factory uvicorn workers call (``tokenledger.api:app_from_env``, ``factory=True``):
    the database from ``TOKENLEDGER_DATABASE_URL``, the rest from ``settings_from_env``."""
    url = parse_database_url(os.environ.get(DATABASE_URL_ENV, DEFAULT_DATABASE_URL))
    return create_asgi_app(url, settings_from_env(url))
