"""Logging in from the command line: the authorization code flow with PKCE, for a native app
(RFC 8252) whose browser comes back to a loopback address.

1. ``begin_login``: a fresh PKCE verifier (kept here) and ``state``; the address of the
   server's ``/oauth2/authorize`` with the verifier's challenge (``domain.pkce``).
2. The browser logs in at the org's identity provider and comes back, through the server, to
   ``http://127.0.0.1:<port>/callback?code=...&state=...`` (``LoopbackReceiver``), or shows
   the code on the server's ``/oauth2/code`` page for the user to paste (``--no-browser``).
3. ``finish_login``: ``state`` checked, the code redeemed with the verifier at
   ``/oauth2/token``: a session (refresh token) and its first access token.
"""

from __future__ import annotations

import html
import http.server
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tokenledger.client.http import Http
from tokenledger.client.oauth import CLI_CLIENT_ID, TokenAnswer, authorization_code_grant
from tokenledger.domain.pkce import CODE_CHALLENGE_METHOD, code_challenge, new_code_verifier
from tokenledger.errors import PermissionDenied

__all__ = [
    "CODE_PAGE_PATH",
    "LoopbackReceiver",
    "PendingLogin",
    "begin_login",
    "code_page",
    "finish_login",
]

AUTHORIZE_PATH = "/oauth2/authorize"
#: The server's page that shows the code to paste (``auth login --no-browser``).
CODE_PAGE_PATH = "/oauth2/code"
CALLBACK = "/callback"


@dataclass(frozen=True)
class PendingLogin:
    """A login under way: what the command line keeps until the code comes back."""

    server: str
    org: str
    redirect_uri: str
    code_verifier: str
    state: str
    url: str

    def __repr__(self) -> str:
        return f"PendingLogin(server={self.server!r}, org={self.org!r})"


def begin_login(server: str, org: str, redirect_uri: str) -> PendingLogin:
    """A new login of ``org``'s member, coming back to ``redirect_uri``."""
    verifier = new_code_verifier()
    state = secrets.token_urlsafe(24)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": CLI_CLIENT_ID,
            "redirect_uri": redirect_uri,
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": CODE_CHALLENGE_METHOD,
            "state": state,
            "org": org,
        }
    )
    return PendingLogin(
        server=server,
        org=org,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
        state=state,
        url=f"{server}{AUTHORIZE_PATH}?{query}",
    )


def finish_login(http: Http, login: PendingLogin, answer: Mapping[str, str]) -> TokenAnswer:
    """Redeem what came back (``code`` and ``state``, or ``error`` and
    ``error_description``); ``PermissionDenied`` in one line when the login failed."""
    if "state" in answer and not secrets.compare_digest(answer["state"], login.state):
        raise PermissionDenied(
            "the login's answer does not match the login it started (state differs): "
            "run 'tokenledger auth login' again"
        )
    error = answer.get("error")
    if error is not None:
        description = answer.get("error_description") or "no reason given"
        raise PermissionDenied(f"the login was refused: {_line(error)}: {_line(description)}")
    code = answer.get("code", "").strip()
    if not code:
        raise PermissionDenied("the login came back without a code: run 'tokenledger auth login'")
    if "state" not in answer and login.redirect_uri.endswith(CALLBACK):
        raise PermissionDenied(
            "the login's answer carries no state: run 'tokenledger auth login' again"
        )
    return authorization_code_grant(http, code, login.redirect_uri, login.code_verifier)


def _line(text: str) -> str:
    return " ".join(text.split())[:300]


# -- the loopback redirect ---------------------------------------------------------------------

_DONE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>TokenLedger</title></head>"
    "<body><h1>{title}</h1><p>{detail}</p><p>You may close this window.</p></body></html>"
)


class LoopbackReceiver:
    """An HTTP server on ``127.0.0.1:<free port>`` for the browser's redirect, answering on a
    thread of its own from the start: a browser launcher that waits for the browser (``w3m``,
    ``lynx`` in ``$BROWSER``) must find it answering.

    Only ``GET /callback`` with the expected ``state`` counts (``expect``): anything else (a
    favicon, a request from another program on this machine) is refused and the receiver goes
    on waiting. Nothing it receives is logged: the query holds a code.
    """

    def __init__(self) -> None:
        self._answer: dict[str, str] | None = None
        self._state: str | None = None
        self._received = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != CALLBACK or receiver._received.is_set():
                    self.send_error(404)
                    return
                answer = dict(parse_qsl(parts.query, keep_blank_values=True))
                expected = receiver._state
                if expected is None or not secrets.compare_digest(
                    answer.get("state", ""), expected
                ):
                    self._page(400, "Not this login", "The command line waits for another one.")
                    return
                if "error" in answer:
                    title = "Login failed"
                    detail = html.escape(answer.get("error_description") or answer["error"])
                else:
                    title, detail = "Logged in to TokenLedger", "The command line has the code."
                self._page(200, title, detail)
                receiver._answer = answer
                receiver._received.set()

            def _page(self, status: int, title: str, detail: str) -> None:
                body = _DONE.format(title=title, detail=detail).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return  # never log the query: it holds the code

        self._server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.redirect_uri = f"http://127.0.0.1:{self._server.server_address[1]}{CALLBACK}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()

    def expect(self, state: str) -> None:
        """The ``state`` of the login started: only its answer is taken."""
        self._state = state

    def wait(self, timeout: float) -> dict[str, str]:
        """The callback's query; ``PermissionDenied`` when none came within ``timeout``."""
        if not self._received.wait(timeout):
            raise PermissionDenied(
                f"no answer from the browser within {timeout:g} s: run 'tokenledger auth "
                "login' again (or 'tokenledger auth login --no-browser')"
            )
        assert self._answer is not None
        return self._answer

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(5)
        self._server.server_close()

    def __enter__(self) -> LoopbackReceiver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def code_page(server: str) -> str:
    """The redirect address of a login without a browser on this machine."""
    return f"{server}{CODE_PAGE_PATH}"
