"""``tokenledger auth``: logging in through the org's identity provider (a real OpenID Connect
provider on loopback) to a real server (``tokenledger serve``), the session kept in the
credentials file, its access token renewed within the leeway (freezegun), refreshed, shown,
and ended; on SQLite and PostgreSQL. The browser is the only stand-in: it follows the
redirects a person's browser would."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
import webbrowser
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from click.testing import CliRunner, Result
from freezegun import freeze_time

from api_helpers import OPERATOR, seed
from helpers import assert_one_line_error
from oidc_provider import OidcProvider
from test_api_serve import STARTUP_TIMEOUT, Server, free_port
from tokenledger.cli import cli
from tokenledger.client.credentials import (
    AccessToken,
    Credentials,
    Session,
    load_credentials,
    save_credentials,
)
from tokenledger.client.login import LoopbackReceiver
from tokenledger.client.token_cache import forget_all
from tokenledger.domain import commands as c
from tokenledger.errors import PermissionDenied
from tokenledger.service import Ledger
from tokenledger.service.keys import KeyStore
from tokenledger.store import open_event_store

ANN = "ann@acme.io"
#: Unset for every command: only what a test gives counts.
ENVIRONMENT = (
    "TOKENLEDGER_TOKEN",
    "TOKENLEDGER_SERVER",
    "TOKENLEDGER_DATABASE_URL",
    "TOKENLEDGER_CLIENT_ID",
    "TOKENLEDGER_CLIENT_SECRET",
)


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider() as running:
        yield running


@dataclass
class Served:
    base: str
    secrets: dict[str, str]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    provider: OidcProvider,
) -> Iterator[Served]:
    """A seeded ledger whose org acme logs in through ``provider``, served on loopback."""
    directory = tmp_path_factory.mktemp("auth")
    if request.param == "sqlite":
        url = f"sqlite:///{directory / 'ledger.db'}"
    else:
        url = request.getfixturevalue("postgres_server").fresh_schema()
    keys_file = directory / "keys.json"
    keys = KeyStore(keys_file)
    keys.rotate(datetime.now(UTC))
    keys.set_provider_secret("acme", "provider-secret-of-acme")
    ledger = Ledger(open_event_store(url, auto_upgrade=True))
    secrets = seed(ledger)
    ledger.execute(
        c.build(
            c.SetIdentityProvider,
            org="acme",
            issuer=provider.issuer,
            oidc_client_id="tokenledger-test",
            client_secret=True,
        ),
        OPERATOR,
    )
    ledger.close()
    server = Server(url, keys_file)
    try:
        yield Served(base=server.base, secrets=secrets)
    finally:
        server.stop()


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "home" / "credentials.json"
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOKENLEDGER_CREDENTIALS_PATH", str(path))
    forget_all()
    yield path
    forget_all()


def run(*args: str, token: str | None = None, stdin: str | None = None) -> Result:
    env: dict[str, str | None] = dict.fromkeys(ENVIRONMENT)
    env["TOKENLEDGER_TOKEN"] = token
    return CliRunner().invoke(cli, list(args), env=env, input=stdin)


def ok(*args: str, token: str | None = None) -> Result:
    result = run(*args, token=token)
    assert result.exit_code == 0, result.output
    return result


# -- the browser ---------------------------------------------------------------------------------


@dataclass
class Browser:
    """Follows a login from the server's authorize address through the provider (logging in
    as ``user``) back to where the server sends it; ``tamper`` may change the last address."""

    provider: OidcProvider
    user: str = ANN
    tamper: dict[str, str] = field(default_factory=dict)
    landed: list[httpx.Response] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def open(self, url: str, *args: Any, **kwargs: Any) -> bool:
        """``webbrowser.open``: the browser goes on its own while the command line waits."""
        thread = threading.Thread(target=self.follow, args=(url,))
        thread.start()
        self.threads.append(thread)
        return True

    def follow(self, url: str) -> httpx.Response:
        self.provider.set_user(self.user, email=self.user, email_verified=True)
        with httpx.Client(timeout=30) as http:
            while True:
                if url.startswith(self.provider.issuer):
                    url = self.provider.login(url, self.user)
                    continue
                if "/callback?" in url and self.tamper and not url.startswith(self.provider.issuer):
                    parts = urlsplit(url)
                    if parts.path == "/callback":
                        query = {**dict(parse_qsl(parts.query)), **self.tamper}
                        url = parts._replace(query=urlencode(query)).geturl()
                response = http.get(url)
                if response.status_code in (302, 303):
                    url = response.headers["location"]
                    continue
                self.landed.append(response)
                return response

    def join(self) -> None:
        for thread in self.threads:
            thread.join(30)


@pytest.fixture
def browser(provider: OidcProvider, monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    opened = Browser(provider)
    monkeypatch.setattr(webbrowser, "open", opened.open)
    yield opened
    opened.join()


def log_in(served: Served, browser: Browser, *extra: str) -> Result:
    result = run("auth", "login", "--server", served.base, "--org", "acme", *extra)
    browser.join()
    return result


def refused_login(result: Result, code: int, *fragments: str) -> None:
    """A refused login: the category's exit code, and one error line after the lines that
    told the user where to log in."""
    assert result.exit_code == code, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("tokenledger:")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().endswith(errors[0])
    for fragment in fragments:
        assert fragment in errors[0]
    assert "Traceback" not in result.output


def saved(path: Path) -> Credentials:
    found = load_credentials(path)
    assert found is not None
    assert found.session is not None
    assert found.access_token is not None
    return found


def secrets_of(found: Credentials) -> list[str]:
    assert found.session is not None
    assert found.access_token is not None
    return [found.session.refresh_token, found.access_token.token]


# -- login -------------------------------------------------------------------------------------


def test_a_login_keeps_the_session_and_later_commands_use_it(
    served: Served, browser: Browser, credentials: Path
) -> None:
    result = log_in(served, browser)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"logged in to {served.base} as {ANN} (org acme)"
    assert f"If no browser opens, visit: {served.base}/oauth2/authorize?" in result.stderr
    assert "You may close this window" in browser.landed[0].text

    found = saved(credentials)
    assert (found.server, found.principal, found.org) == (served.base, ANN, "acme")
    assert found.session is not None
    assert found.session.session_id.startswith("ses_")
    assert found.session.refresh_token.startswith("tlr_")
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    for secret in secrets_of(found):
        assert secret not in result.output

    # Later commands go to the saved server with the session: no --server, no token.
    members = ok("orgs", "members", "acme")
    assert f"{ANN}  admin" in members.stdout
    status = ok("auth", "status")
    assert f"principal:    {ANN}" in status.stdout
    assert f"the server knows you as {ANN} (acme:admin)" in status.stdout
    assert f"ACL subjects: user:{ANN} org:acme group:acme:admin" in status.stdout
    assert "namespace:    " + hashlib.sha1(ANN.encode(), usedforsecurity=False).hexdigest() in (
        status.stdout
    )
    document = json.loads(ok("auth", "status", "--json").stdout)
    assert document["session_id"] == found.session.session_id
    assert document["confirmed"]["sub"] == ANN
    assert document["problem"] is None
    for secret in secrets_of(found):
        assert secret not in status.stdout + json.dumps(document)

    # The next login of the same server remembers the org.
    again = run("auth", "login")
    browser.join()
    assert again.exit_code == 0, again.output
    assert saved(credentials).session != found.session


def test_the_access_token_is_renewed_within_the_leeway_and_rotates_the_refresh_token(
    served: Served, browser: Browser, credentials: Path
) -> None:
    assert log_in(served, browser).exit_code == 0
    first = saved(credentials)
    assert first.access_token is not None
    assert ok("auth", "token").stdout.strip() == first.access_token.token
    assert saved(credentials) == first  # fresh enough: nothing asked of the server
    header = ok("auth", "token", "-H").stdout.strip()
    assert header == f"Authorization: Bearer {first.access_token.token}"

    # 450 s before the hour's end (within the 500 s leeway): renewed first.
    near_the_end = first.access_token.expires_at - timedelta(seconds=450)
    with freeze_time(near_the_end):
        renewed = ok("auth", "token").stdout.strip()
    second = saved(credentials)
    assert second.access_token is not None
    assert renewed == second.access_token.token != first.access_token.token
    assert second.session is not None
    assert first.session is not None
    assert second.session.session_id == first.session.session_id
    assert second.session.refresh_token != first.session.refresh_token
    # The renewed token acts.
    assert ok("orgs", "list").stdout == "acme\n"


def test_a_refresh_now_replaces_both_tokens(
    served: Served, browser: Browser, credentials: Path
) -> None:
    assert log_in(served, browser).exit_code == 0
    before = saved(credentials)
    result = ok("auth", "refresh")
    assert result.stdout.startswith("refreshed: access token valid until ")
    after = saved(credentials)
    assert secrets_of(after)[0] != secrets_of(before)[0]
    assert secrets_of(after)[1] != secrets_of(before)[1]
    for secret in secrets_of(before) + secrets_of(after):
        assert secret not in result.output


def test_logout_ends_the_session_at_the_server_and_here(
    served: Served, browser: Browser, credentials: Path
) -> None:
    assert log_in(served, browser).exit_code == 0
    before = saved(credentials)
    refresh_token, access_token = secrets_of(before)
    result = ok("auth", "logout")
    assert before.session is not None
    assert result.stdout.strip() == (
        f"logged out of {served.base} (session {before.session.session_id} ended)"
    )
    after = load_credentials(credentials)
    assert after == Credentials(version=1, server=served.base, org="acme", principal=ANN)
    # The server ended the session: its refresh token and access token are refused.
    with httpx.Client(base_url=served.base) as http:
        spent = http.post(
            "/oauth2/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": "tokenledger-cli",
            },
        )
        assert spent.json()["error"] == "invalid_grant"
        who = http.get("/v2/whoami", headers={"Authorization": f"Bearer {access_token}"})
        assert who.status_code == 401
    assert_one_line_error(run("auth", "status"), 4, "not logged in")
    assert_one_line_error(run("orgs", "list"), 4, "not logged in: run 'tokenledger auth login")


def test_a_session_ended_elsewhere_says_to_log_in_again(
    served: Served, browser: Browser, credentials: Path
) -> None:
    assert log_in(served, browser).exit_code == 0
    before = saved(credentials)
    assert before.session is not None
    ok("sessions", "end", before.session.session_id)  # by the session's own user
    refused = run("orgs", "list")
    assert_one_line_error(refused, 4, "the session has ended; log in again")


def unreachable_session(path: Path, session_id: str) -> str:
    """A saved session whose server is gone (a closed port); its address."""
    dead = f"http://127.0.0.1:{free_port()}"
    expires = datetime.now(UTC) + timedelta(hours=1)
    refresh = "tlr_" + "r" * 38
    session = Session(session_id=session_id, refresh_token=refresh, expires_at=expires)
    saved = Credentials(
        version=1,
        server=dead,
        org="acme",
        principal=ANN,
        session=session,
        access_token=AccessToken(token="a.b.c", expires_at=expires),
    )
    save_credentials(saved, path)
    return dead


def test_logout_forgets_the_session_even_when_the_server_cannot_be_reached(
    credentials: Path,
) -> None:
    unreachable_session(credentials, "ses_x")
    result = run("auth", "logout")
    assert_one_line_error(result, 7, "logged out here, but cannot reach the server at")
    assert "session ses_x stays valid there until" in result.stderr
    assert "r" * 38 not in result.stderr
    found = load_credentials(credentials)
    assert found is not None
    assert (found.session, found.access_token) == (None, None)
    status = run("auth", "status")
    assert_one_line_error(status, 4, "not logged in")


def test_status_says_when_the_server_cannot_confirm(credentials: Path) -> None:
    dead = unreachable_session(credentials, "ses_y")
    result = ok("auth", "status")
    assert "session:      ses_y until " in result.stdout
    assert f"not confirmed by the server: cannot reach the server at {dead}" in result.stdout


def test_the_python_client_uses_the_session_the_command_line_saved(
    served: Served, browser: Browser, credentials: Path
) -> None:
    from tokenledger.client import Auth, Client

    assert log_in(served, browser).exit_code == 0
    first = saved(credentials)
    with Client() as client:  # the server and the session from the credentials file
        assert client.server == served.base
        assert client.auth.mode == "session"
        assert client.whoami()["sub"] == ANN
        assert client.auth.all_acl_subjects == [f"user:{ANN}", "org:acme", "group:acme:admin"]
    assert first.access_token is not None
    with freeze_time(first.access_token.expires_at - timedelta(seconds=100)), Auth() as auth:
        renewed = auth.token
    assert renewed != first.access_token.token
    assert secrets_of(saved(credentials))[1] == renewed


# -- refused logins ----------------------------------------------------------------------------


def test_an_org_without_a_provider_is_refused_in_one_line(
    served: Served, browser: Browser, credentials: Path
) -> None:
    result = run("auth", "login", "--server", served.base, "--org", "other")
    browser.join()
    refused_login(
        result, 4, "the login was refused: access_denied: org other has no identity provider"
    )
    assert load_credentials(credentials) is None
    assert "Login failed" in browser.landed[0].text


def test_an_answer_for_another_login_is_refused(
    served: Served, browser: Browser, credentials: Path
) -> None:
    browser.tamper = {"state": "not-this-login"}
    result = log_in(served, browser, "--timeout", "3")
    # The loopback takes only its own login's answer and goes on waiting for it.
    refused_login(result, 4, "no answer from the browser within 3 s")
    assert load_credentials(credentials) is None
    assert browser.landed[0].status_code == 400
    assert "Not this login" in browser.landed[0].text


def test_a_browser_launcher_that_waits_for_the_browser_still_logs_in(
    served: Served, browser: Browser, credentials: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$BROWSER`` set to a terminal browser: ``webbrowser.open`` returns only once the
    browser is done, so the loopback must already be answering."""

    def open_and_wait(url: str, *args: Any, **kwargs: Any) -> bool:
        browser.follow(url)
        return True

    monkeypatch.setattr(webbrowser, "open", open_and_wait)
    result = log_in(served, browser, "--timeout", "20")
    assert result.exit_code == 0, result.output
    assert load_credentials(credentials) is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["auth", "login", "--org", "acme"], "give --server URL"),
        (["auth", "login", "--server", "http://127.0.0.1:9"], "give --org ORG"),
        (["auth", "login", "--server", "http://ledger.example", "--org", "acme"], "plain http"),
        (["auth", "login", "--server", "http://127.0.0.1:9", "--org", "No Org"], "invalid org"),
    ],
)
def test_a_login_needs_a_server_and_an_org(
    credentials: Path, args: list[str], message: str
) -> None:
    assert_one_line_error(run(*args), 2, message)


