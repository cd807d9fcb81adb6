"""``tokenledger serve`` as a real process on a loopback port; the CLI's keys and credentials."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from click.testing import CliRunner, Result

from api_helpers import SA, seed
from helpers import assert_one_line_error
from tokenledger.cli import cli
from tokenledger.cli.serve import SHUTDOWN_GRACE
from tokenledger.service import Ledger
from tokenledger.store import open_event_store

STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run(url: str, *args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(
        cli, ["--db", url, *args], env={"TOKENLEDGER_TOKEN": None, **(env or {})}
    )


def ok(url: str, *args: str, env: dict[str, str | None] | None = None) -> Any:
    result = run(url, *args, "--json", env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def seeded(database_url: str) -> tuple[str, dict[str, str]]:
    """A migrated and seeded database (PostgreSQL is not migrated by ``serve``)."""
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    secrets = seed(ledger)
    ledger.close()
    return database_url, secrets


class Server:
    """A ``tokenledger serve`` child process, stopped with SIGTERM."""

    def __init__(self, url: str, keys_file: Path, *extra: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "TOKENLEDGER_KEYS_FILE": str(keys_file)}
        env.pop("TOKENLEDGER_TOKEN", None)
        # The installed console script, as an operator would run it.
        command = [str(Path(sys.executable).with_name("tokenledger")), "--db", url, "serve"]
        command += ["--port", str(self.port), "--no-access-log", *extra]
        self.process = subprocess.Popen(
            command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True
        )
        self.log: list[str] = []
        # Kill a server that never comes up, so that the readline below returns.
        watchdog = threading.Timer(STARTUP_TIMEOUT, self.process.kill)
        watchdog.start()
        try:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.log.append(line)
                if "Application startup complete" in line:
                    break
            else:
                raise AssertionError("the server did not start:\n" + "".join(self.log))
        finally:
            watchdog.cancel()

    def stop(self) -> int:
        """SIGTERM, then the rest of the log; uvicorn re-raises the signal once shut down."""
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            assert self.process.stderr is not None
            self.log.extend(self.process.stderr.readlines())
            self.process.stderr.close()
        return code


def test_a_real_server_answers_and_stops(
    seeded: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, secrets = seeded
    keys_file = tmp_path / "keys.json"
    server = Server(url, keys_file)
    try:
        assert any("created signing key" in line for line in server.log)
        with httpx.Client(base_url=server.base, timeout=10) as client:
            assert client.get("/healthz").json()["status"] == "ok"
            admin = {"Authorization": f"Bearer {secrets['ann']}"}
            created = client.post(f"/v2/service_accounts/{SA}/credentials", headers=admin)
            assert created.status_code == 201
            credential = created.json()
            token = client.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(credential["client_id"], credential["client_secret"]),
            ).json()["access_token"]
            jwks = jwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").json())
            claims = jwt.decode(token, jwks.keys[0].key, algorithms=["EdDSA"], issuer="tokenledger")
            assert claims["sub"] == SA
            answer = client.post("/oauth2/introspect", data={"token": token}, headers=admin)
            assert answer.json()["active"] is True
            revoked = client.delete(
                f"/v2/service_accounts/{SA}/credentials/{credential['client_id']}", headers=admin
            )
            assert revoked.status_code == 200
            after = client.post("/oauth2/introspect", data={"token": token}, headers=admin)
            assert after.json()["active"] is False
            assert "tokenledger_http_requests_total" in client.get("/metrics").text
    finally:
        code = server.stop()
    assert code in (0, -signal.SIGTERM), "".join(server.log)
    assert any("Finished server process" in line for line in server.log), "".join(server.log)
    assert oct(keys_file.stat().st_mode & 0o777) == "0o600"
    leaked = [line for line in server.log if secrets["ann"] in line]
    assert leaked == []


def test_a_server_with_an_open_event_stream_stops(
    seeded: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, secrets = seeded
    server = Server(url, tmp_path / "keys.json")
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            admin = {"Authorization": f"Bearer {secrets['ann']}"}
            with client.stream("GET", "/v2/events/stream", headers=admin) as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                assert next(lines).startswith("id: 0")
                assert next(lines) == "event: position"
                # The stream is open (and never ends by itself) while the server stops.
                started = time.monotonic()
                code = server.stop()
    finally:
        if server.process.poll() is None:
            server.stop()
    assert code in (0, -signal.SIGTERM), "".join(server.log)
    assert time.monotonic() - started < SHUTDOWN_GRACE + 20


def test_several_workers_need_postgresql(tmp_path: Path) -> None:
    result = run(str(tmp_path / "ledger.db"), "serve", "--workers", "2")
    assert_one_line_error(result, 2, "needs PostgreSQL")


def test_serve_refuses_a_bad_lifetime(tmp_path: Path) -> None:
    result = run(str(tmp_path / "ledger.db"), "serve", "--access-token-lifetime", "2d")
    assert_one_line_error(result, 2, "--access-token-lifetime")


def test_keys_rotate_and_list(tmp_path: Path) -> None:
    url = str(tmp_path / "ledger.db")
    empty = run(url, "keys", "list")
    assert "no signing keys" in empty.stdout
    first = ok(url, "keys", "rotate")
    second = ok(url, "keys", "rotate")
    assert first["keys_file"] == str(tmp_path / "ledger.keys.json")
    listed = ok(url, "keys", "list")
    assert [(k["kid"], k["status"]) for k in listed] == [
        (second["kid"], "active"),
        (first["kid"], "retired"),
    ]
    human = run(url, "keys", "list")
    assert "BEGIN PRIVATE KEY" not in human.stdout
    assert_one_line_error(run(url, "keys", "rotate", "--retention", "5m"), 2, "--retention")


def test_credentials_from_the_command_line(database_url: str) -> None:
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    seed(ledger)
    ledger.close()
    created = ok(database_url, "service-accounts", "credentials", "create", SA, "--name", "ci")
    assert created["client_secret"].startswith("tlc_")
    listed = ok(database_url, "service-accounts", "credentials", "list", SA)
    assert [cred["client_id"] for cred in listed] == [created["client_id"]]
    assert created["client_secret"] not in json.dumps(listed)
    revoked = ok(database_url, "service-accounts", "credentials", "revoke", created["client_id"])
    assert revoked["revoked_client_ids"] == [created["client_id"]]
    assert ok(database_url, "service-accounts", "credentials", "list", SA) == []
    again = run(database_url, "service-accounts", "credentials", "revoke", created["client_id"])
    assert_one_line_error(again, 5, "already revoked")
    bad = run(database_url, "service-accounts", "credentials", "revoke", created["client_secret"])
    assert_one_line_error(bad, 2, "invalid client id")
    assert created["client_secret"] not in bad.stderr
