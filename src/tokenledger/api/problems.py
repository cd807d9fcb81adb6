"""Errors as HTTP answers: one JSON shape, ``{"error": ..., "error_description": ...}``.

The ``error`` codes are OAuth 2.0's where one fits (RFC 6749 section 5.2,
RFC 6750 section 3.1, RFC 7009 section 2.2.1) and otherwise name the ledger's
error category::

    ValidationError / bad request body   400  invalid_request
    a value the database cannot hold    400  invalid_request
    missing, invalid, expired token      401  invalid_token   (WWW-Authenticate: Bearer ...)
    failed client authentication         401  invalid_client  (WWW-Authenticate: Basic ...)
    PermissionDenied                     403  insufficient_scope
    NotFound / unknown route             404  not_found
    wrong method                         405  method_not_allowed
    PositionNotReached (min_position)    425  position_not_reached (Retry-After: 1)
    Conflict                             409  conflict
    StorageError, database unreachable   503  temporarily_unavailable
    IntegrityViolation, anything else    500  server_error (logged, never a traceback)

Descriptions are the ledger's one-line messages, which never repeat a secret.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tokenledger.domain.secrets import TokenKind
from tokenledger.errors import (
    Conflict,
    LedgerError,
    NotFound,
    PermissionDenied,
    PositionNotReached,
    StorageError,
    ValidationError,
)

__all__ = [
    "REALM",
    "ApiError",
    "bearer_challenge",
    "error_body",
    "error_response",
    "install_error_handlers",
]

logger = logging.getLogger("tokenledger.api")

REALM = "tokenledger"

_STATUS: tuple[tuple[type[LedgerError], int, str], ...] = (
    (ValidationError, 400, "invalid_request"),
    (PermissionDenied, 403, "insufficient_scope"),
    (NotFound, 404, "not_found"),
    # RFC 8470's "Too Early": the answer asked for depends on what is not in the log yet.
    (PositionNotReached, 425, "position_not_reached"),
    (Conflict, 409, "conflict"),
    (StorageError, 503, "temporarily_unavailable"),
)

_BY_HTTP_STATUS = {404: "not_found", 405: "method_not_allowed", 400: "invalid_request"}

# RFC 6750 section 3: error_description holds %x20-21 / %x23-5B / %x5D-7E only.
_NOT_IN_CHALLENGE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


class ApiError(Exception):
    """An answer decided by the HTTP layer itself (authentication, OAuth2 errors)."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or {}


def error_body(error: str, description: str) -> dict[str, str]:
    return {"error": error, "error_description": description}


def bearer_challenge(error: str | None = None, description: str | None = None) -> str:
    """A ``WWW-Authenticate`` value (RFC 6750 section 3); no error when no token was sent."""
    parts = [f'Bearer realm="{REALM}"']
    if error is not None:
        parts.append(f'error="{error}"')
    if description is not None:
        parts.append(f'error_description="{_NOT_IN_CHALLENGE.sub("", description)[:200]}"')
    return ", ".join(parts)


def _answer(status: int, error: str, description: str, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(
        error_body(error, description),
        status_code=status,
        headers={"Cache-Control": "no-store", **headers},
    )


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _answer(exc.status, exc.error, exc.description, exc.headers)


async def _ledger_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LedgerError)
    for cls, status, error in _STATUS:
        if isinstance(exc, cls):
            headers = {}
            if status == 403 and request.headers.get("authorization"):
                headers["WWW-Authenticate"] = bearer_challenge(error, str(exc))
            if status == 425:
                headers["Retry-After"] = "1"
            if status == 503:
                logger.warning("storage error on %s: %s", request.url.path, exc)
            return _answer(status, error, str(exc), headers)
    logger.error("ledger error on %s: %s", request.url.path, exc)
    return _answer(500, "server_error", str(exc), {})


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return _answer(400, "invalid_request", describe_request_errors(exc), {})


def describe_request_errors(exc: RequestValidationError) -> str:
    """The first problem with the request, without repeating the input (it may be a secret)."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    # A body that fits none of a route's shapes (native, Aruna's) fails each: tell what the
    # nearest shape (the one with the fewest problems) found, and there a field it does not
    # know before one it missed.
    shapes: dict[object, list[Any]] = {}
    for error in errors:
        where = tuple(error.get("loc", ()))
        shape = where[1] if len(where) > 2 and where[0] == "body" else None
        shapes.setdefault(shape, []).append(error)
    nearest = min(shapes.values(), key=len) if len(shapes) > 1 else list(errors)
    unknown = [e for e in nearest if e.get("type") == "extra_forbidden"]
    first = unknown[0] if unknown else nearest[0]
    parts = list(first.get("loc", ()))
    if len(shapes) > 1 and len(parts) > 2:
        del parts[1]  # the shape's own name (a model class) says nothing to a caller
    location = ".".join(str(part) for part in parts if part != "body")
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON"
    if any(kind.prefix in location for kind in TokenKind):
        location = "(a field name that looks like a token secret)"
    return f"{location[:80]}: {message}" if location else message


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error = _BY_HTTP_STATUS.get(exc.status_code, "invalid_request")
    if exc.status_code >= 500:
        error = "server_error"
    return _answer(exc.status_code, error, str(exc.detail), dict(exc.headers or {}))


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OperationalError)
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unreachable"
    logger.warning("database error on %s: %s", request.url.path, reason)
    return _answer(503, "temporarily_unavailable", f"database error: {reason}", {})


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    # A value the database refuses (PostgreSQL holds no NUL byte in text) that reached a
    # query without a rule of its own at the edge: bad input, as the CLI says, not a 500.
    assert isinstance(exc, DataError)
    reason = next(iter(str(exc.orig).strip().splitlines()), "invalid value")
    logger.warning("database refused a value on %s: %s", request.url.path, reason)
    return _answer(400, "invalid_request", f"invalid input: {reason}", {})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unexpected error on %s %s", request.method, request.url.path)
    return _answer(500, "server_error", "internal error (logged on the server)", {})


_Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]

#: Each error's answer. ``Exception`` is the last resort: Starlette's ServerErrorMiddleware
#: answers with it, the others are its ExceptionMiddleware's.
_HANDLERS: dict[type[Exception], _Handler] = {
    ApiError: _api_error,
    LedgerError: _ledger_error,
    RequestValidationError: _invalid_request,
    StarletteHTTPException: _http_error,
    OperationalError: _database_error,
    DataError: _data_error,
    Exception: _unexpected,
}


def install_error_handlers(app: FastAPI) -> None:
    for exc_class, handler in _HANDLERS.items():
        app.add_exception_handler(exc_class, handler)


async def error_response(request: Request, exc: Exception) -> JSONResponse:
    """The answer the app's handlers give to ``exc``, for code that runs in front of FastAPI.

    Looked up along the exception's class hierarchy as Starlette does, so the nearest
    handler wins; anything unforeseen is logged and answered 500 without a traceback.
    """
    for exc_class in type(exc).__mro__:
        handler = _HANDLERS.get(exc_class)
        if handler is not None:
            return await handler(request, exc)
    return await _unexpected(request, exc)  # not reached: Exception is in every MRO
