"""The ledger's command line on both databases: a full session, acting through tokens,
cascades, and refused input (one line on stderr, an exit code per category, nothing logged)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from helpers import assert_one_line_error
from tokenledger.cli import cli

ORG = "acme"
ALICE = "alice@acme.example"
BOB = "bob@acme.example"
SA = "ingest@acme.service.tokenledger"
TOKEN_ENV = "TOKENLEDGER_TOKEN"


def run(url: str, *args: str, token: str | None = None, stdin: str | None = None) -> Result:
    """Invoke the CLI; ``token`` sets TOKENLEDGER_TOKEN (unset when None)."""
    return CliRunner().invoke(cli, ["--db", url, *args], env={TOKEN_ENV: token}, input=stdin)


def ok(url: str, *args: str, token: str | None = None, stdin: str | None = None) -> Any:
    """Invoke with ``--json``, expect success and one JSON document on stdout."""
    result = run(url, *args, "--json", token=token, stdin=stdin)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def head(url: str) -> int:
    position = ok(url, "log", "head")["position"]
    assert isinstance(position, int)
    return position


def refused(
    url: str,
    code: int,
    args: list[str],
    *fragments: str,
    token: str | None = None,
    stdin: str | None = None,
) -> Result:
    """Expect a one-line error with exit ``code`` and an unchanged log head."""
    before = head(url)
    result = run(url, *args, token=token, stdin=stdin)
    assert_one_line_error(result, code, *fragments)
    assert head(url) == before
    return result


def issue(url: str, *args: str, token: str | None = None, stdin: str | None = None) -> Any:
    issued = ok(url, "tokens", "create", *args, token=token, stdin=stdin)
    assert issued["token_id"].startswith("tok_")
    assert issued["correlation_id"]
    return issued


def verify(url: str, secret: str, *args: str) -> tuple[int, Any]:
    result = run(url, "tokens", "verify", *args, "--json", stdin=secret + "\n")
    assert result.exit_code in (0, 1), result.output
    assert result.stderr == ""
    return result.exit_code, json.loads(result.stdout)


@dataclass
class Session:
    url: str
    first: dict[str, Any]  # the service account's token on its whole project
    second: dict[str, Any]  # its read-only token on acme/alpha/raw


def upgraded(url: str) -> str:
    result = run(url, "db", "upgrade")
    assert result.exit_code == 0, result.output
    return url


@pytest.fixture
def session(database_url: str) -> Session:
    return build_session(upgraded(database_url))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_session(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Session:
    """One session per backend, shared by the tests that must leave the log as it is."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('shared') / 'ledger.db'}"
    else:
        url = request.getfixturevalue("postgres_server").fresh_schema()
    return build_session(upgraded(url))


def build_session(url: str) -> Session:
    """acme: alice (admin) and bob (member, read on acme/alpha/raw); a resource tree; a role;
    the service account ingest with write on acme/alpha and two tokens."""
    assert ok(url, "orgs", "create", ORG)["id"] == ORG
    created = ok(url, "users", "create", "Alice@Acme.example", "--name", "Alice")
    assert created["id"] == ALICE
    assert ok(url, "users", "create", BOB)["id"] == BOB
    assert ok(url, "orgs", "add-member", ORG, ALICE, "--role", "admin")["role"] == "admin"
    assert ok(url, "orgs", "add-member", ORG, BOB)["role"] == "member"
    for path, kind in [
        ("acme/alpha", "project"),
        ("acme/alpha/raw", "collection"),
        ("acme/alpha/raw/2024", "dataset"),
        ("acme/beta", "project"),
    ]:
        resource = ok(url, "resources", "create", path)
        assert (resource["id"], resource["kind"]) == (path, kind)
        assert resource["correlation_id"]
    assert ok(url, "grants", "set", BOB, "acme/alpha/raw", "read")["level"] == "read"
    role = ok(
        url, "roles", "create", ORG, "reader", "--grant", "acme/alpha=read", "--grant",
        "acme/beta=read",
    )  # fmt: skip
    assert role["id"] == "acme:reader"
    account = ok(
        url, "service-accounts", "create", "ingest", "--org", ORG, "--resource", "acme/alpha",
        "--level", "write",
    )  # fmt: skip
    assert account["id"] == SA
    assert account["permission"] == {"resource": "acme/alpha", "level": "write"}
    first = issue(url, "--principal", SA, "--name", "first")
    second = issue(url, "--principal", SA, "--resource", "acme/alpha/raw", "--level", "read")
    return Session(url=url, first=first, second=second)