def test_the_browser_not_coming_back_is_a_timeout(credentials: Path) -> None:
    with LoopbackReceiver() as receiver, pytest.raises(PermissionDenied, match="no answer"):
        receiver.wait(0.01)


# -- without a browser on this machine ---------------------------------------------------------


def login_without_browser(
    served: Served, credentials: Path, browser: Browser, code: str | None
) -> tuple[int, str, str]:
    """``auth login --no-browser`` as a process: the address it prints is opened elsewhere
    (``browser``), and the code that page shows (or ``code``) is typed in."""
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    env["TOKENLEDGER_CREDENTIALS_PATH"] = str(credentials)
    command = [str(Path(sys.executable).with_name("tokenledger")), "auth", "login"]
    command += ["--server", served.base, "--org", "acme", "--no-browser"]
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    watchdog = threading.Timer(STARTUP_TIMEOUT, process.kill)
    watchdog.start()
    try:
        assert process.stderr is not None
        assert process.stdin is not None
        shown = ""
        while "/oauth2/authorize?" not in shown:
            line = process.stderr.readline()
            assert line, "the command line printed no address"
            shown = line.strip()
        page = browser.follow(shown)
        assert page.status_code == 200, page.text
        given = dict(parse_qsl(urlsplit(str(page.url)).query))["code"]
        assert given in page.text
        process.stdin.write((code or given) + "\n")
        process.stdin.flush()
        out, err = process.communicate(timeout=STARTUP_TIMEOUT)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out, err


