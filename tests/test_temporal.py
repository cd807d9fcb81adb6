"""Questions about the past from the temporal projection: ``audit who-can`` (who could do a
level on a resource at a moment, and by which grant) and ``tokens live`` (the tokens usable
during a window), through the command line and HTTP, on SQLite and PostgreSQL, with time
moved by freezegun. Bad input is one line (exit 2, HTTP 400) and appends nothing; the
projection is rebuilt by ``replay`` and compared by ``replay --check``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from api_helpers import ISSUER, Api, InProcess, make_api
from helpers import assert_one_line_error, cli_head, cli_json, cli_run
from tokenledger.client import Auth, Client
from tokenledger.client.remote import REMOTE_CALLER, RemoteLedger

ANN, BOB, DAN = "ann@acme.io", "bob@acme.io", "dan@other.io"
CI = "ci@acme.service.tokenledger"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.isoformat()


@dataclass
class History:
    """acme's admin ann, bob with write on acme/alpha (lowered to read at T0+2h), the
    service account ci with write on acme/alpha; a token each at T0+1h, ci's revoked and
    bob's disabled at T0+3h, bob's enabled again at T0+4h; dan admin of another org."""

    url: str
    tokens: dict[str, str]
    secrets: dict[str, str]


def _run(url: str, *args: str, token: str | None = None) -> Any:
    result = cli_run(url, *args, token=token)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture
def history(database_url: str) -> Iterator[History]:
    with freeze_time(T0) as clock:
        for args in (
            ("db", "upgrade"),
            ("orgs", "create", "acme"),
            ("orgs", "create", "other"),
            ("resources", "create", "acme/alpha"),
            ("resources", "create", "acme/alpha/raw"),
            ("resources", "create", "other/secret-plans"),
            ("users", "create", ANN),
            ("users", "create", BOB),
            ("users", "create", DAN),
            ("orgs", "add-member", "acme", ANN, "--role", "admin"),
            ("orgs", "add-member", "acme", BOB),
            ("orgs", "add-member", "other", DAN, "--role", "admin"),
            ("grants", "set", BOB, "acme/alpha", "write"),
            ("service-accounts", "create", "ci", "--org", "acme", "--resource", "acme/alpha",
             "--level", "write"),
        ):  # fmt: skip
            _run(database_url, *args)
        clock.tick(timedelta(hours=1))
        tokens, secrets = {}, {}
        for name, principal, grant in (
            ("ann", ANN, "acme:admin"),
            ("bob", BOB, "acme/alpha:write"),
            ("ci", CI, "acme/alpha:write"),
            ("dan", DAN, "other:admin"),
        ):
            resource, level = grant.split(":")
            issued = cli_json(
                database_url, "tokens", "create", "--principal", principal,
                "--resource", resource, "--level", level,
            )  # fmt: skip
            tokens[name], secrets[name] = issued["token_id"], issued["secret"]
        clock.tick(timedelta(hours=1))
        _run(database_url, "grants", "set", BOB, "acme/alpha", "read")
        clock.tick(timedelta(hours=1))
        _run(database_url, "tokens", "revoke", tokens["ci"])
        _run(database_url, "tokens", "disable", tokens["bob"])
        clock.tick(timedelta(hours=1))
        _run(database_url, "tokens", "enable", tokens["bob"])
        clock.tick(timedelta(hours=1))
        yield History(url=database_url, tokens=tokens, secrets=secrets)


# -- audit who-can ----------------------------------------------------------------------------


def test_who_can_names_every_principal_and_token_with_its_grant_path(history: History) -> None:
    moment = iso(T0 + timedelta(hours=1, minutes=30))
    then = cli_json(history.url, "audit", "who-can", "acme/alpha/raw", "write", "--at", moment)
    paths = {p["principal"]: p["paths"] for p in then["principals"]}
    assert paths == {
        ANN: [{"grant": "admin:acme", "via": "role:acme/admin"}],
        BOB: [{"grant": "write:acme/alpha", "via": "direct"}],
        CI: [{"grant": "write:acme/alpha", "via": "service account permission"}],
        # The org's admin role itself: its keys act as it.
        "acme:admin": [{"grant": "admin:acme", "via": "role:acme/admin"}],
    }
    usable = {t["token_id"]: t for t in then["tokens"]}
    assert set(usable) == {history.tokens["ann"], history.tokens["bob"], history.tokens["ci"]}
    assert usable[history.tokens["bob"]]["grant"] == "write:acme/alpha"
    assert usable[history.tokens["ann"]]["level"] == "admin"
    assert then["level"] == "write"
    assert then["resource"] == "acme/alpha/raw"

    now = cli_json(history.url, "audit", "who-can", "acme/alpha/raw", "write")
    assert {p["principal"] for p in now["principals"]} == {ANN, CI, "acme:admin"}
    # ci's token was revoked; bob may only read now.
    assert {t["token_id"] for t in now["tokens"]} == {history.tokens["ann"]}
    assert now["as_of_position"] == cli_head(history.url)

    reading = cli_json(history.url, "audit", "who-can", "acme/alpha", "read")
    assert {t["token_id"] for t in reading["tokens"]} == {
        history.tokens["ann"],
        history.tokens["bob"],  # enabled again, its write lowered to read
    }
    disabled = iso(T0 + timedelta(hours=3, minutes=30))
    while_disabled = cli_json(
        history.url, "audit", "who-can", "acme/alpha", "read", "--at", disabled
    )
    assert history.tokens["bob"] not in {t["token_id"] for t in while_disabled["tokens"]}

    plain = cli_run(history.url, "audit", "who-can", "acme/alpha", "write").stdout
    assert f"{CI}  via write:acme/alpha (service account permission)" in plain
    assert "usable tokens: 1" in plain


def test_who_can_is_for_readers_of_the_whole_org(history: History) -> None:
    asked = cli_json(
        history.url, "audit", "who-can", "acme/alpha", "read", token=history.secrets["ann"]
    )
    assert asked["principals"]
    refused = cli_run(
        history.url, "audit", "who-can", "acme/alpha", "read", token=history.secrets["dan"]
    )
    assert_one_line_error(refused, 4, "may not see who can act on acme/alpha")
    # bob reads acme/alpha but not the whole org.
    refused = cli_run(
        history.url, "audit", "who-can", "acme/alpha", "read", token=history.secrets["bob"]
    )
    assert refused.exit_code != 0
    assert "Traceback" not in refused.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["acme/nope", "read"], "unknown resource acme/nope"),
        (["acme/alpha", "root"], "unknown level"),
        (["acme/alpha", "none"], "level none is no permission"),
        (["acme/../x", "read"], "acme/../x"),
        (["acme/alpha", "read", "--at", "2026-02-01T00:00:00Z"], "before the first event"),
        (["acme/alpha", "read", "--at", "2099-01-01T00:00:00Z"], "after now"),
        (["acme/alpha", "read", "--at", "yesterday"], "invalid --at"),
    ],
)
def test_bad_who_can_input_is_one_line_and_appends_nothing(
    history: History, args: list[str], fragment: str
) -> None:
    head = cli_head(history.url)
    assert_one_line_error(cli_run(history.url, "audit", "who-can", *args), 2, fragment)
    assert cli_head(history.url) == head


# -- tokens live ------------------------------------------------------------------------------


def _live(history: History, start: datetime, end: datetime, *extra: str) -> set[str]:
    found = cli_json(history.url, "tokens", "live", "--during", f"{iso(start)}..{iso(end)}", *extra)
    return {t["token_id"] for t in found}


def test_live_gives_the_tokens_usable_at_any_moment_of_the_window(history: History) -> None:
    t = history.tokens
    every = {t["ann"], t["bob"], t["ci"], t["dan"]}
    assert _live(history, T0, T0 + timedelta(minutes=30)) == set()  # none issued yet
    assert _live(history, T0, T0 + timedelta(hours=1)) == every  # issued at its last instant
    # ci's was revoked at T0+3h; bob's disabled from T0+3h to T0+4h.
    after = T0 + timedelta(hours=3, minutes=10)
    assert _live(history, after, T0 + timedelta(hours=3, minutes=50)) == {t["ann"], t["dan"]}
    assert _live(history, after, T0 + timedelta(hours=4)) == {t["ann"], t["bob"], t["dan"]}
    assert _live(history, after, T0 + timedelta(hours=4), "--principal", BOB) == {t["bob"]}
    on_alpha = _live(history, T0, T0 + timedelta(hours=5), "--resource", "acme/alpha")
    assert on_alpha == {t["ann"], t["bob"], t["ci"]}

    listed = cli_json(
        history.url, "tokens", "live", "--during",
        f"{iso(after)}..{iso(T0 + timedelta(hours=4, minutes=30))}", "--principal", BOB,
    )  # fmt: skip
    assert listed[0]["usable_at"].startswith("2026-03-01T14:00:00")


def test_live_on_a_resource_is_for_readers_of_the_whole_org(history: History) -> None:
    window = f"{iso(T0)}..{iso(T0 + timedelta(hours=5))}"
    refused = cli_run(
        history.url, "tokens", "live", "--during", window, "--resource", "acme/alpha",
        token=history.secrets["dan"],
    )  # fmt: skip
    assert_one_line_error(refused, 4, "may not see who can act on acme/alpha")
    everything = cli_run(
        history.url, "tokens", "live", "--during", window, token=history.secrets["ann"]
    )
    assert_one_line_error(everything, 4, "give a principal or a resource")


def test_live_on_a_resource_shows_no_grant_outside_what_its_caller_may_read(
    history: History,
) -> None:
    """A reader of acme sees which tokens could read acme/alpha, but not the resources of
    another org that such a token also holds (here the other org's admin's): those are the
    other org's to show. The principal itself, and an operator, see the whole token."""
    with freeze_time(T0 + timedelta(hours=6)):
        _run(history.url, "orgs", "add-member", "acme", DAN)
        _run(history.url, "grants", "set", DAN, "acme/alpha", "read")
        issued = cli_json(
            history.url, "tokens", "create", "--principal", DAN, "--resource", "acme/alpha",
            "--level", "read", "--resource", "other/secret-plans", "--level", "admin",
        )  # fmt: skip
    with freeze_time(T0 + timedelta(hours=7)):
        window = f"{iso(T0 + timedelta(hours=6))}..{iso(T0 + timedelta(hours=7))}"

        def shown(*args: str, token: str | None) -> list[dict[str, str]]:
            live = cli_json(history.url, "tokens", "live", "--during", window, *args, token=token)
            return next(t["grants"] for t in live if t["token_id"] == issued["token_id"])

        by_acme = shown("--resource", "acme/alpha", token=history.secrets["ann"])
        assert by_acme == [{"resource": "acme/alpha", "level": "read"}]
        whole = [
            {"resource": "acme/alpha", "level": "read"},
            {"resource": "other/secret-plans", "level": "admin"},
        ]
        assert shown("--resource", "acme/alpha", token=None) == whole
        assert shown("--principal", DAN, token=history.secrets["dan"]) == whole


