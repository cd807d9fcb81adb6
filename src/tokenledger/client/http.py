"""One server's HTTP API: a connection pool, JSON answers, and the ledger's errors.

Every error answer of the API is ``{"error", "error_description"}`` with the ledger's one-line
message; it comes back here as the ledger's own exception class, with that message, so that a
caller (the command line above all) treats a refusal from a server exactly as one from a
database::

    400  ValidationError      404  NotFound        503  StorageError
    401  PermissionDenied     409  Conflict        unreachable  StorageError
    403  PermissionDenied     425  Conflict        other  LedgerError

The token endpoint's errors (RFC 6749 section 5.2: ``invalid_grant``, ``invalid_client``,
...) say that a credential was refused, whatever their status: ``PermissionDenied``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

import httpx
import msgspec

from tokenledger.errors import (
    Conflict,
    LedgerError,
    NotFound,
    PermissionDenied,
    StorageError,
    ValidationError,
)

__all__ = ["DEFAULT_TIMEOUT", "Http", "error_for"]

#: Seconds to connect, and to wait for each answer.
DEFAULT_TIMEOUT = 30.0

_BY_STATUS: dict[int, type[LedgerError]] = {
    400: ValidationError,
    401: PermissionDenied,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    425: Conflict,  # a min_position beyond the log's head
    503: StorageError,
}


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"tokenledger-client/{version('tokenledger')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare source tree
        return "tokenledger-client"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def error_for(response: httpx.Response, *, token_endpoint: bool = False) -> LedgerError:
    """The ledger error an error answer stands for."""
    try:
        body = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        body = None
    code = description = None
    if isinstance(body, dict):
        code = body.get("error") if isinstance(body.get("error"), str) else None
        text = body.get("error_description")
        description = text if isinstance(text, str) and text else None
    status = response.status_code
    if description is None:
        description = code or f"the server answered {status} {response.reason_phrase}".strip()
    message = _one_line(description)
    if status >= 500:
        if status == 503:
            return StorageError(message)
        return LedgerError(f"the server failed ({status}): {message}")
    if token_endpoint:
        return PermissionDenied(f"{code}: {message}" if code and code != message else message)
    return _BY_STATUS.get(status, LedgerError)(message)


class Http:
    """Calls to one server (its base URL, without a trailing slash)."""

    def __init__(
        self,
        server: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server
        self._client = httpx.Client(
            base_url=server,
            timeout=timeout,
            transport=transport,
            headers={"User-Agent": _user_agent(), "Accept": "application/json"},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"Http({self.server!r})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Http:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def send(
        self,
        method: str,
        path: str,
        *,
        bearer: str | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        form: Mapping[str, str] | None = None,
        basic: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        token_endpoint: bool = False,
    ) -> httpx.Response:
        """The answer to one call; a ledger error for an error answer or no answer at all."""
        headers = dict(headers or {})
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        query = {k: _param(v) for k, v in (params or {}).items() if v is not None}
        try:
            response = self._client.request(
                method,
                path,
                headers=headers,
                json=json,
                params=query or None,
                data=form,
                auth=basic,
            )
        except httpx.TransportError as exc:
            reason = _one_line(str(exc)) or type(exc).__name__
            raise StorageError(f"cannot reach the server at {self.server}: {reason}") from None
        except httpx.RequestError as exc:  # a redirect loop, an answer that cannot be decoded
            reason = _one_line(str(exc)) or type(exc).__name__
            raise LedgerError(f"the call to {self.server} failed: {reason}") from None
        if response.is_success:
            return response
        raise error_for(response, token_endpoint=token_endpoint)

    def call(self, method: str, path: str, **options: Any) -> Any:
        """The decoded JSON of a successful answer (None for an empty one)."""
        return self.decoded(self.send(method, path, **options), method, path)

    def decoded(self, response: httpx.Response, method: str, path: str) -> Any:
        """The decoded JSON of a successful answer (None for an empty one)."""
        if not response.content:
            return None
        try:
            return msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            raise LedgerError(
                f"the server at {self.server} answered {method} {path} with something other "
                "than JSON"
            ) from None


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
