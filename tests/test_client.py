"""``tokenledger.client``: ``Client`` and ``Auth`` against a real server (``tokenledger serve``
on a loopback port), on SQLite and PostgreSQL; ``Auth``'s renewal judged with freezegun."""

from __future__ import annotations

import hashlib
import json
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from freezegun import freeze_time

from api_helpers import SA, seed
from test_api_serve import Server, free_port
from tokenledger.client import Auth, Client
from tokenledger.client.token_cache import forget_all
from tokenledger.domain.permissions import Grant
from tokenledger.errors import (
    Conflict,
    LedgerError,
    NotFound,
    PermissionDenied,
    StorageError,
    ValidationError,
)
from tokenledger.service import Ledger
from tokenledger.store import open_event_store

CLIENT_ENV = (
    "TOKENLEDGER_TOKEN",
    "TOKENLEDGER_CLIENT_ID",
    "TOKENLEDGER_CLIENT_SECRET",
    "TOKENLEDGER_SERVER",
)


@dataclass
class Running:
    """A seeded ledger served on 127.0.0.1 (see ``api_helpers.seed``)."""

    base: str
    secrets: dict[str, str]

    def client(self, secret_name: str = "ann") -> Client:
        return Client(self.base, Auth(token=self.secrets[secret_name]))

    def issued_access_tokens(self) -> int:
        """How many calls the token endpoint answered, from the server's metrics."""
        text = httpx.get(f"{self.base}/metrics").text
        counts = re.findall(r"^tokenledger_token_requests_total\{[^}]*\} (\d+)$", text, re.M)
        return sum(int(n) for n in counts)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def running(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    directory = tmp_path_factory.mktemp("served")
    if request.param == "sqlite":
        url = f"sqlite:///{directory / 'ledger.db'}"
    else:
        url = request.getfixturevalue("postgres_server").fresh_schema()
    ledger = Ledger(open_event_store(url, auto_upgrade=True))
    secrets = seed(ledger)
    ledger.close()
    server = Server(url, directory / "keys.json")
    try:
        yield Running(base=server.base, secrets=secrets)
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No credential from the environment or a real home; a fresh in-memory token cache."""
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOKENLEDGER_CREDENTIALS_PATH", str(tmp_path / "tl" / "credentials.json"))
    forget_all()
    yield
    forget_all()


# -- the management calls ----------------------------------------------------------------------


def test_tokens_issued_listed_verified_and_revoked(running: Running) -> None:
    with running.client() as client:
        issued = client.create_token(
            SA, grants=[("acme/alpha", "read")], name="from-client", expires_in="7d"
        )
        assert issued.secret.startswith("tls_")
        assert issued.secret not in repr(issued)
        token = issued.token
        assert (token.principal, token.name) == (SA, "from-client")
        assert token.grants == (Grant("acme/alpha", "read"),)
        assert issued.receipt.outcome.issued is not None
        assert issued.receipt.outcome.issued.token_id == token.token_id
        assert [type(e).__name__ for e in issued.receipt.events] == ["TokenIssued"]
        assert issued.receipt.positions[0] > 0

        assert token.token_id in [t.token_id for t in client.list_tokens(SA)]
        assert client.get_token(token.token_id) == token

        answer = client.verify_token(issued.secret, resource="acme/alpha/x", level="read")
        assert (answer.active, answer.allowed, answer.token_id) == (True, True, token.token_id)
        denied = client.verify_token(issued.secret, resource="acme/alpha", level="write")
        assert (denied.active, denied.allowed) == (True, False)

        receipt = client.revoke_token(token.token_id, reason="done")
        assert receipt.revoked == [token.token_id]
        assert receipt.log_position == receipt.positions[-1]
        assert client.verify_token(issued.secret).reason == "revoked"
        at_least = client.verify_token(issued.secret, min_position=receipt.log_position)
        assert at_least.reason == "revoked"
        with pytest.raises(Conflict, match="not reached yet"):
            client.verify_token(issued.secret, min_position=receipt.log_position + 1000)
        assert token.token_id not in [t.token_id for t in client.list_tokens(SA)]
        everything = client.list_tokens(SA, include_inactive=True)
        assert [t.revoked_reason for t in everything if t.token_id == token.token_id] == [
            "requested"
        ]
        # As they stood before the revocation: live.
        then, position = client.verify_token_at(issued.secret, receipt_time(client, receipt))
        assert then.active is True
        assert position == issued.receipt.positions[0]


def receipt_time(client: Client, receipt: object) -> datetime:
    """A moment between an issue and the revocation ``receipt`` records."""
    from tokenledger.client.results import Receipt

    assert isinstance(receipt, Receipt)
    entries = client.audit_search(correlation_id=receipt.correlation_id)
    return entries[0].recorded_at - timedelta(microseconds=1)


def test_what_an_opaque_ledger_token_says_comes_from_whoami(running: Running) -> None:
    with Auth(running.base, token=running.secrets["ann"]) as auth:
        assert auth.payload["sub"] == "ann@acme.io"
        assert auth.payload["org"] == "acme"
        assert auth.namespace == hashlib.sha1(b"ann@acme.io").hexdigest()
        assert auth.all_acl_subjects == ["user:ann@acme.io", "org:acme", "group:acme:admin"]
        assert auth.expires_at is None
    with running.client() as client:
        assert client.whoami()["sub"] == "ann@acme.io"


def test_a_token_may_always_ask_about_itself(running: Running) -> None:
    with running.client() as client:
        issued = client.create_token(SA, grants=[("acme/alpha", "read")])
        client.revoke_token(issued.token.token_id)
    with Client(running.base, Auth(token=issued.secret)) as itself:
        assert itself.verify_token(issued.secret).reason == "revoked"
        with pytest.raises(PermissionDenied, match=r"not valid \(revoked\)"):
            itself.verify_token(running.secrets["bob"])


def test_service_accounts_and_their_credentials(running: Running) -> None:
    with running.client() as client:
        account = client.create_service_account(
            "loader", org="acme", resource="acme/alpha", level="read"
        )
        assert account.account_id == "loader@acme.service.tokenledger"
        assert account.permission == Grant("acme/alpha", "read")
        assert client.get_service_account(account.account_id) == account
        assert account.account_id in [a.account_id for a in client.list_service_accounts("acme")]

        issued = client.issue_credential(account.account_id, name="ci")
        assert issued.client_secret.startswith("tlc_")
        assert issued.client_secret not in repr(issued)
        client_id = issued.credential.client_id
        assert [c.client_id for c in client.list_credentials(account.account_id)] == [client_id]
        receipt = client.revoke_credential(client_id)  # no account named: "-"
        assert receipt.outcome.revoked_client_ids == (client_id,)
        assert client.list_credentials(account.account_id) == []
        assert len(client.list_credentials(account.account_id, include_inactive=True)) == 1

        token = client.create_token(account.account_id)
        moved = client.set_permission(account.account_id, "acme/beta", "write")
        change = moved.outcome.permission_change
        assert change is not None
        assert (change.previous, change.permission, change.moved) == (
            Grant("acme/alpha", "read"),
            Grant("acme/beta", "write"),
            True,
        )
        assert moved.revoked == [token.token.token_id]
        deleted = client.delete_service_account(account.account_id)
        assert [type(e).__name__ for e in deleted.events] == ["ServiceAccountDeleted"]
        assert client.get_service_account(account.account_id).deleted is True


def test_audit_search_and_explain(running: Running) -> None:
    with running.client() as client:
        issued = client.create_token(SA, name="explained")
        revoked = client.revoke_token(issued.token.token_id, reason="rotated")
        found = client.audit_search(subject=issued.token.token_id, oldest_first=True)
        assert [r.event_type for r in found] == ["TokenIssued", "TokenRevoked"]
        assert found[1].correlation_id == revoked.correlation_id
        assert found[1].position == revoked.positions[0]
        assert found[1].hash is not None
        assert found[1].prev_hash is not None
        assert found[0].actor == "ann@acme.io"
        story = client.explain_token(issued.token.token_id)
        assert story.status == "revoked"
        assert [r.event_type for r in story.story] == ["TokenIssued", "TokenRevoked"]
        assert story.revocation is not None
        assert story.revocation.position == revoked.positions[0]


def test_refusals_are_the_ledgers_errors_with_its_messages(running: Running) -> None:
    with running.client() as admin, running.client("bob") as bob:
        with pytest.raises(NotFound, match="tok_"):
            admin.get_token("tok_0000000000000000")
        with pytest.raises(ValidationError, match="unknown level"):
            admin.create_service_account("x", org="acme", resource="acme/alpha", level="mighty")
        with pytest.raises(PermissionDenied):
            bob.create_service_account("y", org="acme", resource="acme/alpha", level="read")
        admin.create_service_account("twice", org="acme", resource="acme/alpha", level="read")
        with pytest.raises(Conflict, match="already exists"):
            admin.create_service_account("twice", org="acme", resource="acme/alpha", level="read")
    with Client(running.base, Auth(token="tlp_" + "x" * 38)) as stranger:
        with pytest.raises(LedgerError) as refused:
            stranger.list_service_accounts()
        assert isinstance(refused.value, PermissionDenied | ValidationError)
        assert "x" * 38 not in str(refused.value)


def test_an_unreachable_server_is_one_line() -> None:
    base = f"http://127.0.0.1:{free_port()}"
    with (
        Client(base, Auth(token="tlp_whatever")) as client,
        pytest.raises(StorageError) as refused,
    ):
        client.list_service_accounts()
    message = str(refused.value)
    assert message.startswith(f"cannot reach the server at {base}: ")
    assert "\n" not in message


# -- Auth: client credentials ------------------------------------------------------------------


def credential(running: Running) -> tuple[str, str]:
    with running.client() as admin:
        issued = admin.issue_credential(SA, name="auth-test")
    return issued.credential.client_id, issued.client_secret


def test_client_credentials_are_exchanged_once_and_renewed_within_the_leeway(
    running: Running, tmp_path: Path
) -> None:
    client_id, client_secret = credential(running)
    start = datetime.now(UTC)
    before = running.issued_access_tokens()
    with freeze_time(start) as frozen:
        auth = Auth(running.base, client_id=client_id, client_secret=client_secret)
        first = auth.token
        assert auth.payload["sub"] == SA
        assert auth.token == first
        assert running.issued_access_tokens() == before + 1
        # An hour's token: still good 600 s before its expiry (outside the 500 s leeway) ...
        frozen.tick(timedelta(seconds=3000))
        assert auth.token == first
        # ... renewed once its expiry falls within the leeway.
        frozen.tick(timedelta(seconds=101))
        second = auth.token
        assert second != first
        assert running.issued_access_tokens() == before + 2
    # An access token makes management calls too (the client closes auth with itself).
    with Client(running.base, auth) as client:
        answer = client.verify_token(running.secrets["sa_token"])
        assert answer.active is True


def test_the_access_token_is_cached_in_a_private_file_without_the_secret(
    running: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_id, client_secret = credential(running)
    monkeypatch.setenv("TOKENLEDGER_CLIENT_ID", client_id)
    monkeypatch.setenv("TOKENLEDGER_CLIENT_SECRET", client_secret)
    monkeypatch.setenv("TOKENLEDGER_SERVER", running.base)
    before = running.issued_access_tokens()

    def fetched() -> str:
        with Auth() as auth:
            return auth.token

    token = fetched()
    assert fetched() == token  # the process's memory
    forget_all()
    assert fetched() == token  # another process: the file
    assert running.issued_access_tokens() == before + 1
    digest = hashlib.sha256(f"{running.base}\n{client_id}\n{client_secret}".encode()).hexdigest()
    cached = tmp_path / "tl" / f"access-{digest}.json"
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    content = cached.read_text()
    assert set(json.loads(content)) == {"token", "expires_at"}
    assert client_secret not in content
    assert client_id not in content
    # A wrong secret for the same client gets nothing from the cache: the server refuses it.
    monkeypatch.setenv("TOKENLEDGER_CLIENT_SECRET", "tlc_" + "A" * 38)
    with pytest.raises(PermissionDenied), Auth() as wrong:
        _ = wrong.token


def test_a_refused_client_credential_is_permission_denied(running: Running) -> None:
    client_id, _ = credential(running)
    auth = Auth(running.base, client_id=client_id, client_secret="tlc_" + "w" * 38)
    with auth, pytest.raises(PermissionDenied, match="invalid_client") as refused:
        _ = auth.token
    assert "w" * 38 not in str(refused.value)


# -- Auth: where the credential comes from ---------------------------------------------------------


def test_parameters_come_before_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENLEDGER_TOKEN", "tlp_from_the_environment")
    monkeypatch.setenv("TOKENLEDGER_SERVER", "https://env.example")
    assert Auth(token="tlp_given").token == "tlp_given"
    assert Auth(server="https://given.example").server == "https://given.example"
    auth = Auth()
    assert (auth.token, auth.server, auth.mode) == (
        "tlp_from_the_environment",
        "https://env.example",
        "token",
    )
    with_client = Auth(client_id="cid_a", client_secret="tlc_b")
    assert with_client.mode == "client_credentials"


def test_client_credentials_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOKENLEDGER_CLIENT_ID", "cid_env")
    monkeypatch.setenv("TOKENLEDGER_CLIENT_SECRET", "tlc_" + "s" * 38)
    auth = Auth(server="https://ledger.example")
    assert (auth.mode, auth.client_id) == ("client_credentials", "cid_env")
    assert "s" * 38 not in repr(auth)
    # A parameter's half is completed from the environment.
    assert Auth(client_id="cid_given").client_id == "cid_given"


def test_the_credentials_file_comes_last(tmp_path: Path) -> None:
    from tokenledger.client.credentials import Credentials, save_credentials

    path = tmp_path / "tl" / "credentials.json"
    save_credentials(Credentials(version=1, server="https://saved.example"), path)
    auth = Auth()
    assert (auth.mode, auth.server) == ("session", "https://saved.example")
    with pytest.raises(PermissionDenied, match="not logged in: run 'tokenledger auth login"):
        _ = auth.token
    assert Auth(server="https://other.example").server == "https://other.example"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token": "tlp_x", "client_id": "cid_x"}, "a token or client credentials, not both"),
        ({"client_id": "cid_x"}, "both a client id and a client secret"),
        ({"client_secret": "tlc_x"}, "both a client id and a client secret"),
        ({"leeway": -1}, "at least 0"),
        ({"server": "http://ledger.example"}, "plain http"),
        ({"server": "ftp://ledger.example"}, "expected https://HOST"),
        ({"server": "https://u:pw@ledger.example"}, "never in the URL"),
    ],
)
def test_bad_parameters_are_refused_in_one_line(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        Auth(**kwargs)  # type: ignore[arg-type]
    assert "pw" not in str(refused.value)


def test_without_any_server_there_is_nothing_to_call() -> None:
    with pytest.raises(ValidationError, match="no server"):
        Client()
    assert Auth(token="tlp_x").token == "tlp_x"  # a fixed token needs no server


def test_what_a_jwt_says_about_its_holder() -> None:
    import base64

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    claims = {"sub": "alice@acme.example", "org": "acme", "groups": ["eng", "ops"], "exp": 2}
    token = f"{part({'alg': 'EdDSA'})}.{part(claims)}.c2lnbmF0dXJl"
    auth = Auth(token=token)
    assert auth.payload == claims
    assert auth.namespace == hashlib.sha1(b"alice@acme.example").hexdigest()
    assert auth.all_acl_subjects == [
        "user:alice@acme.example",
        "org:acme",
        "group:eng",
        "group:ops",
    ]
    assert auth.expires_at == datetime(1970, 1, 1, 0, 0, 2, tzinfo=UTC)
    assert token not in repr(auth)