def test_live_and_list_name_a_role_for_its_keys(history: History) -> None:
    """A role's keys act as ``ORG:ROLE``: ``tokens live`` and ``tokens list`` take it as
    they take a user or a service account, by one parsing rule."""
    with freeze_time(T0 + timedelta(hours=6)):
        _run(history.url, "roles", "create", "acme:dev", "--grant", "acme/alpha=read")
        key = cli_json(history.url, "roles", "key", "new", "acme:dev", "--json")["access"]
    with freeze_time(T0 + timedelta(hours=7)):
        _run(history.url, "roles", "key", "revoke", "acme:dev", key)
    with freeze_time(T0 + timedelta(hours=8)):
        while_live = (T0 + timedelta(hours=5, minutes=30), T0 + timedelta(hours=6, minutes=30))
        assert _live(history, *while_live, "--principal", "acme:dev") == {key}
        after = (T0 + timedelta(hours=7, minutes=30), T0 + timedelta(hours=8))
        assert _live(history, *after, "--principal", "acme:dev") == set()
        by_admin = cli_json(
            history.url, "tokens", "live", "--during",
            f"{iso(while_live[0])}..{iso(while_live[1])}", "--principal", "acme:dev",
            token=history.secrets["ann"],
        )  # fmt: skip
        assert [t["token_id"] for t in by_admin] == [key]
        then = cli_json(
            history.url, "tokens", "list", "--principal", "acme:dev", "--at", iso(while_live[1])
        )
        assert [t["token_id"] for t in then] == [key]
        assert cli_json(history.url, "tokens", "list", "--principal", "acme:dev") == []

        head = cli_head(history.url)
        window = f"{iso(while_live[0])}..{iso(while_live[1])}"
        for args, code, fragment in (
            (("--principal", "acme:"), 2, "invalid role name"),
            (("--principal", "Acme:dev"), 2, "invalid org name"),
            (("--principal", "acme:nope"), 3, "no role acme:nope"),
        ):
            result = cli_run(history.url, "tokens", "live", "--during", window, *args)
            assert_one_line_error(result, code, fragment)
            listed = cli_run(history.url, "tokens", "list", *args)
            assert_one_line_error(listed, code, fragment)
        # Seen as the role's keys are: by the org's admins, not by a member.
        refused = cli_run(
            history.url, "tokens", "live", "--during", window, "--principal", "acme:dev",
            token=history.secrets["bob"],
        )  # fmt: skip
        assert_one_line_error(refused, 4, "may not see acme:dev")
        assert cli_head(history.url) == head


