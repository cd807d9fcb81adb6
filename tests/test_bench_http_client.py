"""The load test's lean HTTP client: it reads keep-alive answers, counts the wrong ones as
errors, stops by itself, and drives loopback addresses only."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from bench.http_client import introspection_requests, run_load

ACTIVE = b'{"active":true,"sub":"svc"}'
INACTIVE = b'{"active":false}'


def answer(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\ncontent-type: application/json"
    return head.encode() + b"\r\n\r\n" + body


@contextmanager
def canned_server(reply: bytes) -> Iterator[int]:
    """A loopback HTTP/1.1 server giving every request the same answer; its port."""

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while True:
                length = 0
                while (line := self.rfile.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                if not line:
                    return
                self.rfile.read(length)
                self.wfile.write(reply)

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    with Server(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server.server_address[1]
        finally:
            server.shutdown()
            thread.join(timeout=5)


def test_requests_are_prepared_whole() -> None:
    [request] = introspection_requests("127.0.0.1", 8080, "tlp_caller", ["token=tlp_x"])
    head, _, body = request.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /oauth2/introspect HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer tlp_caller" in head
    assert b"\r\nContent-Type: application/x-www-form-urlencoded" in head
    assert f"\r\nContent-Length: {len(body)}".encode() in head
    assert body == b"token=tlp_x"


@pytest.mark.parametrize(
    ("reply", "all_errors"),
    [
        (answer("200 OK", ACTIVE), False),
        (answer("200 OK", INACTIVE), True),
        (answer("401 Unauthorized", ACTIVE), True),
    ],
)
def test_answers_are_checked_and_timed(reply: bytes, all_errors: bool) -> None:
    with canned_server(reply) as port:
        requests = introspection_requests("127.0.0.1", port, "tlp_c", ["token=a", "token=b"])
        result = run_load("127.0.0.1", port, requests, connections=4, seconds=0.3, grace=5)
    assert len(result.latencies) > 4
    assert all(0 < seconds < 5 for seconds in result.latencies)
    assert result.errors == (len(result.latencies) if all_errors else 0)
    assert 0.3 <= result.elapsed < 5


def test_an_answer_without_a_length_ends_the_connection_as_an_error() -> None:
    with canned_server(b"HTTP/1.1 200 OK\r\n\r\n" + ACTIVE) as port:
        requests = introspection_requests("127.0.0.1", port, "tlp_c", ["token=a"])
        result = run_load("127.0.0.1", port, requests, connections=2, seconds=0.2, grace=5)
    assert result.latencies == []
    assert result.errors == 2


def test_only_loopback_addresses_are_driven() -> None:
    # Refused before any socket is opened (192.0.2.1 is a documentation address).
    with pytest.raises(ValueError, match="loopback"):
        run_load("192.0.2.1", 80, [b"GET / HTTP/1.1\r\n\r\n"], connections=1, seconds=0.1)