def test_a_login_without_a_browser_reads_the_pasted_code(
    served: Served, credentials: Path, provider: OidcProvider
) -> None:
    code, out, err = login_without_browser(served, credentials, Browser(provider), None)
    assert code == 0, err
    assert out.startswith(f"logged in to {served.base} as {ANN} (org acme)")
    found = saved(credentials)
    for secret in secrets_of(found):
        assert secret not in out + err


def test_a_wrong_pasted_code_is_refused_in_one_line(
    served: Served, credentials: Path, provider: OidcProvider
) -> None:
    code, out, err = login_without_browser(served, credentials, Browser(provider), "not-a-code")
    assert code == 4
    lines = err.strip().splitlines()
    assert lines[-1].startswith("tokenledger: error: invalid_grant: ")
    assert out == ""
    assert load_credentials(credentials) is None


# -- tokens for other tools --------------------------------------------------------------------


def test_a_token_in_the_environment_is_printed_as_it_is(credentials: Path) -> None:
    from tokenledger.domain.secrets import TokenKind, generate_secret

    given = generate_secret(TokenKind.PERSONAL)
    assert ok("auth", "token", token=given).stdout == f"{given}\n"
    assert ok("auth", "token", "-H", token=given).stdout == f"Authorization: Bearer {given}\n"