# -- the session ---------------------------------------------------------------------------


def test_queries_show_the_session(shared_session: Session) -> None:
    url = shared_session.url
    assert ok(url, "orgs", "list") == [{"id": ORG}]
    assert ok(url, "orgs", "members", ORG) == [
        {"email": ALICE, "role": "admin"},
        {"email": BOB, "role": "member"},
    ]
    users = ok(url, "users", "list", "--org", ORG)
    assert [(u["id"], u["name"], u["disabled"]) for u in users] == [
        (ALICE, "Alice", False),
        (BOB, None, False),
    ]
    below = ok(url, "resources", "list", "acme/alpha")
    assert [r["path"] for r in below] == ["acme/alpha", "acme/alpha/raw", "acme/alpha/raw/2024"]
    assert ok(url, "grants", "list", BOB) == [
        {"resource": "acme/alpha/raw", "level": "read", "source": "direct"}
    ]
    roles = {r["role"]: r["grants"] for r in ok(url, "roles", "list", ORG)}
    assert roles["reader"] == [
        {"resource": "acme/alpha", "level": "read"},
        {"resource": "acme/beta", "level": "read"},
    ]
    assert roles["admin"] == [{"resource": ORG, "level": "admin"}]
    accounts = ok(url, "service-accounts", "list", "--org", ORG)
    assert [a["id"] for a in accounts] == [SA]
    human = run(url, "roles", "list", ORG)
    assert "read:acme/alpha, read:acme/beta" in human.stdout


def test_issued_tokens_carry_their_grants_and_expiry(shared_session: Session) -> None:
    first, second = shared_session.first, shared_session.second
    assert first["secret"].startswith("tls_")
    assert first["principal"] == SA
    assert first["grants"] == [{"resource": "acme/alpha", "level": "write"}]
    assert second["grants"] == [{"resource": "acme/alpha/raw", "level": "read"}]
    expires = datetime.fromisoformat(first["expires_at"])
    assert timedelta(days=364) < expires - datetime.now(UTC) <= timedelta(days=365)


def test_human_token_output_shows_the_secret_once_with_a_warning(session: Session) -> None:
    result = run(session.url, "tokens", "create", "--principal", BOB, "--resource",
                 "acme/alpha/raw", "--level", "read", "--expires-in", "7d")  # fmt: skip
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    assert secret.startswith("tlp_")
    assert result.stdout.count(secret) == 1
    assert "will not be shown again" in result.stdout


def test_verify_allowed_and_not_allowed(session: Session) -> None:
    url, first, second = session.url, session.first, session.second
    code, answer = verify(url, first["secret"], "--resource", "acme/alpha/raw", "--level", "write")
    assert code == 0
    assert answer["active"] is True
    assert answer["allowed"] is True
    assert answer["sub"] == SA
    assert answer["token_id"] == first["token_id"]
    assert answer["scope"] == "write:acme/alpha"

    code, answer = verify(url, second["secret"], "--resource", "acme/alpha/raw", "--level", "write")
    assert code == 1
    assert (answer["active"], answer["allowed"], answer["reason"]) == (True, False, "not_allowed")

    code, answer = verify(url, first["secret"], "--resource", "acme/beta")
    assert (code, answer["reason"]) == (1, "not_allowed")

    from_env = run(url, "tokens", "verify", "--resource", "acme/alpha", token=second["secret"])
    assert from_env.exit_code == 1
    assert "not allowed: read on acme/alpha" in from_env.stdout
    assert run(url, "tokens", "verify", token=second["secret"]).exit_code == 0


def test_verify_answers_malformed_for_a_bad_checksum(shared_session: Session) -> None:
    secret = shared_session.first["secret"]
    typo = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    before = head(shared_session.url)
    code, answer = verify(shared_session.url, typo)
    assert (code, answer) == (1, {"active": False, "allowed": False, "reason": "malformed"})
    assert head(shared_session.url) == before