@pytest.mark.parametrize(
    ("window", "fragment"),
    [
        ("2026-03-01T12:00:00Z..2026-03-01T11:00:00Z", "empty window"),
        ("2026-03-01T12:00:00Z..2026-03-01T12:00:00Z", "empty window"),
        ("2026-03-01T12:00:00Z", "expected FROM..TO"),
        ("2026-02-01T00:00:00Z..2026-03-01T12:00:00Z", "before the first event"),
        ("2026-03-01T12:00:00Z..2099-01-01T00:00:00Z", "after now"),
        ("2026-03-01T12:00:00Z..soon", "invalid --during end"),
    ],
)
def test_bad_windows_are_one_line_and_append_nothing(
    history: History, window: str, fragment: str
) -> None:
    head = cli_head(history.url)
    result = cli_run(history.url, "tokens", "live", "--during", window, "--principal", BOB)
    assert_one_line_error(result, 2, fragment)
    assert cli_head(history.url) == head


# -- rebuilt like the other projections ---------------------------------------------------------


def test_replay_rebuilds_the_same_intervals(history: History) -> None:
    moment = iso(T0 + timedelta(hours=1, minutes=30))
    before = cli_json(history.url, "audit", "who-can", "acme/alpha", "write", "--at", moment)
    checked = cli_run(history.url, "replay", "--check")
    assert checked.exit_code == 0, checked.output
    _run(history.url, "replay")
    after = cli_json(history.url, "audit", "who-can", "acme/alpha", "write", "--at", moment)
    assert after == before
    assert cli_run(history.url, "replay", "--check").exit_code == 0


