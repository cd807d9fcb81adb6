"""The common introspection call answered in front of FastAPI, as raw ASGI.

Resource servers call ``POST /oauth2/introspect`` far more than anything else,
almost always the same way: ``Authorization: Bearer <ledger token or access
token>`` and an ``application/x-www-form-urlencoded`` body of ``token=...``
(perhaps with ``token_type_hint``). FastAPI's route costs more per call than the
answer itself once the answer is cached (dependency injection, form parsing,
validation, its middleware layers), so this layer answers that call directly.

It answers with the route's own functions (``api.introspection``): the same
cache, the same authorisation, the same error handlers, the same metrics (the
request under the route's path template), hence the same status, headers and
body bytes. Anything else is handed to the FastAPI app unchanged, with the body
this layer has already read replayed to it: another method or path, a missing,
repeated or non-Bearer ``Authorization`` (Basic client credentials included),
another content type, a body over 16 KiB, fields other than ``token``,
``token_type_hint`` and ``min_position`` (``resource``, ``level``), a repeated or
empty field, a value that is too long or that needs decoding (``%``, ``+``), a
``min_position`` that is not digits — FastAPI's answer to those is the
reference, so they are never re-implemented here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import NamedTuple, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from fastapi import FastAPI
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.pool import QueuePool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tokenledger.api.introspection import (
    MAX_HINT_LENGTH,
    MAX_SECRET_LENGTH,
    MIN_POSITION_HEADER,
    cached_bearer_caller,
    introspect_as_bearer,
    introspection_response,
    min_position_of,
)
from tokenledger.api.problems import error_response
from tokenledger.api.routes.oauth import INTROSPECT_PATH
from tokenledger.api.state import ApiState

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_DATABASE_THREADS",
    "IntrospectionFastPath",
    "Presented",
    "bearer_and_form",
    "database_threads",
    "token_field",
]

T = TypeVar("T")

#: Bodies longer than this are FastAPI's to answer (a token is at most 10,000 characters).
MAX_BODY_BYTES = 16 * 1024
#: At most this many of the fast path's calls use the database at once (fewer when the
#: connection pool keeps fewer connections open; see ``database_threads``).
MAX_DATABASE_THREADS = 8

_FORM = "application/x-www-form-urlencoded"
# Values made only of these characters mean the same before and after URL-decoding
# (ledger tokens and JWTs are such), so no decoding is needed to match FastAPI's.
_PLAIN_VALUE = re.compile(rb"[A-Za-z0-9._~-]*")
_DIGITS = re.compile(rb"[0-9]{1,19}")
_MIN_POSITION_HEADER = MIN_POSITION_HEADER.encode()


class Presented(NamedTuple):
    """What the fast path reads of a request's headers."""

    credential: str
    min_position: str | None


class Fields(NamedTuple):
    """What the fast path reads of a request's form."""

    token: str
    min_position: str | None


def bearer_and_form(headers: Iterable[tuple[bytes, bytes]]) -> Presented | None:
    """The Bearer credential (and any ``TokenLedger-Min-Position``), if the request has
    exactly one ``Authorization: Bearer ...`` and exactly one form content type; ``None``
    sends the request to FastAPI.

    The credential is taken apart with FastAPI's own ``get_authorization_scheme_param``,
    as its ``HTTPBearer`` does, so it is the string the route would see.
    """
    authorization: bytes | None = None
    content_type: bytes | None = None
    min_position: bytes | None = None
    for name, value in headers:  # ASGI header names are lower case
        if name == b"authorization":
            if authorization is not None:
                return None
            authorization = value
        elif name == b"content-type":
            if content_type is not None:
                return None
            content_type = value
        elif name == _MIN_POSITION_HEADER:
            if min_position is not None:
                return None
            min_position = value
    if authorization is None or content_type is None:
        return None
    if content_type.decode("latin-1").strip().lower() != _FORM:
        return None
    scheme, credentials = get_authorization_scheme_param(authorization.decode("latin-1"))
    if scheme.lower() != "bearer" or not credentials:
        return None
    wanted = None if min_position is None else min_position.decode("latin-1")
    return Presented(credentials.strip(), wanted)


def token_field(body: bytes) -> Fields | None:
    """``token`` (and ``min_position``) from a body of ``token=...`` with at most one
    ``token_type_hint=...`` and one ``min_position=<digits>``, each within the route's
    length limits and needing no URL-decoding; ``None`` otherwise."""
    token: bytes | None = None
    hint: bytes | None = None
    min_position: bytes | None = None
    for pair in body.split(b"&"):
        name, separator, value = pair.partition(b"=")
        if not separator or not _PLAIN_VALUE.fullmatch(value):
            return None
        if name == b"token" and token is None:
            token = value
        elif name == b"token_type_hint" and hint is None:
            hint = value
        elif name == b"min_position" and min_position is None and _DIGITS.fullmatch(value):
            min_position = value
        else:
            return None
    # FastAPI takes an empty field for a missing one: its 400 is the reference.
    if not token or len(token) > MAX_SECRET_LENGTH:
        return None
    if hint is not None and len(hint) > MAX_HINT_LENGTH:
        return None
    wanted = None if min_position is None else min_position.decode("ascii")
    return Fields(token.decode("ascii"), wanted)