def test_moving_the_service_account_revokes_its_tokens(session: Session) -> None:
    url, first, second = session.url, session.first, session.second
    moved = ok(url, "service-accounts", "set-permission", SA, "acme/beta", "read")
    assert moved["moved"] is True
    assert sorted(moved["revoked"]) == sorted([first["token_id"], second["token_id"]])
    for token in (first, second):
        code, answer = verify(url, token["secret"])
        assert (code, answer["reason"]) == (1, "revoked")

    events = [json.loads(line) for line in run(url, "events").stdout.splitlines()]
    cascade = [e for e in events if e["correlation_id"] == moved["correlation_id"]]
    assert [e["event_type"] for e in cascade] == [
        "ServiceAccountPermissionMoved",
        "TokenRevoked",
        "TokenRevoked",
    ]
    assert len({e["command_id"] for e in cascade}) == 1
    assert {e["data"]["reason"] for e in cascade[1:]} == {"service_account_moved"}

    third = issue(url, "--principal", SA)
    level_only = ok(url, "service-accounts", "set-permission", SA, "acme/beta", "write")
    assert (level_only["moved"], level_only["revoked"]) == (False, [])
    assert verify(url, third["secret"])[0] == 0


def test_tokens_list_get_and_revoke(session: Session) -> None:
    url, first, second = session.url, session.first, session.second
    listed = run(url, "tokens", "list", "--principal", SA, "--json")
    assert listed.exit_code == 0, listed.output
    assert {t["token_id"] for t in json.loads(listed.stdout)} == {
        first["token_id"],
        second["token_id"],
    }
    got = ok(url, "tokens", "get", first["token_id"])
    assert (got["principal"], got["status"], got["name"]) == (SA, "active", "first")
    human_get = run(url, "tokens", "get", first["token_id"])
    human_list = run(url, "tokens", "list", "--principal", SA, "--all")
    for shown in (listed.stdout, json.dumps(got), human_get.stdout, human_list.stdout):
        assert first["secret"] not in shown
        assert second["secret"] not in shown
        assert "secret" not in shown

    revoked = ok(url, "tokens", "revoke", first["token_id"], "--reason", "rotated")
    assert revoked["revoked"] == [first["token_id"]]
    assert revoked["correlation_id"]
    live = ok(url, "tokens", "list", "--principal", SA)
    assert [t["token_id"] for t in live] == [second["token_id"]]
    every = {t["token_id"]: t for t in ok(url, "tokens", "list", "--principal", SA, "--all")}
    assert every[first["token_id"]]["status"] == "revoked"
    assert every[first["token_id"]]["revoked_reason"] == "requested"
    refused(url, 5, ["tokens", "revoke", first["token_id"]], "already revoked")

    everything = ok(url, "tokens", "revoke", "--all", "--principal", SA)
    assert everything["revoked"] == [second["token_id"]]
    assert verify(url, second["secret"])[1]["reason"] == "revoked"
    assert ok(url, "tokens", "revoke", "--all", "--principal", SA)["revoked"] == []


def test_a_derived_token_follows_its_parent(session: Session) -> None:
    url, first = session.url, session.first
    child = issue(url, "--parent", first["token_id"], "--resource", "acme/alpha/raw", "--level",
                  "read")  # fmt: skip
    assert child["secret"].startswith("tld_")
    assert (child["principal"], child["parent_id"]) == (SA, first["token_id"])
    lifetime = datetime.fromisoformat(child["expires_at"]) - datetime.now(UTC)
    assert lifetime <= timedelta(hours=1)
    refused(url, 4, ["tokens", "create", "--parent", session.second["token_id"], "--resource",
                     "acme/alpha/raw", "--level", "write"], "exceeds its parent token")  # fmt: skip
    revoked = ok(url, "tokens", "revoke", first["token_id"])
    assert revoked["revoked"] == [first["token_id"], child["token_id"]]
    assert verify(url, child["secret"])[1]["reason"] == "revoked"


