"""A lean HTTP/1.1 load client for the load test, for machines without ``wrk``.

The load client shares the machine with the server it measures, so every cycle
it spends is one the server does not get. This one does little per request:
raw keep-alive connections over loopback (asyncio protocols, on uvloop when it
is installed), requests prepared as bytes up front, and a response read only as
far as its status line, ``Content-Length`` and body. Each response counts as an
error unless its status is 200 and its body says ``"active":true``.

Bounded: no request is sent after ``seconds``, connections still waiting then
get ``grace`` seconds more before they are closed and counted as errors. Only
loopback addresses are accepted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

__all__ = ["LoadResult", "introspection_requests", "run_load"]

_HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = b"\r\ncontent-length:"
_ACTIVE = b'"active":true'


@dataclass(slots=True)
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    """Seconds from sending each request to reading its whole response."""
    errors: int = 0
    elapsed: float = 0.0


def introspection_requests(host: str, port: int, caller: str, bodies: Sequence[str]) -> list[bytes]:
    """One ``POST /oauth2/introspect`` per form body, with the caller's Bearer token."""
    requests = []
    for body in bodies:
        payload = body.encode("ascii")
        head = (
            f"POST /oauth2/introspect HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            f"Authorization: Bearer {caller}\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        requests.append(head.encode("ascii") + payload)
    return requests


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending the next request as soon as an answer is read."""

    def __init__(
        self,
        requests: Sequence[bytes],
        offset: int,
        deadline: float,
        result: LoadResult,
        finished: asyncio.Future[None],
    ) -> None:
        self.requests = requests
        self.index = offset
        self.deadline = deadline
        self.result = result
        self.finished = finished
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.sent = 0.0
        self.waiting = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio's, but have the same methods.
        self.transport = cast(asyncio.Transport, transport)
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.index += 1
        self.sent = time.perf_counter()
        self.waiting = True
        self.transport.write(self.requests[self.index % len(self.requests)])

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.waiting:
            head_end = self.buffer.find(_HEAD_END)
            if head_end < 0:
                return
            length = _content_length(self.buffer, head_end)
            if length is None:  # nothing to frame the body with: give the connection up
                self._fail()
                return
            body_start = head_end + 4
            if len(self.buffer) < body_start + length:
                return
            ok = (
                self.buffer.startswith(b"HTTP/1.1 200 ")
                and _ACTIVE in self.buffer[body_start : body_start + length]
            )
            self.buffer = self.buffer[body_start + length :]
            self.waiting = False
            self.result.latencies.append(time.perf_counter() - self.sent)
            if not ok:
                self.result.errors += 1
            if time.perf_counter() < self.deadline:
                self._send()
            else:
                self._close()

    def _fail(self) -> None:
        self.result.errors += 1
        self.waiting = False
        self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if not self.finished.done():
            self.finished.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiting:  # closed by the server, or given up at the end of the grace time
            self.result.errors += 1
            self.waiting = False
        if not self.finished.done():
            self.finished.set_result(None)

    def give_up(self) -> None:
        if self.waiting:
            self._fail()


def _content_length(buffer: bytes, head_end: int) -> int | None:
    head = buffer[:head_end].lower()
    start = head.find(_CONTENT_LENGTH)
    if start < 0:
        return None
    start += len(_CONTENT_LENGTH)
    end = head.find(b"\r\n", start)
    try:
        return int(head[start : end if end >= 0 else head_end])
    except ValueError:
        return None


def _loopback(host: str) -> str:
    address = socket.gethostbyname(host)
    if not ipaddress.ip_address(address).is_loopback:
        raise ValueError(f"the load client only drives loopback addresses, not {host}")
    return address


async def _load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    connections: int,
    seconds: float,
    grace: float,
) -> LoadResult:
    address = _loopback(host)
    loop = asyncio.get_running_loop()
    result = LoadResult()
    started = time.perf_counter()
    deadline = started + seconds
    protocols: list[_Connection] = []
    finished: list[asyncio.Future[None]] = []
    for n in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        offset = n * 7  # connections start at different tokens

        def factory(offset: int = offset, done: asyncio.Future[None] = done) -> _Connection:
            return _Connection(requests, offset, deadline, result, done)

        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(factory, address, port), timeout=grace
            )
        except (OSError, TimeoutError):
            result.errors += 1
            continue
        protocols.append(protocol)
        finished.append(done)
    if finished:
        remaining = max(0.0, deadline - time.perf_counter()) + grace
        await asyncio.wait(finished, timeout=remaining)
    for protocol in protocols:
        protocol.give_up()
    result.elapsed = time.perf_counter() - started
    return result


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def run_load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    connections: int,
    seconds: float,
    grace: float = 10.0,
) -> LoadResult:
    """Drive ``connections`` keep-alive connections for ``seconds``, rotating through
    ``requests``; every request's latency and the number of failed answers."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(_load(host, port, requests, connections, seconds, grace))
