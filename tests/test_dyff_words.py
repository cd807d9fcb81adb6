"""Dyff's account management words, typed as Dyff's documentation types them (with
``python3 -m dyff.api.mgmt`` replaced by ``tokenledger``): ``accounts create``, and the three
ways of ``tokens create`` for an account id (a role, switches, a config file or standard
input). Refusals are one line and append nothing. On SQLite and PostgreSQL, through the
command line; ``accounts create`` against a running server too."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from api_helpers import OPERATOR, Api, make_api
from helpers import assert_one_line_error, cli_head, cli_json, cli_run
from test_api_serve import Server
from tokenledger.cli import cli
from tokenledger.domain import commands as c
from tokenledger.domain.authority import may_see_event
from tokenledger.domain.model import Actor
from tokenledger.service import commands
from tokenledger.store import PendingEvent, open_event_store

#: The ids Dyff's documentation shows: the account it creates, and the one it issues for.
CREATED_ID = "3076c505c36b46bdad1cf1abefaeb580"
DEV_ID = "aeb78193c526484fa4f5c14d182ba039"
ADMIN_ID = "0f0e0d0c0b0a09080706050403020100"
NOBODY_ID = "0123456789abcdef0123456789abcdef"

#: The seed's config file, as its documentation writes it.
CONFIG = f"""account: {DEV_ID}
grants:
- resources:
  - datasets
  - models
  functions:
  - consume
  accounts:
  - test
"""


def dyff(url: str, line: str, *, token: str | None = None, stdin: str | None = None) -> Result:
    """Run a Dyff command line, its program replaced by ``tokenledger``."""
    words = shlex.split(line)
    assert words[:3] == ["python3", "-m", "dyff.api.mgmt"]
    return cli_run(url, *words[3:], token=token, stdin=stdin)


def grants_of(result: Result) -> list[tuple[str, str]]:
    """The grants of the token a plain ``tokens create`` printed."""
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.strip().startswith("grants:"))
    listed = line.split(":", 1)[1].strip().split(", ")
    return [(resource, level) for level, resource in (g.split(":", 1) for g in listed)]


@pytest.fixture
def account_ids(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The account ids the service hands out next, in order (the documentation's own)."""
    ids = [CREATED_ID, DEV_ID, ADMIN_ID]
    then = commands.new_account_id  # random ones after those

    monkeypatch.setattr(commands, "new_account_id", lambda: ids.pop(0) if ids else then())
    return ids


@pytest.fixture
def url(database_url: str, account_ids: list[str]) -> str:
    """Org ``test`` (datasets, models); the account alice@example.com; the account DEV_ID
    (dev@example.com: an auditor of ``test`` with write on ``test/models``); the account
    ADMIN_ID (boss@example.com: admin of ``test``)."""
    for args in (
        ("db", "upgrade"),
        ("orgs", "create", "test"),
        ("resources", "create", "test/datasets"),
        ("resources", "create", "test/models"),
    ):
        assert cli_run(database_url, *args).exit_code == 0
    created = dyff(database_url, "python3 -m dyff.api.mgmt accounts create -n alice@example.com")
    assert created.exit_code == 0, created.output
    for args in (
        ("accounts", "create", "-n", "dev@example.com"),
        ("accounts", "create", "-n", "boss@example.com"),
        ("orgs", "add-member", "test", "dev@example.com", "--role", "auditor"),
        ("orgs", "add-member", "test", "boss@example.com", "--role", "admin"),
        ("grants", "set", "dev@example.com", "test/models", "write"),
    ):
        assert cli_run(database_url, *args).exit_code == 0
    return database_url


# -- accounts ---------------------------------------------------------------------------------


def test_accounts_create_prints_what_dyff_prints(database_url: str, account_ids: list[str]) -> None:
    assert cli_run(database_url, "db", "upgrade").exit_code == 0
    result = dyff(database_url, "python3 -m dyff.api.mgmt accounts create -n alice@example.com")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"created account: 'alice@example.com' ({CREATED_ID})\n"
    answer = cli_json(database_url, "accounts", "create", "-n", "Dev@Example.com")
    assert answer["id"] == DEV_ID
    assert answer["name"] == "dev@example.com"


def test_a_generated_account_id_is_32_hex_digits(database_url: str) -> None:
    assert cli_run(database_url, "db", "upgrade").exit_code == 0
    first = cli_run(database_url, "accounts", "create", "-n", "alice@example.com")
    second = cli_run(database_url, "accounts", "create", "-n", "bob@example.com")
    pattern = r"created account: '(\S+)' \(([0-9a-f]{32})\)\n"
    found = [re.fullmatch(pattern, result.stdout) for result in (first, second)]
    assert found[0] is not None
    assert found[1] is not None
    assert found[0][1] == "alice@example.com"
    assert found[0][2] != found[1][2]