def test_grant_config_from_a_path_and_from_stdin(session: Session, tmp_path: Path) -> None:
    url = session.url
    config = tmp_path / "grants.yaml"
    config.write_text(
        f"account: {SA}\nname: from-file\ngrants:\n"
        "- resources: [raw]\n  functions: [consume]\n  accounts: [acme/alpha]\n"
    )
    from_file = issue(url, "-c", str(config))
    assert (from_file["principal"], from_file["name"]) == (SA, "from-file")
    assert from_file["grants"] == [{"resource": "acme/alpha/raw", "level": "read"}]

    document = {"grants": [{"policy": "data:get@acme/alpha/raw/2024"}], "expires_in": "2h"}
    from_stdin = issue(url, "--principal", BOB, "-c", "-", stdin=json.dumps(document))
    assert from_stdin["principal"] == BOB
    assert from_stdin["grants"] == [{"resource": "acme/alpha/raw/2024", "level": "read"}]
    lifetime = datetime.fromisoformat(from_stdin["expires_at"]) - datetime.now(UTC)
    assert timedelta(hours=1) < lifetime <= timedelta(hours=2)
    assert verify(url, from_stdin["secret"], "--resource", "acme/alpha/raw/2024")[0] == 0


def test_auth_header(session: Session) -> None:
    secret = session.first["secret"]
    result = run(session.url, "auth", "header", token=secret)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"Authorization: Bearer {secret}\n"
    assert ok(session.url, "auth", "header", token=secret) == {"Authorization": f"Bearer {secret}"}
    assert_one_line_error(run(session.url, "auth", "header"), 2, TOKEN_ENV)
    # Another last character (a secret may itself end in "0"): the checksum no longer matches.
    typo = secret[:-1] + ("1" if secret.endswith("0") else "0")
    bad = refused(session.url, 2, ["auth", "header"], "bad checksum", token=typo)
    assert secret[:-1] not in bad.stderr


# -- cascades ---------------------------------------------------------------------------------


def test_cascades_report_what_they_revoked(session: Session) -> None:
    url = session.url
    bobs = issue(url, "--principal", BOB, "--resource", "acme/alpha/raw", "--level", "read")
    removed = ok(url, "orgs", "remove-member", ORG, BOB)
    assert removed["revoked"] == [bobs["token_id"]]
    assert removed["correlation_id"]

    alices = issue(url, "--principal", ALICE, "--role", "reader")
    assert alices["grants"] == [
        {"resource": "acme/alpha", "level": "read"},
        {"resource": "acme/beta", "level": "read"},
    ]
    disabled = ok(url, "users", "disable", ALICE, "--reason", "left")
    assert disabled["revoked"] == [alices["token_id"]]
    assert verify(url, alices["secret"])[1]["reason"] == "revoked"

    deleted = ok(url, "resources", "delete", "acme/alpha/raw", "--recursive")
    assert deleted["deleted"] == ["acme/alpha/raw/2024", "acme/alpha/raw"]
    assert deleted["revoked"] == [session.second["token_id"]]

    gone = ok(url, "service-accounts", "delete", SA)
    assert gone["revoked"] == [session.first["token_id"]]
    assert ok(url, "service-accounts", "list") == []


# -- acting through a token -----------------------------------------------------------------


def test_a_service_account_token_cannot_manage_users(session: Session) -> None:
    token = session.first["secret"]
    refused(session.url, 4, ["users", "create", "carol@acme.example"], "service account",
            token=token)  # fmt: skip
    refused(session.url, 4, ["service-accounts", "create", "other", "--org", ORG, "--resource",
                             "acme/alpha", "--level", "read"], token=token)  # fmt: skip
    refused(session.url, 4, ["orgs", "add-member", ORG, "carol@acme.example"], token=token)
    own = ok(session.url, "tokens", "list", "--principal", SA, token=token)
    assert len(own) == 2


def test_a_user_token_cannot_grant_above_its_level(session: Session) -> None:
    url = session.url
    narrow = issue(url, "--principal", ALICE, "--resource", "acme/alpha", "--level", "write")
    token = narrow["secret"]
    refused(url, 4, ["grants", "set", BOB, "acme/alpha", "write"], "needs admin on acme/alpha",
            token=token)  # fmt: skip
    refused(url, 4, ["tokens", "create", "--principal", ALICE, "--resource", "acme/alpha",
                     "--level", "admin"], "exceeds the acting token", token=token)  # fmt: skip
    refused(url, 4, ["tokens", "create", "--principal", BOB, "--resource", "acme/alpha/raw",
                     "--level", "read"], "may not see bob@acme.example", token=token)  # fmt: skip
    within = issue(url, "--principal", ALICE, "--resource", "acme/alpha/raw", "--level", "read",
                   token=token)  # fmt: skip
    assert within["grants"] == [{"resource": "acme/alpha/raw", "level": "read"}]

    admin = issue(url, "--principal", ALICE, "--role", "admin", "--expires-in", "1h")["secret"]
    assert ok(url, "users", "create", "carol@acme.example", token=admin)["id"]
    assert ok(url, "grants", "set", BOB, "acme/alpha", "write", token=admin)["level"] == "write"
    last = json.loads(run(url, "events").stdout.splitlines()[-1])
    assert last["actor"] == ALICE

    bobs = issue(url, "--principal", BOB, "--resource", "acme/alpha", "--level", "write")
    refused(url, 4, ["orgs", "add-member", ORG, "carol@acme.example"], "needs admin on acme",
            token=bobs["secret"])  # fmt: skip