def test_who_can_and_live_answer_for_a_resource_deleted_since(history: History) -> None:
    """An incident is often about a resource gone by the time it is looked into: who could
    write it, and which tokens could read it, while it existed."""
    moment = iso(T0 + timedelta(hours=1, minutes=30))
    before = cli_json(history.url, "audit", "who-can", "acme/alpha/raw", "write", "--at", moment)
    with freeze_time(T0 + timedelta(hours=6)):
        _run(history.url, "resources", "delete", "acme/alpha/raw")
    with freeze_time(T0 + timedelta(hours=7)):
        after = cli_json(history.url, "audit", "who-can", "acme/alpha/raw", "write", "--at", moment)
        assert after == before
        assert {p["principal"] for p in after["principals"]} == {ANN, BOB, CI, "acme:admin"}
        window = f"{moment}..{iso(T0 + timedelta(hours=2))}"
        live = cli_json(
            history.url, "tokens", "live", "--during", window, "--resource", "acme/alpha/raw"
        )
        assert {t["principal"] for t in live} == {ANN, BOB, CI}
        # Now, and at a moment or over a window after the deletion, it is unknown.
        head = cli_head(history.url)
        for args in (
            ("audit", "who-can", "acme/alpha/raw", "read"),
            ("audit", "who-can", "acme/alpha/raw", "read", "--at", iso(T0 + timedelta(hours=6))),
            ("tokens", "live", "--during", f"{iso(T0 + timedelta(hours=6))}.."
             f"{iso(T0 + timedelta(hours=7))}", "--resource", "acme/alpha/raw"),
        ):  # fmt: skip
            assert_one_line_error(cli_run(history.url, *args), 2, "unknown resource")
        assert cli_head(history.url) == head


