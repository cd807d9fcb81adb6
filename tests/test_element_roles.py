"""Element AI's role tokens, role policies and resource URNs: a role's keys (``ACCESS:SECRET``)
act with the role's grants as they stand when presented, through the CLI, ``TOKENLEDGER_TOKEN``,
the HTTP API and ``--server``, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from api_helpers import Api, make_api
from helpers import assert_one_line_error, assert_projections_match_log, cli_run, head_position
from tokenledger.cli.app import cli
from tokenledger.domain.events import RevocationReason, TokenIssued, TokenRevoked
from tokenledger.store.mapper import decode_event

ROLE = "acme.alice.token"  # Element's ORG.ACCOUNT.ROLE: role alice.token of org acme
ALPHA_URN = "urn:tokenledger:acme:alpha"
KEY = re.compile(r"^(tok_[0-9A-Za-z]{16}):(tlk_[0-9A-Za-z]{38})$")


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


@pytest.fixture
def url(api: Api, database_url: str) -> str:
    return database_url


def ok(url: str, *args: str, token: str | None = None) -> Result:
    result = cli_run(url, *args, token=token)
    assert result.exit_code == 0, result.output
    return result


def new_key(url: str, role: str = ROLE) -> str:
    key = ok(url, "roles", "key", "new", role).stdout.strip()
    assert KEY.fullmatch(key), key
    return key


def verify(url: str, key: str, resource: str, level: str = "read") -> dict[str, Any]:
    result = CliRunner().invoke(
        cli,
        ["--db", url, "tokens", "verify", "--resource", resource, "--level", level, "--json"],
        input=key,
    )
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def events(api: Api) -> list[Any]:
    return [decode_event(record) for record in api.ledger.store.read_all()]


# -- keys ------------------------------------------------------------------------------------


def test_a_key_is_printed_once_as_access_colon_secret_and_only_its_hash_is_kept(
    api: Api, url: str
) -> None:
    ok(url, "roles", "create", ROLE)
    result = ok(url, "roles", "key", "new", ROLE)
    key = result.stdout.strip()
    match = KEY.fullmatch(key)
    assert match is not None, key
    assert "shown once" in result.stderr
    access, secret = match.groups()
    issued = [e for e in events(api) if isinstance(e, TokenIssued) and e.token_id == access]
    assert len(issued) == 1
    assert issued[0].kind == "role"
    assert issued[0].principal == "acme:alice.token"
    assert issued[0].grants == ()  # nothing copied: the role's grants are read when presented
    assert issued[0].secret_hash == hashlib.sha256(key.encode()).hexdigest()
    with api.ledger.store.engine.connect() as connection:
        raw = connection.exec_driver_sql("SELECT data FROM events").all()
    assert not any(secret in str(row[0]) for row in raw)
    listed = ok(url, "roles", "key", "list", ROLE).stdout
    assert access in listed
    assert secret not in listed
    as_json = json.loads(ok(url, "roles", "key", "new", ROLE, "--json").stdout)
    assert as_json["token"] == f"{as_json['access']}:{as_json['secret']}"
    assert_projections_match_log(api.ledger)


def test_a_key_may_do_what_its_role_grants_at_each_verification(api: Api, url: str) -> None:
    ok(url, "roles", "create", ROLE)  # Element creates the role empty, then adds policies
    key = new_key(url)
    assert verify(url, key, "acme/alpha")["allowed"] is False
    urn = ok(url, "resources", "get", "acme/alpha", "--field", "urn").stdout.strip()
    assert urn == ALPHA_URN
    ok(url, "roles", "policy", "new", ROLE, f"data:get@{urn}")
    assert verify(url, key, "acme/alpha")["allowed"] is True
    assert verify(url, key, "acme/alpha", "write")["allowed"] is False
    assert verify(url, key, "acme/beta")["allowed"] is False
    # Over HTTP: token verification and the Bearer caller alike.
    answer = api.client.post(
        "/v2/tokens/verify",
        json={"token": key, "resource": ALPHA_URN, "level": "read"},
        headers=api.admin,
    ).json()
    assert answer["allowed"] is True
    got = api.client.get(f"/v2/resources/{ALPHA_URN}", headers=api.bearer(key))
    assert got.status_code == 200, got.text
    assert got.json()["urn"] == ALPHA_URN
    ok(url, "roles", "policy", "new", ROLE, "data:update@acme/alpha")  # replaces read
    assert verify(url, key, "acme/alpha", "write")["allowed"] is True
    listed = json.loads(ok(url, "roles", "policy", "list", ROLE, "--json").stdout)
    assert [p["policy"] for p in listed] == [f"data:update@{ALPHA_URN}"]
    ok(url, "roles", "policy", "delete", ROLE, ALPHA_URN)
    assert verify(url, key, "acme/alpha")["allowed"] is False
    assert api.client.get("/v2/resources/acme/alpha", headers=api.bearer(key)).status_code == 404
    assert_projections_match_log(api.ledger)


def test_a_deleted_resource_takes_the_roles_grants_on_it_along(api: Api, url: str) -> None:
    ok(url, "roles", "create", ROLE)
    key = new_key(url)
    ok(url, "resources", "create", "acme/gamma")
    ok(url, "resources", "create", "acme/gamma/raw")
    ok(url, "roles", "policy", "new", ROLE, "data:get@acme/gamma/raw")
    ok(url, "roles", "policy", "new", ROLE, "data:get@acme/alpha")
    assert verify(url, key, "acme/gamma/raw")["allowed"] is True
    ok(url, "resources", "delete", "acme/gamma", "--recursive")
    # Made again, the path is a new resource: what the role granted on the old one is gone.
    ok(url, "resources", "create", "acme/gamma")
    ok(url, "resources", "create", "acme/gamma/raw")
    assert verify(url, key, "acme/gamma/raw")["allowed"] is False
    assert verify(url, key, "acme/alpha")["allowed"] is True
    listed = json.loads(ok(url, "roles", "policy", "list", ROLE, "--json").stdout)
    assert [p["policy"] for p in listed] == [f"data:get@{ALPHA_URN}"]
    assert_projections_match_log(api.ledger)


def test_deleting_a_role_revokes_each_key_with_an_event_linked_to_the_deletion(
    api: Api, url: str
) -> None:
    ok(url, "roles", "create", ROLE, "--grant", "acme/alpha=read")
    keys = [new_key(url), new_key(url)]
    result = json.loads(ok(url, "roles", "delete", ROLE, "--json").stdout)
    accesses = sorted(k.partition(":")[0] for k in keys)
    assert sorted(result["revoked"]) == accesses
    revoked = [e for e in events(api) if isinstance(e, TokenRevoked)]
    assert sorted(e.token_id for e in revoked) == accesses
    assert {e.reason for e in revoked} == {RevocationReason.ROLE_DELETED}
    assert {e.orgs for e in revoked} == {("acme",)}
    for key in keys:
        answer = verify(url, key, "acme/alpha")
        assert (answer["active"], answer["reason"]) == (False, "revoked")
    story = ok(url, "audit", "explain", accesses[0]).stdout
    assert "root cause:" in story
    assert "role acme:alice.token deleted" in story
    assert accesses[1] in story  # revoked with it
    assert_projections_match_log(api.ledger)


def test_a_key_is_revoked_by_its_access_id(api: Api, url: str) -> None:
    ok(url, "roles", "create", ROLE, "--grant", "acme/alpha=read")
    ok(url, "roles", "create", "acme:other")
    key = new_key(url)
    access = key.partition(":")[0]
    before = head_position(api.ledger)
    assert_one_line_error(cli_run(url, "roles", "key", "revoke", "acme:other", access), 3)
    assert head_position(api.ledger) == before
    ok(url, "roles", "key", "revoke", ROLE, access, "--reason", "rotated")
    assert verify(url, key, "acme/alpha")["reason"] == "revoked"
    assert_one_line_error(cli_run(url, "roles", "key", "revoke", ROLE, access), 5, "already")
    assert ok(url, "roles", "key", "list", ROLE).stdout.strip() == f"role {ROLE}: no keys"
    assert access in ok(url, "roles", "key", "list", ROLE, "--all").stdout


def test_a_key_in_tokenledger_token_acts_as_its_role_and_no_further(api: Api, url: str) -> None:
    ok(url, "roles", "create", ROLE, "--grant", "acme/alpha=read")
    key = new_key(url)
    listed = ok(url, "resources", "list", token=key).stdout
    assert "acme/alpha" in listed
    assert "acme/beta" not in listed
    before = head_position(api.ledger)
    refused = cli_run(url, "resources", "create", "acme/alpha/raw", token=key)
    assert_one_line_error(refused, 4, "needs write")
    # A key is a machine's credential: it manages no roles, even its own.
    assert_one_line_error(cli_run(url, "roles", "key", "new", ROLE, token=key), 4, "role key")
    assert head_position(api.ledger) == before
    ok(url, "roles", "policy", "new", ROLE, "data:update@acme/alpha")  # at the next use
    ok(url, "resources", "create", "acme/alpha/raw", token=key)
    malformed = key[:-1] + ("A" if key[-1] != "A" else "B")
    result = cli_run(url, "resources", "list", token=malformed)
    assert_one_line_error(result, 4, "not valid")
    assert malformed.partition(":")[2] not in result.stderr


def test_an_org_admin_manages_role_keys_and_policies_over_http(api: Api) -> None:
    base = "/v2/orgs/acme/roles/alice.token"
    created = api.client.post(
        "/v2/orgs/acme/roles", json={"name": "alice.token"}, headers=api.admin
    )
    assert created.status_code == 201, created.text
    policy = api.client.post(
        f"{base}/policies", json={"policy": f"data:get@{ALPHA_URN}"}, headers=api.admin
    )
    assert policy.status_code == 201, policy.text
    assert policy.json()["resource"] == "acme/alpha"
    issued = api.client.post(f"{base}/keys", json={}, headers=api.admin)
    assert issued.status_code == 201, issued.text
    key = issued.json()["secret"]
    access = issued.json()["access"]
    assert key.startswith(f"{access}:tlk_")
    assert api.introspect(key, resource="acme/alpha")["allowed"] is True
    listed = api.client.get(f"{base}/keys", headers=api.admin).json()
    assert [k["token_id"] for k in listed] == [access]
    assert "secret" not in listed[0]
    # A member who is no admin, and the key itself, are refused alike.
    for who in (api.bearer(api.bob), api.bearer(key)):
        assert api.client.post(f"{base}/keys", json={}, headers=who).status_code == 403
        assert api.client.get(f"{base}/keys", headers=who).status_code == 403
    removed = api.client.delete(f"{base}/policies/{ALPHA_URN}", headers=api.admin)
    assert removed.status_code == 200, removed.text
    assert api.client.get(f"{base}/policies", headers=api.admin).json() == []
    assert api.introspect(key, resource="acme/alpha")["allowed"] is False
    revoked = api.client.delete(f"{base}/keys/{access}", headers=api.admin)
    assert revoked.json()["revoked"] == [access]
    assert api.introspect(key) == {"active": False}
    deleted = api.client.delete(base, headers=api.admin)
    assert deleted.status_code == 200, deleted.text
    assert api.client.get(f"{base}/policies", headers=api.admin).status_code == 404
    bad = api.client.post(f"{base}/policies", json={"policy": "data:get"}, headers=api.admin)
    assert bad.status_code in (400, 404)
    assert_projections_match_log(api.ledger)


# -- names, policies, URNs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("roles", "create", "acme.Bad.token"), "invalid role name"),
        (("roles", "create", "acme..token"), "ORG.ACCOUNT.ROLE"),
        (("roles", "key", "new", "token"), "name the role with its org"),
        (("roles", "key", "new", "acme:admin"), "predefined"),
        (("roles", "key", "new", "acme:admins"), "no role admins in org acme"),
        (("roles", "policy", "new", ROLE, "data:get"), "invalid policy"),
        (("roles", "policy", "new", ROLE, "data:frob@acme/alpha"), "unknown verb"),
        (("roles", "policy", "new", ROLE, "data:get@acme/Alpha"), "invalid resource path"),
        (("roles", "policy", "new", ROLE, "data:get@urn:tokenledger:acme/alpha"), "URN"),
        (("roles", "policy", "new", ROLE, "data:get@urn:tokenledger:nope:x"), "outside org"),
        (("roles", "policy", "new", ROLE, "data:admin@acme/alpha"), "long-lived admin"),
        (("roles", "policy", "new", ROLE, "data:get@acme/gamma"), "no resource"),
        (("roles", "create", "acme.ci.x", "--grant", "urn:tokenledger:nope=read"), "outside"),
        (("resources", "get", "urn:tokenledger:nope:x"), "no resource nope/x"),
        (("resources", "delete", "urn:tokenledger:nope:x"), "nope/x"),
        (("grants", "set", "bob@acme.io", "urn:tokenledger:nope", "read"), "nope"),
        (
            (
                "tokens",
                "create",
                "--principal",
                "bob@acme.io",
                "--resource",
                "urn:tokenledger:",
                "--level",
                "read",
            ),
            "URN",
        ),
    ],
)
def test_bad_role_names_policies_and_urns_are_refused_in_one_line(
    api: Api, url: str, args: tuple[str, ...], fragment: str
) -> None:
    ok(url, "roles", "create", ROLE)
    new_key(url)  # a role with keys is never granted admin
    before = head_position(api.ledger)
    result = cli_run(url, *args)
    assert result.exit_code in (2, 3), result.output
    assert_one_line_error(result, result.exit_code, fragment)
    assert head_position(api.ledger) == before


def test_a_role_granting_admin_gets_no_keys(api: Api, url: str) -> None:
    ok(url, "roles", "create", "acme:ops", "--grant", "acme/alpha=admin")
    before = head_position(api.ledger)
    assert_one_line_error(cli_run(url, "roles", "key", "new", "acme:ops"), 2, "long-lived admin")
    assert head_position(api.ledger) == before


def test_a_urn_is_accepted_wherever_a_path_is(api: Api, url: str) -> None:
    got = json.loads(ok(url, "resources", "get", ALPHA_URN, "--json").stdout)
    assert (got["path"], got["urn"]) == ("acme/alpha", ALPHA_URN)
    assert (
        ok(url, "resources", "get", "acme", "--field", "urn").stdout.strip()
        == "urn:tokenledger:acme"
    )
    ok(url, "resources", "create", "urn:tokenledger:acme:alpha:raw")
    assert (
        ok(url, "resources", "get", "acme/alpha/raw", "--field", "kind").stdout.strip()
        == "collection"
    )
    ok(url, "grants", "set", "bob@acme.io", "urn:tokenledger:acme:beta", "read")
    issued = json.loads(
        ok(
            url,
            "tokens",
            "create",
            "--principal",
            "bob@acme.io",
            "--resource",
            "urn:tokenledger:acme:beta",
            "--level",
            "read",
            "--json",
        ).stdout
    )
    assert issued["grants"] == [{"resource": "acme/beta", "level": "read"}]
    ok(url, "roles", "create", "acme.alice.ci", "--grant", f"{ALPHA_URN}=read")
    token = json.loads(
        ok(
            url,
            "tokens",
            "create",
            "--principal",
            "bob@acme.io",
            "--role",
            "acme.alice.ci",
            "--json",
        ).stdout
    )
    assert token["grants"] == [{"resource": "acme/alpha", "level": "read"}]
    ok(url, "resources", "delete", "urn:tokenledger:acme:alpha:raw")
    listed = api.client.get("/v2/resources", headers=api.admin).json()
    assert {r["path"]: r["urn"] for r in listed}["acme/beta"] == "urn:tokenledger:acme:beta"


def test_auth_token_header_prints_the_bearer_header_of_a_role_key(api: Api, url: str) -> None:
    ok(url, "roles", "create", ROLE)
    key = new_key(url)
    for flag in ("-H", "--header"):
        printed = ok(url, "auth", "token", flag, token=key).stdout
        assert printed == f"Authorization: Bearer {key}\n"
    bare = key.partition(":")[2]  # the secret without its access id is no key
    result = cli_run(url, "auth", "token", "-H", token=bare)
    assert_one_line_error(result, 2, "ACCESS:SECRET")
    assert bare not in result.stderr


# -- --server ----------------------------------------------------------------------------------


def test_the_role_commands_work_against_a_server(
    api: Api, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_api_serve import Server

    monkeypatch.setenv("TOKENLEDGER_CREDENTIALS_PATH", str(tmp_path / "credentials.json"))
    server = Server(url, tmp_path / "served-keys.json")

    def remote(*args: str) -> Result:
        env = {"TOKENLEDGER_TOKEN": api.ann, "TOKENLEDGER_DATABASE_URL": None}
        result = CliRunner().invoke(cli, ["--server", server.base, *args], env=env)
        assert result.exit_code == 0, result.output
        return result

    try:
        remote("roles", "create", ROLE)
        key = remote("roles", "key", "new", ROLE).stdout.strip()
        assert KEY.fullmatch(key), key
        urn = remote("resources", "get", "acme/alpha", "--field", "urn").stdout.strip()
        remote("roles", "policy", "new", ROLE, f"data:get@{urn}")
        listed = json.loads(remote("roles", "policy", "list", ROLE, "--json").stdout)
        assert [p["resource"] for p in listed] == ["acme/alpha"]
        assert verify(url, key, "acme/alpha")["allowed"] is True
        access = key.partition(":")[0]
        assert access in remote("roles", "key", "list", ROLE).stdout
        remote("roles", "policy", "delete", ROLE, urn)
        assert verify(url, key, "acme/alpha")["allowed"] is False
        second = remote("roles", "key", "new", ROLE).stdout.strip()
        remote("roles", "key", "revoke", ROLE, access)
        assert "revoked 1 token(s)" in remote("roles", "delete", ROLE).stdout
        assert verify(url, second, "acme")["reason"] == "revoked"
    finally:
        server.stop()
    assert_projections_match_log(api.ledger)


def test_a_key_says_who_it_is_as_its_role(api: Api, url: str) -> None:
    ok(url, "roles", "create", ROLE)
    key = new_key(url)
    answer = api.client.get("/v2/whoami", headers=api.bearer(key))
    assert answer.status_code == 200, answer.text
    who = answer.json()
    assert (who["sub"], who["email"], who["org"]) == ("acme:alice.token", None, "acme")
    assert who["acl_subjects"][:2] == ["role:acme:alice.token", "org:acme"]


def test_a_key_learns_nothing_of_another_principals_permission(api: Api, url: str) -> None:
    ok(url, "roles", "create", ROLE)
    ok(url, "roles", "policy", "new", ROLE, "data:get@acme")  # it may see bob
    key = new_key(url)
    before = head_position(api.ledger)
    for level in ("read", "admin"):  # within bob's permission, and beyond it
        refused = cli_run(
            url,
            "tokens",
            "create",
            "--principal",
            "bob@acme.io",
            "--resource",
            "acme/alpha",
            "--level",
            level,
            token=key,
        )
        assert_one_line_error(refused, 4, "may not issue tokens for bob@acme.io")
        assert "permission" not in refused.stderr
    assert head_position(api.ledger) == before


def test_a_key_reaches_only_itself_and_the_orgs_admins_see_every_key(api: Api, url: str) -> None:
    ok(url, "roles", "create", ROLE)
    first, second = new_key(url), new_key(url)
    first_id, second_id = first.split(":")[0], second.split(":")[0]
    before = head_position(api.ledger)
    assert_one_line_error(
        cli_run(url, "tokens", "revoke", second_id, token=first), 4, "role key may not"
    )
    assert_one_line_error(
        cli_run(url, "tokens", "get", second_id, token=first), 4, "role key may not"
    )
    assert head_position(api.ledger) == before
    assert cli_run(url, "tokens", "get", first_id, token=first).exit_code == 0
    assert api.client.get(f"/v2/tokens/{second_id}", headers=api.admin).status_code == 200
    ok(url, "tokens", "revoke", first_id, token=first)  # a key may revoke itself
    story = api.client.get(f"/v2/tokens/{first_id}/explain", headers=api.admin)
    assert story.status_code == 200, story.text
    assert story.json()["status"] == "revoked"
    bob = api.client.get(f"/v2/tokens/{second_id}", headers=api.bearer(api.bob))
    assert bob.status_code == 403
