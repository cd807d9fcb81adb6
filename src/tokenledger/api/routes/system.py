"""Health, metrics and discovery: the calls that need no token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from tokenledger import __version__
from tokenledger.api.deps import State
from tokenledger.api.dry_run import DRY_RUN_FEATURE
from tokenledger.api.routes import log as log_routes
from tokenledger.api.routes.oauth import GRANT_TYPES
from tokenledger.api.schemas import ErrorOut
from tokenledger.errors import LedgerError
from tokenledger.service.federation import SUBJECT_TOKEN_TYPES

__all__ = ["router"]

router = APIRouter(tags=["system"])

_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


class HealthOut(BaseModel):
    status: str
    head_position: int
    version: str = Field(description="The server's TokenLedger version.")
    features: list[str] = Field(
        description="What this server honours beyond the calls themselves: `dry_run` "
        "(`?dry_run=true` on every mutating call; a client sends one only to a server "
        "listing it)."
    )


#: What ``/healthz`` says this server honours.
FEATURES = (DRY_RUN_FEATURE,)


@router.get(
    "/healthz",
    response_model=HealthOut,
    responses={503: {"model": ErrorOut, "description": "The database cannot be used."}},
)
def healthz(state: State) -> HealthOut:
    """Ready when the database answers; reports the log's head position, the server's
    version and the features it honours."""
    return HealthOut(
        status="ok",
        head_position=state.ledger.store.head().position,
        version=__version__,
        features=list(FEATURES),
    )


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(state: State) -> PlainTextResponse:
    """Prometheus text: requests and latency by route and status, verifications by outcome,
    the log's head position."""
    try:
        head = float(state.ledger.store.head().position)
        up = 1.0
    except (SQLAlchemyError, LedgerError):
        head, up = float("nan"), 0.0
    gauges = [
        ("tokenledger_log_head_position", "Position of the last event in the log.", head),
        ("tokenledger_database_up", "1 when the database answered this scrape.", up),
    ]
    return PlainTextResponse(state.metrics.render(gauges), media_type=_PROMETHEUS)


@router.get("/.well-known/jwks.json")
def jwks(state: State) -> JSONResponse:
    """The public signing keys of access tokens (RFC 7517), retired ones until they lapse."""
    ring = state.key_ring()
    keys: dict[str, Any] = ring.jwks() if ring is not None else {"keys": []}
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=60"})


@router.get("/.well-known/tokenledger-log-key", response_class=PlainTextResponse)
def log_key(state: State) -> PlainTextResponse:
    """The verifier key of the log's signed checkpoints, beside the JWKS (as ``/v2/log/key``)."""
    return log_routes.verifier_key_text(state)


@router.get("/.well-known/oauth-authorization-server")
def authorization_server_metadata(request: Request, state: State) -> dict[str, Any]:
    """RFC 8414 metadata: the endpoints, grants and methods this server supports."""
    base = (state.settings.public_url or str(request.base_url)).rstrip("/")
    return {
        "issuer": state.settings.issuer,
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "token_endpoint": f"{base}/oauth2/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "introspection_endpoint": f"{base}/oauth2/introspect",
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "grant_types_supported": list(GRANT_TYPES),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "bearer",
            "client_secret_basic",
        ],
        "revocation_endpoint_auth_methods_supported": ["bearer", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA"],
        "subject_token_types_supported": sorted(SUBJECT_TOKEN_TYPES),
    }


# The log's checkpoints and proofs: served with the rest of what discovery points at.
router.include_router(log_routes.router)
