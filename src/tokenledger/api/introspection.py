"""Token introspection (RFC 7662) as both ways in answer it: the FastAPI route
(``routes.oauth``) and the fast path in front of the app (``api.fastpath``).

Keeping the caller's check, the answer and its rendering here, in one place,
is what makes the two give the same status, headers and body bytes and move
the same metrics.
"""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import Response

from tokenledger.api.problems import REALM, ApiError
from tokenledger.api.security import unauthorised
from tokenledger.api.state import ApiState
from tokenledger.domain.model import Introspection
from tokenledger.domain.secrets import looks_like_jwt
from tokenledger.errors import PermissionDenied

__all__ = [
    "MAX_HINT_LENGTH",
    "MAX_SECRET_LENGTH",
    "MIN_POSITION_HEADER",
    "NO_STORE",
    "bearer_caller",
    "cached_bearer_caller",
    "client_caller",
    "introspect_as_bearer",
    "introspection_response",
    "min_position_of",
]

#: The longest secret a form field may carry (``token``, ``client_secret``).
MAX_SECRET_LENGTH = 10_000
#: The header asking for an answer that reflects at least a log position.
MIN_POSITION_HEADER = "tokenledger-min-position"
#: The longest optional form field (``token_type_hint``, ``resource``, ``level``, ...).
MAX_HINT_LENGTH = 400

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_INACTIVE_PREFIX = b'{"active":false,"log_position":'
_encoder = msgspec.json.Encoder()


def bearer_caller(state: ApiState, presented: str) -> str:
    """Who called with ``Authorization: Bearer <presented>``: any active ledger token or
    access token may introspect; 401 otherwise. May query the database."""
    if looks_like_jwt(presented):
        answer = state.introspect(presented)
        if not answer.active or answer.sub is None:
            raise unauthorised(f"the presented access token is not valid ({answer.reason})")
        return answer.sub
    try:
        return state.authenticate(presented).label
    except PermissionDenied as exc:
        raise unauthorised(str(exc)) from None


def client_caller(state: ApiState, client_id: str, client_secret: str) -> str:
    """Who called with client credentials (HTTP Basic); 401 ``invalid_client`` otherwise."""
    try:
        _, account = state.ledger.authenticate_client(client_id, client_secret)
    except PermissionDenied as exc:
        raise ApiError(
            401, "invalid_client", str(exc), {"WWW-Authenticate": f'Basic realm="{REALM}"'}
        ) from None
    return account.account_id


def cached_bearer_caller(state: ApiState, presented: str) -> bool:
    """Whether a cached answer already vouches for a Bearer caller. Never touches the
    database (``ApiState.peek``), so it may run on the event loop."""
    answer = state.peek(presented)
    return answer is not None and answer.active


def introspect_as_bearer(
    state: ApiState,
    presented: str,
    token: str,
    min_position: int | None = None,
) -> tuple[Introspection, int]:
    """The caller's check and the answer (with the log position it reflects) in one call:
    one trip to the thread pool."""
    bearer_caller(state, presented)
    return state.introspect_at_least(token, min_position)


def min_position_of(field: str | int | None, header: str | None) -> int | None:
    """The position an answer must reflect at least: the ``min_position`` field (form text,
    or a JSON number already checked) or the ``TokenLedger-Min-Position`` header (the larger,
    if both); 400 unless a whole number."""
    wanted: int | None = None
    for given in (field, header):
        if isinstance(given, int):
            given = str(given)
        if given is None or not given.strip():  # empty: absent, as FastAPI takes a form field
            continue
        text = given.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 19 or int(text) > 2**62:
            raise ApiError(
                400, "invalid_request", "min_position must be a log position (a whole number)"
            )
        wanted = int(text) if wanted is None else max(wanted, int(text))
    return wanted


def introspection_response(state: ApiState, answer: Introspection, position: int) -> Response:
    """The HTTP answer (counted by outcome): exactly ``{"active":false,"log_position":N}``
    when inactive; ``log_position`` is the log position the answer reflects at least."""
    state.metrics.count("introspections", "active" if answer.active else answer.reason or "?")
    if not answer.active:
        inactive = _INACTIVE_PREFIX + str(position).encode() + b"}"
        return Response(inactive, media_type="application/json", headers=NO_STORE)
    body: dict[str, Any] = {
        name: value
        for name, value in msgspec.structs.asdict(answer).items()
        if value is not None and name not in ("reason", "grants", "source")
    }
    body["grants"] = [{"resource": g.resource, "level": g.level} for g in answer.grants]
    body["log_position"] = position
    return Response(_encoder.encode(body), media_type="application/json", headers=NO_STORE)