def test_accounts_show_in_the_listings_and_survive_a_rebuild(url: str) -> None:
    assert cli_run(url, "accounts", "list").stdout.splitlines() == [
        f"'alice@example.com' ({CREATED_ID})",
        f"'boss@example.com' ({ADMIN_ID})",
        f"'dev@example.com' ({DEV_ID})",
    ]
    assert cli_run(url, "users", "create", "plain@example.com").exit_code == 0
    users = {u["email"]: u["account_id"] for u in cli_json(url, "users", "list")}
    assert users["dev@example.com"] == DEV_ID
    assert users["plain@example.com"] is None
    assert f"dev@example.com  account {DEV_ID}" in cli_run(url, "users", "list").stdout
    members = cli_json(url, "accounts", "list", "--org", "test")
    assert [(a["name"], a["id"]) for a in members] == [
        ("boss@example.com", ADMIN_ID),
        ("dev@example.com", DEV_ID),
    ]
    check = cli_run(url, "replay", "--check")
    assert check.exit_code == 0, check.output
    assert cli_run(url, "replay").exit_code == 0
    assert {u["email"]: u["account_id"] for u in cli_json(url, "users", "list")} == users


def test_a_log_from_before_account_ids_still_replays(url: str) -> None:
    """A UserCreated recorded before account ids has none; it reads and rebuilds."""
    store = open_event_store(url, auto_upgrade=False)
    try:
        old = b'{"type":"UserCreated","email":"old@example.com","name":"Old"}'
        store.append(
            [PendingEvent(stream_id="user:old@example.com", event_type="UserCreated", data=old)],
            actor="operator:test",
        )
    finally:
        store.engine.dispose()
    assert cli_run(url, "replay").exit_code == 0
    users = {u["email"]: u for u in cli_json(url, "users", "list")}
    assert users["old@example.com"]["account_id"] is None
    assert users["old@example.com"]["name"] == "Old"
    assert cli_run(url, "replay", "--check").exit_code == 0


def test_an_account_is_a_user_named_by_an_email(url: str) -> None:
    head = cli_head(url)
    refused = cli_run(url, "accounts", "create", "-n", "test")
    assert_one_line_error(refused, 2, "invalid account name 'test'", "email address")
    again = cli_run(url, "accounts", "create", "-n", "alice@example.com")
    assert_one_line_error(again, 5, "user alice@example.com already exists")
    assert cli_head(url) == head


def test_accounts_are_created_by_whoever_may_create_users(url: str) -> None:
    dev = cli_json(url, "tokens", "create", "-i", DEV_ID, "--role", "AuditDeveloper")["secret"]
    boss = cli_json(url, "tokens", "create", "-i", ADMIN_ID, "--role", "Admin", "--yes-long-lived")
    head = cli_head(url)
    refused = cli_run(url, "accounts", "create", "-n", "new@example.com", token=dev)
    assert_one_line_error(refused, 4, "may not create users")
    assert cli_head(url) == head
    created = cli_run(url, "accounts", "create", "-n", "new@example.com", token=boss["secret"])
    assert created.exit_code == 0, created.output
    assert re.fullmatch(r"created account: 'new@example.com' \([0-9a-f]{32}\)\n", created.stdout)


# -- the three ways of creating a token ---------------------------------------------------------


def test_by_role_audit_developer(url: str) -> None:
    """Full permissions within its own grants, read on every org it belongs to."""
    line = f"python3 -m dyff.api.mgmt tokens create -t account -i {DEV_ID} --role AuditDeveloper"
    result = dyff(url, line)
    assert result.stdout.startswith("issued personal token tok_")
    assert "for dev@example.com" in result.stdout.splitlines()[0]
    assert grants_of(result) == [("test", "read"), ("test/models", "write")]
    assert result.stderr == ""  # nothing admin: no warning


def test_by_command_line_switches(url: str) -> None:
    line = (
        "python3 -m dyff.api.mgmt tokens create -t account -f 'consume' -a 'test' "
        f"-r 'datasets,models' -i {DEV_ID}"
    )
    result = dyff(url, line)
    assert "for dev@example.com" in result.stdout.splitlines()[0]
    assert grants_of(result) == [("test/datasets", "read"), ("test/models", "read")]


