"""A dry run is sent only to a server that says it honours one: ``/healthz`` lists the
``dry_run`` feature (asked once per client), and every dry-run answer carries
``TokenLedger-Dry-Run: true``. A server of an older version would ignore ``?dry_run=true``
and make the change: against one (a small WSGI app here, and one on a loopback port for the
command line), nothing is sent and the error is one line."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from click.testing import CliRunner

from api_helpers import Api, InProcess, make_api
from tokenledger import __version__
from tokenledger.cli import cli
from tokenledger.client import Auth, Client
from tokenledger.client.remote import REMOTE_CALLER, RemoteLedger
from tokenledger.domain import commands as c
from tokenledger.errors import LedgerError, ValidationError

BASE = "https://ledger.test"


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def _remote(transport: httpx.BaseTransport, token: str = "tlp_unused") -> RemoteLedger:
    return RemoteLedger(Client(BASE, Auth(token=token), transport=transport))


def test_the_server_publishes_the_feature_and_marks_its_dry_run_answers(api: Api) -> None:
    health = api.client.get("/healthz").json()
    assert health["features"] == ["dry_run"]
    assert health["version"] == __version__
    head = api.ledger.store.head().position
    body = {"path": "acme/zeta"}
    previewed = api.client.post(
        "/v2/resources", params={"dry_run": "true"}, json=body, headers=api.admin
    )
    assert previewed.status_code == 200, previewed.text
    assert previewed.headers["TokenLedger-Dry-Run"] == "true"
    made = api.client.post("/v2/resources", json=body, headers=api.admin)
    assert made.status_code == 201, made.text
    assert "TokenLedger-Dry-Run" not in made.headers
    assert api.ledger.store.head().position == head + 1


def test_the_client_asks_once_and_previews_on_a_server_that_honours_it(api: Api) -> None:
    transport = InProcess(api.client)
    ledger = _remote(transport, api.ann)
    head = api.ledger.store.head().position
    for path in ("acme/zeta", "acme/eta"):
        preview = ledger.preview(c.CreateResource(path=path), REMOTE_CALLER)
        assert [type(event).__name__ for event in preview.events] == ["ResourceCreated"]
    assert transport.requests.count(("GET", "/healthz")) == 1
    assert transport.requests.count(("POST", "/v2/resources")) == 2
    assert api.ledger.store.head().position == head


@dataclass
class OldServer:
    """A server of an older version: it ignores ``dry_run`` and makes every change."""

    health: dict[str, Any] | None
    made: list[tuple[str, str]] = field(default_factory=list)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        if path == "/healthz" and self.health is not None:
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(self.health).encode()]
        if method == "GET":
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [b'{"error": "not_found", "error_description": "no such call"}']
        self.made.append((method, path))
        start_response("201 Created", [("Content-Type", "application/json")])
        return [b'{"events": [], "log_position": 1}']


@pytest.mark.parametrize(
    ("health", "version"),
    [
        ({"status": "ok", "head_position": 7}, "unknown"),
        ({"status": "ok", "head_position": 7, "version": "1.4.0", "features": []}, "1.4.0"),
        (None, "unknown"),  # older than the health check itself
        ({"version": "2\n\x1b[31m" + "9" * 60}, "2??[31m" + "9" * 33),  # one printable line
    ],
)
def test_a_server_that_does_not_say_so_is_sent_nothing(
    health: dict[str, Any] | None, version: str
) -> None:
    old = OldServer(health)
    ledger = _remote(httpx.WSGITransport(app=old))
    with pytest.raises(ValidationError) as refused:
        ledger.preview(c.CreateOrg(org="zeta"), REMOTE_CALLER)
    assert str(refused.value) == (
        f"the server at {BASE} does not support dry runs (version {version}): nothing was sent"
    )
    with pytest.raises(ValidationError):  # asked once: the answer is kept
        ledger.preview(c.CreateOrg(org="eta"), REMOTE_CALLER)
    assert old.made == []


def test_a_dry_run_answer_without_the_header_is_not_taken_for_a_preview() -> None:
    """A server (or something in front of it) that claims the feature but answers as if it
    ran the call: the client says the change may have been made."""
    old = OldServer({"status": "ok", "head_position": 7, "version": "9", "features": ["dry_run"]})
    ledger = _remote(httpx.WSGITransport(app=old))
    with pytest.raises(LedgerError, match="without TokenLedger-Dry-Run: it may have made"):
        ledger.preview(c.CreateOrg(org="zeta"), REMOTE_CALLER)


class _OldHandler(BaseHTTPRequestHandler):
    made: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        body = b'{"status": "ok", "head_position": 3, "version": "0.9"}'
        self._answer(200 if self.path == "/healthz" else 404, body)

    def do_POST(self) -> None:
        self.made.append(self.path)
        self._answer(201, b'{"events": [], "log_position": 4}')

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_the_command_line_sends_no_dry_run_to_an_old_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("TOKENLEDGER_TOKEN", "TOKENLEDGER_SERVER", "TOKENLEDGER_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOKENLEDGER_CREDENTIALS_PATH", str(tmp_path / "credentials.json"))
    _OldHandler.made = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OldHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        result = CliRunner().invoke(
            cli,
            ["--server", base, "resources", "create", "acme/zeta", "--dry-run"],
            env={"TOKENLEDGER_TOKEN": "tlp_unused"},
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"tokenledger: error: the server at {base} does not support dry runs (version 0.9): "
        "nothing was sent"
    ]
    assert _OldHandler.made == []