# -- HTTP --------------------------------------------------------------------------------------


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def test_who_can_and_live_over_http(api: Api) -> None:
    answer = api.client.get(
        "/v2/audit/who-can", params={"resource": "acme/alpha", "level": "write"}, headers=api.admin
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {p["principal"] for p in body["principals"]} >= {"ann@acme.io", "bob@acme.io", CI}
    assert len(body["tokens"]) == 3  # ann's, bob's and ci's
    refused = api.client.get(
        "/v2/audit/who-can",
        params={"resource": "acme/alpha", "level": "write"},
        headers=api.bearer(api.carol),
    )
    assert refused.status_code == 403

    first = next(iter(api.ledger.store.read_all(until_position=1))).recorded_at
    window = {"from": first.isoformat(), "to": api.ledger.now().isoformat()}
    live = api.client.get("/v2/tokens/live", params={**window, "principal": CI}, headers=api.admin)
    assert live.status_code == 200, live.text
    assert [t["token"]["principal"] for t in live.json()] == [CI]
    on_alpha = api.client.get(
        "/v2/tokens/live", params={**window, "resource": "acme/alpha"}, headers=api.admin
    )
    assert on_alpha.status_code == 200, on_alpha.text
    assert len(on_alpha.json()) == 3  # ann's, bob's and ci's


def test_live_and_list_name_a_role_over_http(api: Api) -> None:
    from tokenledger.domain import commands as c
    from tokenledger.domain.model import Actor

    operator = Actor.operator("root")
    api.ledger.execute(c.CreateRole(org="acme", role="dev", grants=[]), operator)
    issued = api.ledger.execute(c.IssueRoleKey(org="acme", role="dev"), operator).issued
    assert issued is not None
    first = next(iter(api.ledger.store.read_all(until_position=1))).recorded_at
    window = {"from": first.isoformat(), "to": api.ledger.now().isoformat()}
    live = api.client.get(
        "/v2/tokens/live", params={**window, "principal": "acme:dev"}, headers=api.admin
    )
    assert live.status_code == 200, live.text
    assert [t["token"]["token_id"] for t in live.json()] == [issued.token_id]
    then = api.client.get(
        "/v2/orgs/acme/roles/dev/keys", params={"at": window["to"]}, headers=api.admin
    )
    assert then.status_code == 200, then.text
    assert [t["token_id"] for t in then.json()] == [issued.token_id]
    head = api.ledger.store.head().position
    bad = api.client.get(
        "/v2/tokens/live", params={**window, "principal": "acme:"}, headers=api.admin
    )
    assert bad.status_code == 400
    assert "invalid role name" in bad.json()["error_description"]
    # The command line against a server asks the same calls.
    remote = RemoteLedger(Client(ISSUER, Auth(token=api.ann), transport=InProcess(api.client)))
    moment = datetime.fromisoformat(window["to"])
    for at in (None, moment):
        keys = remote.tokens_of(REMOTE_CALLER, "acme:dev", at=at)
        assert [k.token_id for k in keys] == [issued.token_id]
    live_then = remote.live_tokens(REMOTE_CALLER, first, moment, principal="acme:dev")
    assert [t.token.token_id for t in live_then] == [issued.token_id]
    early = api.client.get(
        "/v2/orgs/acme/roles/dev/keys", params={"at": "2000-01-01T00:00:00Z"}, headers=api.admin
    )
    assert early.status_code == 400
    assert "before the first event" in early.json()["error_description"]
    assert api.ledger.store.head().position == head


@pytest.mark.parametrize(
    ("path", "params", "fragment"),
    [
        ("/v2/audit/who-can", {"resource": "acme/zzz", "level": "read"}, "unknown resource"),
        ("/v2/audit/who-can", {"resource": "acme/alpha", "level": "root"}, "unknown level"),
        (
            "/v2/audit/who-can",
            {"resource": "acme/alpha", "level": "read", "at": "2000-01-01T00:00:00Z"},
            "before the first event",
        ),
        (
            "/v2/tokens/live",
            {"from": "2099-01-02T00:00:00Z", "to": "2099-01-01T00:00:00Z", "principal": CI},
            "empty window",
        ),
        (
            "/v2/tokens/live",
            {"from": "2000-01-01T00:00:00Z", "to": "2099-01-01T00:00:00Z", "principal": CI},
            "before the first event",
        ),
    ],
)
def test_bad_input_over_http_is_a_400(
    api: Api, path: str, params: dict[str, str], fragment: str
) -> None:
    head = api.ledger.store.head().position
    response = api.client.get(path, params=params, headers=api.admin)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error_description"]
    assert api.ledger.store.head().position == head


def test_upgrading_an_existing_ledger_folds_its_log_into_the_intervals(history: History) -> None:
    """A ledger from before the temporal projection: its revision downgraded (the intervals
    dropped), then upgraded again, answers for the past at once, as a rebuild would."""
    from alembic import command

    from tokenledger.store import open_event_store
    from tokenledger.store.migrate import _config, upgrade

    moment = iso(T0 + timedelta(hours=1, minutes=30))
    before = cli_json(history.url, "audit", "who-can", "acme/alpha", "write", "--at", moment)
    store = open_event_store(history.url)
    with store.engine.begin() as connection:
        command.downgrade(_config(connection), "0015")
    upgrade(store.engine)
    store.engine.dispose()
    after = cli_json(history.url, "audit", "who-can", "acme/alpha", "write", "--at", moment)
    assert after == before
    checked = cli_run(history.url, "replay", "--check")
    assert checked.exit_code == 0, checked.output


def test_who_can_and_live_through_the_command_line_against_a_server(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--server``: the command line asks a ``tokenledger serve`` (on the real clock, in a
    process of its own) and prints the same documents."""
    from click.testing import CliRunner

    from test_api_serve import Server
    from tokenledger.cli import cli
    from tokenledger.domain import commands as c
    from tokenledger.domain.model import Actor
    from tokenledger.domain.permissions import Level
    from tokenledger.service import Ledger
    from tokenledger.store import open_event_store

    for name in ("TOKENLEDGER_TOKEN", "TOKENLEDGER_SERVER", "TOKENLEDGER_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOKENLEDGER_CREDENTIALS_PATH", str(tmp_path / "credentials.json"))
    operator = Actor.operator("root")
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    for command in (
        c.CreateOrg(org="acme"),
        c.CreateResource(path="acme/alpha"),
        c.CreateUser(email=ANN),
        c.AddMember(org="acme", email=ANN, role="admin"),
        c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level=Level.WRITE),
    ):
        ledger.execute(command, operator)
    grants = [{"resource": "acme", "level": "admin"}]
    ann = ledger.execute(c.IssueToken(principal=ANN, grants=grants), operator).secret
    assert ann is not None
    ci = ledger.execute(c.IssueToken(principal=CI), operator).issued
    assert ci is not None
    first = next(iter(ledger.store.read_all(until_position=1))).recorded_at
    head = ledger.store.head().position
    ledger.close()
    server = Server(database_url, tmp_path / "keys.json")
    try:

        def remote(*args: str) -> Any:
            result = CliRunner().invoke(
                cli, ["--server", server.base, *args, "--json"], env={"TOKENLEDGER_TOKEN": ann}
            )
            assert result.exit_code == 0, result.output
            return json.loads(result.stdout)

        answer = remote("audit", "who-can", "acme/alpha", "write")
        assert {p["principal"] for p in answer["principals"]} == {ANN, CI, "acme:admin"}
        assert answer["as_of_position"] == head
        window = f"{first.isoformat()}..{datetime.now(UTC).isoformat()}"
        live = remote("tokens", "live", "--during", window, "--principal", CI)
        assert [t["token_id"] for t in live] == [ci.token_id]
    finally:
        server.stop()


def test_upgrading_moves_each_token_life_onto_its_row(database_url: str) -> None:
    """From the revision that kept token lives as a table of intervals: the upgrade fills
    each token's issue and first revocation positions and its expiry as issued from the log,
    so a rotated token (whose expiry changed since) and a revoked one answer for the past
    as before, and a rebuild writes the same rows."""
    from alembic import command

    from tokenledger.domain import commands as c
    from tokenledger.domain.model import Actor, service_account_id
    from tokenledger.domain.permissions import Level
    from tokenledger.service import Ledger
    from tokenledger.store import open_event_store
    from tokenledger.store.migrate import _config, upgrade

    operator = Actor.operator("root")
    account = service_account_id("ci", "acme")
    with freeze_time(T0) as clock:
        ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
        for setup in (
            c.CreateOrg(org="acme"),
            c.CreateResource(path="acme/alpha"),
            c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level=Level.READ),
        ):
            ledger.execute(setup, operator)
        issued = [
            ledger.execute(c.IssueToken(principal=account, expires_in=timedelta(days=1)), operator)
            for _ in range(2)
        ]
        rotated, revoked = (result.issued.token_id for result in issued if result.issued)
        clock.tick(timedelta(hours=1))
        ledger.execute(c.RotateToken(token_id=rotated, overlap=timedelta(minutes=5)), operator)
        clock.tick(timedelta(hours=1))
        ledger.execute(c.RevokeToken(token_id=revoked), operator)
        ledger.close()
    moments = [iso(T0 + timedelta(minutes=m)) for m in (30, 62, 90, 150)]

    def answers() -> list[Any]:
        return [
            cli_json(
                database_url, "tokens", "list", "--principal", account, "--all", "--at", moment
            )
            for moment in moments
        ]

    before = answers()
    store = open_event_store(database_url)
    with store.engine.begin() as connection:
        command.downgrade(_config(connection), "0017")
    with store.engine.connect() as connection:
        lives = connection.exec_driver_sql(
            "SELECT token_id, to_position IS NOT NULL FROM token_lives ORDER BY token_id"
        ).all()
    ended = {token_id: bool(closed) for token_id, closed in lives}
    assert (ended[rotated], ended[revoked]) == (False, True)
    upgrade(store.engine)
    store.engine.dispose()
    assert answers() == before
    assert before[0] != before[-1]  # the answers do change over the moments asked
    checked = cli_run(database_url, "replay", "--check")
    assert checked.exit_code == 0, checked.output