def test_by_config_file(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = dyff(url, "python3 -m dyff.api.mgmt tokens create -t account -c config.yaml")
    assert "for dev@example.com" in result.stdout.splitlines()[0]
    assert grants_of(result) == [("test/datasets", "read"), ("test/models", "read")]


def test_by_config_on_standard_input(url: str) -> None:
    result = dyff(url, "python3 -m dyff.api.mgmt tokens create -t account -c -", stdin=CONFIG)
    assert "for dev@example.com" in result.stdout.splitlines()[0]
    assert grants_of(result) == [("test/datasets", "read"), ("test/models", "read")]


def test_the_admin_role_is_admin_on_every_org_of_the_account(url: str) -> None:
    result = cli_run(url, "tokens", "create", "-t", "account", "-i", ADMIN_ID, "--role", "Admin")
    assert grants_of(result) == [("test", "admin")]
    warning = result.stderr.splitlines()
    assert len(warning) == 1
    assert warning[0].startswith("tokenledger: warning: token tok_")
    assert "admin on test and lives 30 days" in warning[0]
    silenced = cli_run(
        url, "tokens", "create", "-i", ADMIN_ID, "--role", "Admin", "--yes-long-lived"
    )
    assert grants_of(silenced) == [("test", "admin")]
    assert silenced.stderr == ""
    short = cli_run(
        url, "tokens", "create", "-i", ADMIN_ID, "--role", "Admin", "--expires-in", "7d"
    )
    assert short.stderr == ""


def test_a_role_never_exceeds_the_account(url: str) -> None:
    head = cli_head(url)
    admin = cli_run(url, "tokens", "create", "-t", "account", "-i", DEV_ID, "--role", "Admin")
    assert_one_line_error(admin, 4, "grant admin:test exceeds dev@example.com's permission")
    assert cli_head(url) == head
    assert cli_run(url, "orgs", "create", "other").exit_code == 0
    assert cli_run(url, "orgs", "add-member", "other", "dev@example.com").exit_code == 0
    head = cli_head(url)
    wider = cli_run(url, "tokens", "create", "-i", DEV_ID, "--role", "AuditDeveloper")
    assert_one_line_error(wider, 4, "grant read:other exceeds dev@example.com's permission")
    alone = cli_run(url, "tokens", "create", "-i", CREATED_ID, "--role", "AuditDeveloper")
    assert_one_line_error(alone, 2, "role AuditDeveloper grants nothing", "belongs to no org")
    assert cli_head(url) == head


# -- refusals: one line, nothing appended ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["-i", "not-a-dyff-id", "--role", "AuditDeveloper"], 2, "invalid account id"),
        (["-i", "aeb78193c526484fa4f5c14d182ba03", "--role", "Admin"], 2, "invalid account id"),
        (["-i", "aeb78193c526484fa4f5c14d182ba03g", "--role", "Admin"], 2, "invalid account id"),
        (["-i", NOBODY_ID, "--role", "AuditDeveloper"], 3, f"no account {NOBODY_ID}"),
        (["-t", "other", "-i", DEV_ID, "--role", "AuditDeveloper"], 2, "invalid token type"),
        (["-i", DEV_ID, "-f", "frobnicate", "-a", "test", "-r", "datasets"], 2, "unknown function"),
        (["-i", DEV_ID, "-f", "consume", "-a", "test"], 2, "give -f/--functions, -a/--accounts"),
        (["-i", DEV_ID, "-f", "consume", "-a", "test", "-r", "datasets,"], 2, "invalid -r"),
        (["-i", DEV_ID, "--role", "test:Admin"], 2, "invalid role name"),
        (["-i", DEV_ID, "--principal", "bob@acme.io", "--role", "Admin"], 2, "principal once"),
    ],
    ids=[
        "not-hex",
        "too-short",
        "not-hex-digit",
        "unknown-id",
        "other-type",
        "unknown-function",
        "switches-apart",
        "empty-resource",
        "org-qualified-builtin",
        "principal-twice",
    ],
)
def test_refused_in_one_line_with_the_log_untouched(
    url: str, args: list[str], code: int, fragment: str
) -> None:
    head = cli_head(url)
    result = cli_run(url, "tokens", "create", *args)
    assert_one_line_error(result, code, fragment)
    assert cli_head(url) == head


def test_a_config_file_naming_a_malformed_account_is_refused(url: str) -> None:
    head = cli_head(url)
    config = CONFIG.replace(DEV_ID, "dev-account")
    result = cli_run(url, "tokens", "create", "-t", "account", "-c", "-", stdin=config)
    assert_one_line_error(result, 2, "invalid account id 'dev-account'")
    assert cli_head(url) == head


def test_an_account_id_tells_nothing_to_who_may_not_see_it(url: str) -> None:
    """A token of another org's user asking for an account: refused naming the id only."""
    assert cli_run(url, "orgs", "create", "elsewhere").exit_code == 0
    assert cli_run(url, "users", "create", "eve@example.com").exit_code == 0
    assert cli_run(url, "orgs", "add-member", "elsewhere", "eve@example.com", "--role", "admin")
    eve = cli_json(url, "tokens", "create", "-i", "eve@example.com", "--role", "elsewhere:admin",
                   "--yes-long-lived")["secret"]  # fmt: skip
    head = cli_head(url)
    for account in (DEV_ID, NOBODY_ID):
        result = cli_run(url, "tokens", "create", "-i", account, "--role", "Admin", token=eve)
        assert_one_line_error(result, 4, f"may not see {account}")
        assert "dev@example.com" not in result.stderr
    assert cli_head(url) == head


