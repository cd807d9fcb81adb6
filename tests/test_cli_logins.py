"""Logging in administered from the command line, on both databases: an org's identity
provider (its secret kept with the signing keys), service accounts' issuer trusts, and users'
sessions. (The same commands against a server: ``tests/test_cli_contract.py``.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import assert_one_line_error, cli_head, cli_json, cli_run
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor, ActorKind
from tokenledger.service import Ledger
from tokenledger.service.keys import KeyStore

SA = "ci@acme.service.tokenledger"
BOB = "bob@acme.io"
SESSION = "ses_" + "ab" * 12


@pytest.fixture
def url(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    # The signing keys (and the providers' secrets) in a file of the test's own.
    monkeypatch.setenv("TOKENLEDGER_KEYS_FILE", str(tmp_path / "keys.json"))
    for args in (
        ("db", "upgrade"),
        ("orgs", "create", "acme"),
        ("resources", "create", "acme/alpha"),
        ("users", "create", BOB),
        ("orgs", "add-member", "acme", BOB),
        (
            "service-accounts",
            "create",
            "ci",
            "--org",
            "acme",
            "--resource",
            "acme/alpha",
            "--level",
            "write",
        ),
    ):
        result = cli_run(database_url, *args)
        assert result.exit_code == 0, result.output
    return database_url


def test_set_idp_keeps_the_secret_with_the_signing_keys_and_orgs_get_shows_it(
    url: str, tmp_path: Path
) -> None:
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("the-providers-secret\n")
    shown = cli_json(
        url,
        "orgs",
        "set-idp",
        "acme",
        "--issuer",
        "https://login.acme.example",
        "--client-id",
        "ledger",
        "--client-secret-file",
        str(secret_file),
        "--session-lifetime",
        "7d",
    )
    assert shown["client_secret"] is True
    assert shown["session_lifetime_seconds"] == 7 * 86400
    keys = KeyStore(tmp_path / "keys.json")
    assert keys.ring().provider_secrets == {"acme": "the-providers-secret"}
    events = cli_run(url, "events")
    assert "the-providers-secret" not in events.output
    assert "IdentityProviderSet" in events.output
    got = cli_run(url, "orgs", "get", "acme")
    assert got.exit_code == 0, got.output
    assert "identity provider: https://login.acme.example (client ledger)" in got.output
    assert "sessions up to 7 days" in got.output


def test_set_idp_refuses_in_one_line_and_records_nothing(url: str, tmp_path: Path) -> None:
    before = cli_head(url)
    base = ("orgs", "set-idp", "acme", "--client-id", "ledger")
    cases = [
        ((*base, "--issuer", "http://login.acme.example"), 2, "https"),
        ((*base, "--issuer", "https://x.example", "--session-lifetime", "60d"), 2, "30 days"),
        (
            (*base, "--issuer", "https://x.example", "--client-secret-file", "/nonexistent"),
            2,
            "cannot read",
        ),
        (
            ("orgs", "set-idp", "nowhere", "--issuer", "https://x.example", "--client-id", "l"),
            3,
            "no org",
        ),
    ]
    for args, code, fragment in cases:
        assert_one_line_error(cli_run(url, *args), code, fragment)
    assert cli_head(url) == before
    assert (
        not (tmp_path / "keys.json").exists()
        or not KeyStore(tmp_path / "keys.json").ring().provider_secrets
    )


def test_a_member_may_not_set_the_provider(url: str) -> None:
    assert cli_run(url, "grants", "set", BOB, "acme/alpha", "write").exit_code == 0
    issued = cli_json(
        url, "tokens", "create", "--principal", BOB, "--resource", "acme/alpha", "--level", "write"
    )
    before = cli_head(url)
    result = cli_run(
        url,
        "orgs",
        "set-idp",
        "acme",
        "--issuer",
        "https://login.acme.example",
        "--client-id",
        "ledger",
        token=issued["secret"],
    )
    assert_one_line_error(result, 4, "admin on acme")
    assert cli_head(url) == before
    assert_one_line_error(cli_run(url, "orgs", "get", "acme", token=issued["secret"]), 4)


def test_trusts_are_made_listed_and_withdrawn(url: str) -> None:
    made = cli_json(
        url,
        "service-accounts",
        "trust-issuer",
        SA,
        "--issuer",
        "https://token.actions.example",
        "--subject",
        "repo:acme/site:ref:refs/heads/*",
        "--audience",
        "tokenledger",
    )
    assert made["trust_id"].startswith("wif_")
    listed = cli_json(url, "service-accounts", "trusts", SA)
    assert [t["trust_id"] for t in listed] == [made["trust_id"]]
    refused = cli_run(
        url,
        "service-accounts",
        "trust-issuer",
        SA,
        "--issuer",
        "https://token.actions.example",
        "--subject",
        "*:ref:refs/heads/main",
        "--audience",
        "tokenledger",
    )
    assert_one_line_error(refused, 2, "before the first *")
    withdrawn = cli_json(
        url, "service-accounts", "untrust-issuer", SA, "--issuer", "https://token.actions.example"
    )
    assert withdrawn["withdrawn"] == [made["trust_id"]]
    assert cli_json(url, "service-accounts", "trusts", SA) == []
    kept = cli_json(url, "service-accounts", "trusts", SA, "--all")
    assert kept[0]["withdrawn_reason"] == "requested"
    again = cli_run(
        url, "service-accounts", "untrust-issuer", SA, "--issuer", "https://token.actions.example"
    )
    assert_one_line_error(again, 3, "does not trust")


def test_sessions_are_listed_and_ended(url: str) -> None:
    ledger = Ledger.open(url)
    try:
        ledger.execute(
            c.build(
                c.SetIdentityProvider,
                org="acme",
                issuer="https://login.acme.example",
                oidc_client_id="ledger",
            ),
            Actor.operator("root"),
        )
        ledger.execute(
            c.build(
                c.StartSession,
                session_id=SESSION,
                org="acme",
                email=BOB,
                issuer="https://login.acme.example",
                subject="bob-at-the-provider",
                refresh_hash="0" * 64,
            ),
            Actor(kind=ActorKind.USER, principal=BOB),
        )
    finally:
        ledger.close()
    listed = cli_json(url, "sessions", "list", BOB)
    assert [(s["session_id"], s["status"]) for s in listed] == [(SESSION, "active")]
    plain = cli_run(url, "sessions", "list", BOB)
    assert f"{SESSION}  acme  active" in plain.output
    ended = cli_run(url, "sessions", "end", SESSION, "--reason", "laptop lost")
    assert ended.exit_code == 0, ended.output
    assert cli_json(url, "sessions", "list", BOB) == []
    every = cli_json(url, "sessions", "list", BOB, "--all")
    assert every[0]["ended_reason"] == "requested"
    explained = cli_run(url, "audit", "explain", SESSION, "--json")
    assert explained.exit_code == 0, explained.output
    assert json.loads(explained.stdout)["status"] == "ended"
    assert_one_line_error(cli_run(url, "sessions", "end", SESSION), 5, "ended already")
    assert_one_line_error(cli_run(url, "sessions", "end", "ses_nope"), 2, "session id")


def test_what_needs_the_database_never_reads_the_credentials_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corrupt credentials file (or a saved login) stops the commands that would use it,
    not those that work on the database anyway."""
    from click.testing import CliRunner

    from tokenledger.cli import cli

    credentials = tmp_path / "credentials.json"
    credentials.write_text("{not json")
    credentials.chmod(0o600)
    monkeypatch.chdir(tmp_path)
    env = {
        "TOKENLEDGER_CREDENTIALS_PATH": str(credentials),
        "TOKENLEDGER_DATABASE_URL": None,
        "TOKENLEDGER_SERVER": None,
        "TOKENLEDGER_TOKEN": None,
    }
    upgraded = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
    assert upgraded.exit_code == 0, upgraded.output
    assert (tmp_path / "tokenledger.db").exists()
    listed = CliRunner().invoke(cli, ["users", "list"], env=env)
    assert_one_line_error(listed, 7, "cannot be read")