def test_an_invalid_acting_token_is_refused(session: Session) -> None:
    url, first = session.url, session.first
    ok(url, "tokens", "revoke", first["token_id"])
    refused(url, 4, ["resources", "create", "acme/alpha/new"], "not valid (revoked)",
            token=first["secret"])  # fmt: skip
    typo = first["secret"][:-1] + ("A" if first["secret"][-1] != "A" else "B")
    result = refused(url, 4, ["orgs", "list"], "bad checksum", token=typo)
    assert typo[:-1] not in result.stderr


# -- bad input ---------------------------------------------------------------------------------

BAD_INPUT: list[tuple[str, list[str], int, str, str | None]] = [
    ("unknown org", ["orgs", "add-member", "nope", ALICE], 3, "no org nope", None),
    ("unknown org for members", ["orgs", "members", "nope"], 3, "no org nope", None),
    ("unknown user", ["orgs", "add-member", ORG, "carol@acme.example"], 3, "no user", None),
    ("unknown user's grants", ["grants", "list", "carol@acme.example"], 3, "no user", None),
    ("unknown resource", ["grants", "set", BOB, "acme/nope", "read"], 3, "no resource", None),
    ("unknown parent", ["resources", "create", "acme/nope/x"], 3, "no resource acme/nope", None),
    ("unknown resource in a token",
     ["tokens", "create", "--principal", BOB, "--resource", "acme/nope", "--level", "read"],
     3, "no resource acme/nope", None),
    ("unknown token", ["tokens", "get", "tok_AAAAAAAAAAAAAAAA"], 3, "no token", None),
    ("unknown service account", ["service-accounts", "delete", "ghost@acme.service.tokenledger"],
     3, "no service account", None),
    ("malformed email", ["users", "create", "not-an-email"], 2, "invalid email address", None),
    ("malformed email in a query", ["tokens", "list", "--principal", "x@"], 2, "invalid email",
     None),
    ("malformed path", ["resources", "create", "acme/Bad Path"], 2, "invalid resource path",
     None),
    ("malformed org name", ["orgs", "create", "Acme!"], 2, "invalid org name", None),
    ("malformed token id", ["tokens", "revoke", "tok_short"], 2, "invalid token id", None),
    ("unknown level", ["grants", "set", BOB, "acme/alpha", "superuser"], 2,
     "unknown level 'superuser'", None),
    ("unknown level for an account",
     ["service-accounts", "create", "x", "--org", ORG, "--resource", "acme/beta", "--level",
      "root"], 2, "unknown level", None),
    ("unknown role for a member", ["orgs", "add-member", ORG, BOB, "--role", "wizard"], 3,
     "no role wizard", None),
    ("unknown role for a token", ["tokens", "create", "--principal", BOB, "--role", "wizard"], 3,
     "no role wizard", None),
    ("grant outside the service account's project",
     ["tokens", "create", "--principal", SA, "--resource", "acme/beta", "--level", "read"], 2,
     "outside", None),
    ("service account permission on a collection",
     ["service-accounts", "set-permission", SA, "acme/alpha/raw", "read"], 2, "project", None),
    ("role grant outside its org", ["roles", "create", ORG, "x", "--grant", "other/a=read"], 2,
     "outside org acme", None),
    ("malformed role grant", ["roles", "create", ORG, "x", "--grant", "acme/alpha"], 2,
     "RESOURCE=LEVEL", None),
    ("expiry in the past",
     ["tokens", "create", "--principal", BOB, "--resource", "acme/alpha/raw", "--level", "read",
      "--expires-at", "2000-01-01T00:00:00Z"], 2, "past", None),
    ("malformed expiry time",
     ["tokens", "create", "--principal", BOB, "--expires-at", "next tuesday"], 2,
     "ISO 8601", None),
    ("malformed duration", ["tokens", "create", "--principal", BOB, "--expires-in", "soon"], 2,
     "invalid duration", None),
    ("two expiries",
     ["tokens", "create", "--principal", BOB, "--resource", "acme/alpha/raw", "--level", "read",
      "--expires-in", "1d", "--no-expiry"], 2, "at most one", None),
    ("long-lived admin token",
     ["tokens", "create", "--principal", ALICE, "--role", "admin", "--no-expiry"], 2,
     "must expire", None),
    ("malformed YAML", ["tokens", "create", "--principal", BOB, "-c", "-"], 2,
     "<stdin>: invalid YAML", "grants: [\n"),
    ("unknown config key", ["tokens", "create", "--principal", BOB, "-c", "-"], 2,
     "unknown key 'owner'", "owner: x\ngrants: [{policy: 'data:get@acme/alpha'}]\n"),
    ("missing config file", ["tokens", "create", "--principal", BOB, "-c", "/nonexistent.yaml"],
     2, "/nonexistent.yaml: cannot read", None),
    ("principal without permission",
     ["tokens", "create", "--principal", BOB, "--resource", "acme/beta", "--level", "read"], 4,
     "exceeds bob@acme.example's permission", None),
    ("grant above the principal's",
     ["tokens", "create", "--principal", BOB, "--resource", "acme/alpha/raw", "--level", "write"],
     4, "exceeds", None),
    ("existing org", ["orgs", "create", ORG], 5, "already exists", None),
    ("existing user", ["users", "create", ALICE], 5, "already exists", None),
    ("existing role", ["roles", "create", ORG, "admin", "--grant", "acme=read"], 5,
     "already exists", None),
    ("resource not empty", ["resources", "delete", "acme/alpha/raw"], 5, "below it", None),
    ("resource a service account holds", ["resources", "delete", "acme/alpha", "--recursive"], 5,
     "service account", None),
    ("no secret to verify", ["tokens", "verify"], 2, TOKEN_ENV, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "code", "fragment", "stdin"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUT],
)
def test_bad_input_is_refused_on_one_line_and_logs_nothing(
    shared_session: Session, args: list[str], code: int, fragment: str, stdin: str | None
) -> None:
    refused(shared_session.url, code, args, fragment, stdin=stdin)
    refused(shared_session.url, code, [*args, "--json"], fragment, stdin=stdin)