def test_client_credentials_in_the_environment_give_an_access_token(
    served: Served, credentials: Path
) -> None:
    issued = ok(
        "--server", served.base, "service-accounts", "credentials", "create",
        "ci@acme.service.tokenledger", "--json", token=served.secrets["ann"],
    )  # fmt: skip
    body = json.loads(issued.stdout)
    env: dict[str, str | None] = dict.fromkeys(ENVIRONMENT)
    env.update(
        TOKENLEDGER_CLIENT_ID=body["client_id"],
        TOKENLEDGER_CLIENT_SECRET=body["client_secret"],
        TOKENLEDGER_SERVER=served.base,
    )
    result = CliRunner().invoke(cli, ["auth", "token", "--json"], env=env)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["access_token"].count(".") == 2
    assert answer["token_type"] == "Bearer"
    assert body["client_secret"] not in result.stdout


def test_auth_header_and_auth_token_h_take_what_tokenledger_token_may_hold(
    credentials: Path,
) -> None:
    """A ledger token's secret or an access token (a JWT); a mistyped secret is refused in
    one line by both, without being shown."""
    jwt_like = "eyJhbGciOiJFZERTQSJ9." + "e30" + "." + "A" * 86
    for command in (["auth", "header"], ["auth", "token", "-H"]):
        shown = CliRunner().invoke(cli, command, env={"TOKENLEDGER_TOKEN": jwt_like})
        assert shown.exit_code == 0, shown.output
        assert shown.stdout == f"Authorization: Bearer {jwt_like}\n"
        refused = CliRunner().invoke(cli, command, env={"TOKENLEDGER_TOKEN": "tlp_mistyped"})
        assert_one_line_error(refused, 2, "malformed")
        assert "tlp_mistyped" not in refused.output
