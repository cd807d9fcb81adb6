"""Revoking tokens by filter (``tokens revoke --where``, ``POST /v2/tokens/revoke``) and the
tokens about to expire (``tokens expiring``, ``GET /v2/tokens/expiring``), on SQLite and
PostgreSQL, through the command line, HTTP and a real server; time moved with freezegun."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory

from helpers import assert_one_line_error, cli_run
from tokenledger.api import ApiSettings, create_asgi_app
from tokenledger.cli import cli
from tokenledger.client import Auth, Client
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.errors import NotFound
from tokenledger.projections.audit_queries import AuditQuery
from tokenledger.service import Ledger
from tokenledger.service.keys import KeyStore
from tokenledger.store import open_event_store

OPERATOR = Actor.operator("root")
CI = "ci@acme.service.tokenledger"
ETL = "etl@acme.service.tokenledger"
JOB = "job@other.service.tokenledger"
ANN = "ann@acme.io"
BOB = "bob@acme.io"
#: When the tokens are issued; the tests run a day later (``LATER``) unless they move on.
ISSUED = datetime(2026, 3, 1, tzinfo=UTC)
LATER = datetime(2026, 3, 2, tzinfo=UTC)
#: Between the first issues and the one issued ``LATER``.
NOON = "2026-03-01T12:00:00Z"


@dataclass
class World:
    """acme (ann admin, bob member with write on acme/alpha; accounts ci on acme/alpha, etl on
    acme/beta) and other (carol admin, account job); tokens by name (``ids``), their secrets
    for the people (``secrets``)."""

    url: str
    ledger: Ledger
    clock: FrozenDateTimeFactory
    ids: dict[str, str]
    secrets: dict[str, str]

    def names(self, tokens: list[dict[str, Any]]) -> set[str]:
        by_id = {token_id: name for name, token_id in self.ids.items()}
        return {by_id[token["token_id"]] for token in tokens}

    def head(self) -> int:
        return self.ledger.store.head().position


def _issue(
    ledger: Ledger, principal: str, name: str, grant: tuple[str, str], days: int, **extra: Any
) -> tuple[str, str]:
    command = c.IssueToken(
        principal=principal,
        name=name,
        grants=[{"resource": grant[0], "level": grant[1]}],
        expires_in=timedelta(days=days),
        **extra,
    )
    result = ledger.execute(command, OPERATOR)
    assert result.issued is not None
    assert result.secret is not None
    return result.issued.token_id, result.secret


def build_world(url: str, clock: FrozenDateTimeFactory) -> World:
    ledger = Ledger(open_event_store(url, auto_upgrade=True))
    for command in (
        c.CreateOrg(org="acme"),
        c.CreateOrg(org="other"),
        c.CreateResource(path="acme/alpha"),
        c.CreateResource(path="acme/alpha/raw"),
        c.CreateResource(path="acme/beta"),
        c.CreateResource(path="other/x"),
        c.CreateUser(email=ANN),
        c.CreateUser(email=BOB),
        c.CreateUser(email="carol@other.io"),
        c.AddMember(org="acme", email=ANN, role="admin"),
        c.AddMember(org="acme", email=BOB),
        c.AddMember(org="other", email="carol@other.io", role="admin"),
        c.SetGrant(principal=BOB, resource="acme/alpha", level=Level.WRITE),
        c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level=Level.WRITE),
        c.CreateServiceAccount(name="etl", org="acme", resource="acme/beta", level=Level.WRITE),
        c.CreateServiceAccount(name="job", org="other", resource="other/x", level=Level.WRITE),
    ):
        ledger.execute(command, OPERATOR)
    ids: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for principal, name, grant, days in (
        (CI, "deploy-1", ("acme/alpha", "write"), 10),
        (CI, "deploy-2", ("acme/alpha/raw", "read"), 20),
        (CI, "build", ("acme/alpha", "read"), 5),
        (CI, "deploy-old", ("acme/alpha", "read"), 20),
        (ETL, "deploy-etl", ("acme/beta", "write"), 12),
        (JOB, "deploy-other", ("other/x", "write"), 3),
        (BOB, "bob-laptop", ("acme/alpha", "write"), 8),
        (ANN, "ann-admin", ("acme", "admin"), 6),
        ("carol@other.io", "carol-admin", ("other", "admin"), 30),
    ):
        ids[name], secrets[name] = _issue(ledger, principal, name, grant, days)
    ids["child"], _ = _issue(
        ledger, CI, "child", ("acme/alpha/raw", "read"), 2, parent_id=ids["deploy-1"]
    )
    ledger.execute(c.RevokeToken(token_id=ids["deploy-old"]), OPERATOR)
    clock.move_to(LATER)
    ids["deploy-3"], _ = _issue(ledger, CI, "deploy-3", ("acme/alpha", "read"), 30)
    return World(url=url, ledger=ledger, clock=clock, ids=ids, secrets=secrets)


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with freeze_time(ISSUED) as clock:
        built = build_world(database_url, clock)
        yield built
        built.ledger.close()


def cli_json(world: World, *args: str, token: str | None = None) -> Any:
    result = cli_run(world.url, *args, "--json", token=token)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def where(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("--where", pair)]


def refused(world: World, code: int, args: list[str], *fragments: str, token: str | None = None):
    before = world.head()
    result = cli_run(world.url, *args, token=token)
    assert_one_line_error(result, code, *fragments)
    assert world.head() == before


# -- the preview ---------------------------------------------------------------------------

CRITERIA = [
    pytest.param([f"principal={CI}"], {"deploy-1", "deploy-2", "build", "child", "deploy-3"}),
    pytest.param(["org=other"], {"deploy-other", "carol-admin"}, id="org"),
    pytest.param(["resource=acme/alpha/raw"], {"deploy-2", "child"}, id="resource"),
    pytest.param(
        [f"issued-before={NOON}", f"principal={CI}"],
        {"deploy-1", "deploy-2", "build", "child"},
        id="issued-before",
    ),
    pytest.param(
        ["name=deploy-*"],
        {"deploy-1", "deploy-2", "deploy-etl", "deploy-other", "deploy-3"},
        id="name",
    ),
    pytest.param(["name=deploy-?", "org=acme"], {"deploy-1", "deploy-2", "deploy-3"}, id="all"),
]


@pytest.mark.parametrize(("pairs", "expected"), CRITERIA)
def test_the_preview_lists_exactly_the_live_matches_and_appends_nothing(
    world: World, pairs: list[str], expected: set[str]
) -> None:
    before = world.head()
    preview = cli_json(world, "tokens", "revoke", *where(*pairs))
    assert preview["dry_run"] is True
    assert world.names(preview["tokens"]) == expected
    assert preview["count"] == len(expected)
    assert all(token["status"] == "active" for token in preview["tokens"])
    assert world.head() == before
    text = cli_run(world.url, "tokens", "revoke", *where(*pairs))
    assert text.exit_code == 0, text.output
    assert text.stdout.startswith(f"{len(expected)} token(s) match; nothing was revoked")
    assert all(world.ids[name] in text.stdout for name in expected)


def test_yes_revokes_them_under_one_correlation_id_one_event_each_with_their_children(
    world: World,
) -> None:
    pairs = where("name=deploy-*", "org=acme", f"issued-before={NOON}")
    done = cli_json(world, "tokens", "revoke", *pairs, "--yes", "--reason", "rotation")
    roots = {"deploy-1", "deploy-2", "deploy-etl"}
    assert set(done["revoked"]) == {world.ids[name] for name in {*roots, "child"}}
    entries = cli_json(world, "audit", "--correlation-id", done["correlation_id"])
    assert len(entries) == 4
    assert {entry["event_type"] for entry in entries} == {"TokenRevoked"}
    by_token = {entry["data"]["token_id"]: entry["data"] for entry in entries}
    for name in roots:
        assert (by_token[world.ids[name]]["reason"], by_token[world.ids[name]]["detail"]) == (
            "requested",
            "rotation",
        )
    assert by_token[world.ids["child"]]["reason"] == "parent_revoked"
    # What was not selected lives on: the preview now finds only the later deploy token.
    left = cli_json(world, "tokens", "revoke", *where("name=deploy-*", "org=acme"))
    assert world.names(left["tokens"]) == {"deploy-3"}
    status = cli_json(world, "tokens", "get", world.ids["build"])["status"]
    assert status == "active"


def test_a_match_the_actor_may_not_revoke_refuses_everything(world: World) -> None:
    ann = world.secrets["ann-admin"]
    for extra in ([], ["--yes"]):
        refused(
            world,
            4,
            ["tokens", "revoke", *where("name=deploy-*"), *extra],
            "may not revoke a matching token it may not see",
            "nothing was revoked",
            token=ann,
        )
    # Narrowed to acme, whose accounts ann administers: ci's and etl's tokens go.
    done = cli_json(
        world, "tokens", "revoke", *where("name=deploy-*", "org=acme"), "--yes", token=ann
    )
    assert len(done["revoked"]) == 5  # deploy-1 (and its child), deploy-2, deploy-etl, deploy-3
    # Bob may see his own token but no account's: his filter over ci is refused whole.
    refused(
        world,
        4,
        ["tokens", "revoke", *where("resource=acme/alpha"), "--yes"],
        "nothing was revoked",
        token=world.secrets["bob-laptop"],
    )


def test_matching_nothing_is_one_line_and_appends_nothing(world: World) -> None:
    for extra in ([], ["--yes"]):
        refused(
            world,
            3,
            ["tokens", "revoke", *where("name=nothing-*"), *extra],
            "no live token matches name=nothing-*",
        )
    # A revoked token matches no longer.
    refused(world, 3, ["tokens", "revoke", *where("name=deploy-old")], "no live token matches")


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--yes"], 2, "--yes goes with --where"),
        (["--where", "colour=red"], 2, "KEY=VALUE"),
        (["--where", "name"], 2, "KEY=VALUE"),
        (["--where", "name=a", "--where", "name=b"], 2, "once"),
        (["tok_AAAAAAAAAAAAAAAA", "--where", "name=a"], 2, "--where KEY=VALUE"),
        (["--where", "issued-before=yesterday"], 2, "invalid issued-before"),
        (["--where", "issued-before=10000-01-01"], 2, "issued-before"),
        (["--where", "org=Not An Org"], 2, "org"),
        (["--where", "resource=/nope"], 2, "resource"),
    ],
)
def test_bad_filters_are_refused_in_one_line(
    world: World, args: list[str], code: int, fragment: str
) -> None:
    before = world.head()
    result = cli_run(world.url, "tokens", "revoke", *args)
    assert result.exit_code == code, result.output
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert world.head() == before


# -- expiring ------------------------------------------------------------------------------


def expiring(world: World, *args: str, token: str | None = None) -> list[str]:
    """The names ``tokens expiring`` lists, in its order."""
    by_id = {token_id: name for name, token_id in world.ids.items()}
    found = cli_json(world, "tokens", "expiring", *args, token=token)
    return [by_id[token["token_id"]] for token in found]


def test_expiring_lists_live_tokens_within_the_window_soonest_first(world: World) -> None:
    # A day after the issues: child ends on 3-3, deploy-other 3-4, build 3-6, ann-admin 3-7,
    # bob-laptop 3-9, deploy-1 3-11, deploy-etl 3-13.
    assert expiring(world, "--within", "3d") == ["child", "deploy-other"]
    assert expiring(world, "--within", "2d") == ["child", "deploy-other"]  # ends at 3-4 itself
    assert expiring(world, "--within", "10d") == [
        "child",
        "deploy-other",
        "build",
        "ann-admin",
        "bob-laptop",
        "deploy-1",
    ]
    assert expiring(world, "--within", "10d", "--org", "acme") == [
        "child",
        "build",
        "ann-admin",
        "bob-laptop",
        "deploy-1",
    ]
    # The revoked deploy-old (20 days) is never listed.
    assert "deploy-old" not in expiring(world, "--within", "100d")
    world.clock.move_to(datetime(2026, 3, 5, tzinfo=UTC))
    assert expiring(world, "--within", "2d") == ["build", "ann-admin"]
    text = cli_run(world.url, "tokens", "expiring", "--within", "1h")
    assert (text.exit_code, text.stdout) == (0, "no live token expires within 1h\n")


def test_expiring_shows_only_what_the_actor_may_see(world: World) -> None:
    ann = world.secrets["ann-admin"]
    # ann administers ci's project: ci's tokens and her own, never bob's or other's.
    assert expiring(world, "--within", "10d", token=ann) == ["child", "build", "ann-admin",
                                                            "deploy-1"]  # fmt: skip
    bob = world.secrets["bob-laptop"]
    assert expiring(world, "--within", "10d", token=bob) == ["bob-laptop"]


@pytest.mark.parametrize(
    ("within", "fragment"),
    [
        ("0d", "must be longer than zero"),
        ("-3d", "invalid duration"),
        ("soon", "invalid duration"),
        ("101y", "at most 100 years"),
    ],
)
def test_bad_windows_are_refused_in_one_line(world: World, within: str, fragment: str) -> None:
    result = cli_run(world.url, "tokens", "expiring", "--within", within)
    assert_one_line_error(result, 2, fragment)


def test_a_window_past_the_ledgers_last_time_is_refused(world: World) -> None:
    world.clock.move_to(datetime(9999, 6, 1, tzinfo=UTC))
    result = cli_run(world.url, "tokens", "expiring", "--within", "1y")
    assert_one_line_error(result, 2, "invalid within: too long")


# -- HTTP ----------------------------------------------------------------------------------


@pytest.fixture
def api(world: World, tmp_path: Path) -> Iterator[TestClient]:
    keys = KeyStore(tmp_path / "keys.json")
    keys.rotate(datetime.now(UTC))
    app = create_asgi_app(world.ledger, ApiSettings(issuer="https://ledger.test", keys=keys))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_http_previews_and_revokes_by_filter(world: World, api: TestClient) -> None:
    ann = bearer(world.secrets["ann-admin"])
    body: dict[str, Any] = {"where": {"name": "deploy-*", "org": "acme"}, "dry_run": True}
    before = world.head()
    preview = api.post("/v2/tokens/revoke", json=body, headers=ann)
    assert preview.status_code == 200, preview.text
    assert world.names(preview.json()["tokens"]) == {"deploy-1", "deploy-2", "deploy-etl",
                                                      "deploy-3"}  # fmt: skip
    assert world.head() == before
    refused_whole = api.post("/v2/tokens/revoke", json={"where": {"name": "deploy-*"}}, headers=ann)
    assert refused_whole.status_code == 403, refused_whole.text
    assert "nothing was revoked" in refused_whole.json()["error_description"]
    for bad, status in (
        ({"where": {}}, 400),
        ({"where": {"colour": "red"}}, 400),
        ({"where": {"issued_before": "someday"}}, 400),
        ({"where": {"name": 7}}, 400),
        ({"where": {"name": "nothing-*"}}, 404),
    ):
        answer = api.post("/v2/tokens/revoke", json=bad, headers=ann)
        assert answer.status_code == status, (bad, answer.text)
    assert world.head() == before
    body = {"where": {"name": "deploy-*", "org": "acme", "issued_before": NOON}, "reason": "r"}
    done = api.post("/v2/tokens/revoke", json=body, headers=ann)
    assert done.status_code == 200, done.text
    revoked = set(done.json()["revoked"])
    assert revoked == {world.ids[n] for n in ("deploy-1", "deploy-2", "deploy-etl", "child")}
    # One command: its four events, and nothing else, under its correlation id.
    events = done.json()["events"]
    assert [event["event_type"] for event in events] == ["TokenRevoked"] * 4
    logged = world.ledger.audit_search(
        OPERATOR, AuditQuery(correlation_id=done.json()["correlation_id"])
    )
    assert sorted(entry.record.position for entry in logged) == [
        event["position"] for event in events
    ]


def test_http_expiring(world: World, api: TestClient) -> None:
    ann = bearer(world.secrets["ann-admin"])
    found = api.get("/v2/tokens/expiring", params={"within": "10d"}, headers=ann)
    assert found.status_code == 200, found.text
    by_id = {token_id: name for name, token_id in world.ids.items()}
    names = [by_id[token["token_id"]] for token in found.json()]
    assert names == ["child", "build", "ann-admin", "deploy-1"]
    operator_view = api.get(
        "/v2/tokens/expiring",
        params={"within": "3d", "org": "other"},
        headers=bearer(world.secrets["carol-admin"]),
    )
    assert [by_id[t["token_id"]] for t in operator_view.json()] == ["deploy-other"]
    for within in ("0d", "x", "200y"):
        bad = api.get("/v2/tokens/expiring", params={"within": within}, headers=ann)
        assert bad.status_code == 400, bad.text


# -- against a server: the Python client and the command line's --server ---------------------


def test_the_client_and_the_command_line_against_a_server(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_api_serve import Server

    for name in ("TOKENLEDGER_TOKEN", "TOKENLEDGER_SERVER", "TOKENLEDGER_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOKENLEDGER_CREDENTIALS_PATH", str(tmp_path / "credentials.json"))
    # On the real clock: the server runs in a process of its own.
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    for command in (
        c.CreateOrg(org="acme"),
        c.CreateResource(path="acme/alpha"),
        c.CreateUser(email=ANN),
        c.AddMember(org="acme", email=ANN, role="admin"),
        c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level=Level.WRITE),
    ):
        ledger.execute(command, OPERATOR)
    ann_id, ann = _issue(ledger, ANN, "ann-admin", ("acme", "admin"), 30)
    first, _ = _issue(ledger, CI, "deploy-1", ("acme/alpha", "read"), 1)
    second, _ = _issue(ledger, CI, "deploy-2", ("acme/alpha", "read"), 2)
    _issue(ledger, CI, "build", ("acme/alpha", "read"), 3)
    ledger.close()
    server = Server(database_url, tmp_path / "keys.json")
    client = Client(server.base, Auth(token=ann))
    try:
        preview = client.preview_revocation({"principal": CI, "name": "deploy-*"})
        # By token id: two ids minted within one tick sort by their random part.
        assert [t.token_id for t in preview] == sorted([first, second])
        with pytest.raises(NotFound):
            client.preview_revocation({"name": "nothing-*"})
        assert [t.token_id for t in client.expiring_tokens(timedelta(days=2))] == [first, second]
        assert client.expiring_tokens("36h")[0].token_id == first

        def remote(*args: str) -> Any:
            result = CliRunner().invoke(
                cli, ["--server", server.base, *args, "--json"], env={"TOKENLEDGER_TOKEN": ann}
            )
            assert result.exit_code == 0, result.output
            return json.loads(result.stdout)

        expiring_ids = [t["token_id"] for t in remote("tokens", "expiring", "--within", "1d")]
        assert expiring_ids == [first]
        assert remote("tokens", "revoke", *where("name=deploy-*"))["count"] == 2
        done = remote("tokens", "revoke", *where("name=deploy-*"), "--yes")
        assert done["revoked"] == sorted([first, second])
        assert client.preview_revocation({"principal": CI})[0].name == "build"
        assert [t.token_id for t in client.expiring_tokens("100d")][-1] == ann_id
    finally:
        client.close()
        server.stop()


def test_no_criterion_takes_a_secret(world: World) -> None:
    secret = world.secrets["bob-laptop"]
    for pair in (f"name={secret}", f"name=x-{secret}", f"principal={secret}"):
        result = cli_run(world.url, "tokens", "revoke", "--where", pair)
        assert_one_line_error(result, 2)
        assert secret[4:] not in result.stderr