def test_a_secret_given_as_a_token_id_is_refused_without_repeating_it(
    shared_session: Session,
) -> None:
    secret = shared_session.first["secret"]
    for args in (["tokens", "get", secret], ["tokens", "revoke", secret],
                 ["tokens", "create", "--parent", secret]):  # fmt: skip
        result = refused(shared_session.url, 2, args, "that is a token secret")
        assert secret not in result.stderr
        assert secret[4:20] not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(
            ["tokens", "create", "--principal", BOB, "--resource", "acme/alpha"], id="pairs"
        ),
        pytest.param(["tokens", "create", "--principal", BOB, "--level", "read"], id="level-only"),
        pytest.param(["tokens", "revoke"], id="revoke-nothing"),
        pytest.param(["tokens", "revoke", "tok_AAAAAAAAAAAAAAAA", "--all"], id="revoke-both"),
        pytest.param(["tokens", "revoke", "--all"], id="revoke-all-without-principal"),
        pytest.param(
            ["tokens", "revoke", "tok_AAAAAAAAAAAAAAAA", "--principal", BOB],
            id="revoke-principal-without-all",
        ),
        pytest.param(["tokens", "verify", "--level", "read"], id="verify-level-alone"),
    ],
)
def test_usage_errors_exit_2_and_log_nothing(shared_session: Session, args: list[str]) -> None:
    before = head(shared_session.url)
    result = run(shared_session.url, *args)
    assert result.exit_code == 2, result.output
    assert "Error:" in result.stderr
    assert "Traceback" not in result.stderr
    assert head(shared_session.url) == before