def database_threads(state: ApiState) -> int:
    """How many of the fast path's calls may use the database at once, each in a thread.

    No more than the connection pool keeps open (SQLAlchemy's ``QueuePool``: 5 by
    default). Past that, a call either waits for a connection inside the pool, where
    waiting is not first come, first served (under load a few calls waited seconds), or
    gets an overflow connection that is opened for it and closed after it (PostgreSQL
    starts a process for each). Calls beyond the limit wait their turn, in order, on the
    event loop. More threads would not help on a few cores anyway: they share one
    interpreter.
    """
    pool = state.ledger.store.engine.pool
    if isinstance(pool, QueuePool):
        return max(1, min(pool.size(), MAX_DATABASE_THREADS))
    return MAX_DATABASE_THREADS


async def _read_body(receive: Receive, limit: int) -> tuple[list[Message], bytes | None]:
    """Every message read, and the body (``None`` past ``limit`` or on a disconnect)."""
    messages: list[Message] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return messages, None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return messages, chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` as if nothing had been read: the messages already read come first."""
    pending = deque(messages)

    async def replayed() -> Message:
        if pending:
            return pending.popleft()
        return await receive()

    return replayed


class IntrospectionFastPath:
    """Raw ASGI in front of the FastAPI app; see the module's documentation."""

    def __init__(self, app: ASGIApp, state: ApiState, route_path: str) -> None:
        self.app = app
        self.state = state
        self.route_path = route_path
        self._refreshing: asyncio.Task[None] | None = None
        self._limiter: tuple[asyncio.AbstractEventLoop, CapacityLimiter] | None = None

    @classmethod
    def in_front_of(cls, app: FastAPI) -> IntrospectionFastPath:
        """The layer for ``create_app``'s app, over its state."""
        state: ApiState = app.state.tokenledger
        return cls(app, state, INTROSPECT_PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.route_path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        presented = bearer_and_form(scope["headers"])
        if presented is None:
            await self.app(scope, receive, send)
            return
        messages, body = await _read_body(receive, MAX_BODY_BYTES)
        fields = None if body is None else token_field(body)
        if fields is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        status = await self._answer(scope, receive, send, presented, fields)
        self.state.metrics.observe_request(
            "POST", self.route_path, status, time.perf_counter() - started
        )

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, presented: Presented, fields: Fields
    ) -> int:
        state = self.state
        token = fields.token
        try:
            # As the route does: answered on the event loop only when the cache vouches for
            # both the token and the caller. ``peek`` hashes the secrets and reads a dict
            # under a lock that is only ever held for in-memory work; it never reads the
            # log's head, so nothing here waits on the database. Otherwise one trip to the
            # thread pool does the caller's check and the answer together. Unlike the
            # route, a cache past its staleness bound first has the head re-read once for
            # all waiting requests (``_refresh_head``), in the thread pool as well.
            # With a ``min_position`` the follower has not applied yet, the thread waits
            # for it (bounded).
            wanted = min_position_of(fields.min_position, presented.min_position)
            response = await self._cached(token, presented.credential, wanted)
            if response is None:
                answer, position = await self._in_thread(
                    introspect_as_bearer, state, presented.credential, token, wanted
                )
                response = introspection_response(state, answer, position)
        except Exception as exc:
            # What FastAPI's error handlers would answer; unforeseen errors are logged
            # there and answered 500 without a traceback.
            response = await error_response(Request(scope, receive), exc)
        await response(scope, receive, send)
        return response.status_code

    async def _cached(self, token: str, caller: str, wanted: int | None) -> Response | None:
        """The answer when the cache vouches for both the token and the caller, at a
        position the follower has applied (``wanted`` at least): no database needed."""
        state = self.state
        position = state.followed_position(wanted)
        if position is None:
            return None
        answer = state.peek(token)
        if answer is None and state.head_is_stale():
            await self._refresh_head()
            position = state.followed_position(wanted)
            answer = None if position is None else state.peek(token)
        if answer is None or position is None or not cached_bearer_caller(state, caller):
            return None
        return introspection_response(state, answer, position)

    async def _refresh_head(self) -> None:
        """Re-read the log's head once for all the requests that find the cache past its
        staleness bound at the same moment.

        Without this, each of them (64 at a time under load) would hop to the thread pool
        and read the head itself, twice, every time the bound passes: a burst of queries
        that holds every one of them up. One read in the thread pool, awaited by all,
        gives each the same freshness. A failed read is not answered here: the request
        goes on to the route's own path, whose answer (or error) is the reference.
        """
        loop = asyncio.get_running_loop()
        refreshing = self._refreshing
        if refreshing is None or refreshing.get_loop() is not loop:
            refreshing = loop.create_task(self._in_thread(self.state.refresh_head))
            refreshing.add_done_callback(self._refreshed)
            self._refreshing = refreshing
        with contextlib.suppress(Exception):
            # Shielded: a request that goes away does not cancel the others' read.
            await asyncio.shield(refreshing)

    def _refreshed(self, task: asyncio.Task[None]) -> None:
        if self._refreshing is task:
            self._refreshing = None
        if not task.cancelled():
            task.exception()  # retrieved, so that asyncio does not log it as forgotten

    async def _in_thread(self, call: Callable[..., T], *args: object) -> T:
        """``call(*args)`` in a thread of the pool (as ``run_in_threadpool`` runs it), at
        most ``database_threads`` at once, in the order they asked."""
        loop = asyncio.get_running_loop()
        if self._limiter is None or self._limiter[0] is not loop:
            self._limiter = (loop, CapacityLimiter(database_threads(self.state)))
        return await anyio.to_thread.run_sync(
            functools.partial(call, *args), limiter=self._limiter[1]
        )