def test_no_org_takes_an_account_id_as_its_name(url: str) -> None:
    """A user's creation names its account id in the audit index: were an org named so, its
    readers would see the user. No org may be named so, and an id names no org."""
    head = cli_head(url)
    refused = cli_run(url, "orgs", "create", DEV_ID)
    assert_one_line_error(refused, 2, f"invalid org name '{DEV_ID}'", "account id")
    assert cli_head(url) == head
    actor = Actor.through_token("eve@example.com", "tok_0000000000000000")
    assert not may_see_event(actor, ("dev@example.com", DEV_ID), lambda org: org == DEV_ID)
    assert may_see_event(actor, ("dev@example.com", "test"), lambda org: org == "test")


# -- over HTTP ------------------------------------------------------------------------------


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def test_http_creates_accounts_and_issues_for_their_ids(api: Api) -> None:
    admin = {"Authorization": f"Bearer {api.ann}"}
    created = api.client.post(
        "/v2/users", json={"email": "dev@acme.io", "account": True}, headers=admin
    )
    assert created.status_code == 201, created.text
    account_id = created.json()["account_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", account_id)
    plain = api.client.post("/v2/users", json={"email": "plain@acme.io"}, headers=admin)
    assert plain.json()["account_id"] is None
    put = api.client.put(
        "/v2/orgs/acme/members/dev@acme.io", json={"role": "auditor"}, headers=admin
    )
    assert put.status_code == 200, put.text
    listed = api.client.get("/v2/users", params={"org": "acme"}, headers=admin).json()
    assert {u["email"]: u["account_id"] for u in listed}["dev@acme.io"] == account_id
    # Only dev itself (or an operator) issues dev's tokens, as for any user: dev's first
    # token comes from the operator, dev's next through it, naming dev by its account id.
    first = api.ledger.execute(
        c.IssueToken(principal=account_id, grants=[{"resource": "acme", "level": "read"}]),
        OPERATOR,
    )
    assert first.issued is not None
    assert first.issued.principal == "dev@acme.io"
    own = {"Authorization": f"Bearer {first.secret}"}
    body = {"role": "AuditDeveloper", "expires_in": "1h"}
    issued = api.client.post(f"/v2/users/{account_id}/tokens", json=body, headers=own)
    assert issued.status_code == 201, issued.text
    assert issued.json()["principal"] == "dev@acme.io"
    assert [g["resource"] for g in issued.json()["grants"]] == ["acme"]
    unknown = api.client.post(f"/v2/users/{NOBODY_ID}/tokens", json=body, headers=own)
    assert unknown.status_code == 403  # not 404: a token holder learns nothing of others
    malformed = api.client.post("/v2/users/not-an-id/tokens", json=body, headers=admin)
    assert malformed.status_code == 400
    assert "invalid account id" in malformed.json()["error_description"]


# -- against a server -----------------------------------------------------------------------


def remote(server: str, *args: str, token: str) -> Result:
    env: dict[str, Any] = {
        "TOKENLEDGER_TOKEN": token,
        "TOKENLEDGER_DATABASE_URL": None,
        "TOKENLEDGER_SERVER": None,
    }
    return CliRunner().invoke(cli, ["--server", server, *args], env=env)


def test_accounts_create_against_a_server(url: str, tmp_path: Path) -> None:
    boss = cli_json(url, "tokens", "create", "-i", ADMIN_ID, "--role", "Admin", "--yes-long-lived")
    server = Server(url, tmp_path / "keys.json")
    try:
        created = remote(server.base, "accounts", "create", "-n", "new@example.com",
                         token=boss["secret"])  # fmt: skip
        assert created.exit_code == 0, created.output
        found = re.fullmatch(r"created account: 'new@example.com' \(([0-9a-f]{32})\)\n",
                             created.stdout)  # fmt: skip
        assert found is not None
        listed = remote(server.base, "accounts", "list", "--org", "test", "--json",
                        token=boss["secret"])  # fmt: skip
        assert listed.exit_code == 0, listed.output
        names = [account["name"] for account in json.loads(listed.stdout)]
        assert names == ["boss@example.com", "dev@example.com"]
        refused = remote(server.base, "accounts", "create", "-n", "test", token=boss["secret"])
        assert_one_line_error(refused, 2, "invalid account name 'test'")
    finally:
        server.stop()
    users = {u["email"]: u["account_id"] for u in cli_json(url, "users", "list")}
    assert users["new@example.com"] == found[1]
