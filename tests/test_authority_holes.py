"""Holes a hostile review found where authorisation rules were copied, each closed by the one
rule in ``domain/authority.py``; through the CLI (``TOKENLEDGER_TOKEN``) and HTTP (Bearer), on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from helpers import assert_one_line_error, cli_json, cli_run
from tokenledger.api import create_app
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor, ActorKind
from tokenledger.domain.permissions import Level
from tokenledger.errors import PermissionDenied
from tokenledger.service import Ledger
from tokenledger.store import open_event_store

OPERATOR = Actor.operator("root")
ALICE = "alice@acme.io"  # admin of acme
AUDREY = "audrey@acme.io"  # auditor of acme
BOB = "bob@acme.io"  # member of acme, write on acme/alpha
OLGA = "olga@other.io"  # admin of other
CI = "ci@acme.service.tokenledger"  # admin on acme/alpha
ETL = "etl@acme.service.tokenledger"  # write on acme/alpha
SPY = "spy@other.service.tokenledger"  # admin on other/x


@dataclass
class World:
    url: str
    ledger: Ledger
    client: TestClient
    secrets: dict[str, str]
    ids: dict[str, str]

    def head(self) -> int:
        return self.ledger.store.head().position

    def bearer(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[name]}"}

    def issue(self, name: str, command: c.IssueToken, actor: Actor = OPERATOR) -> None:
        result = self.ledger.execute(command, actor)
        assert result.secret is not None
        assert result.issued is not None
        self.secrets[name], self.ids[name] = result.secret, result.issued.token_id


def grants(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"resource": r, "level": lvl} for r, lvl in pairs]


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    for command in (
        c.CreateOrg(org="acme"),
        c.CreateOrg(org="other"),
        c.CreateResource(path="acme/alpha"),
        c.CreateResource(path="acme/alpha/raw"),
        c.CreateResource(path="acme/beta"),
        c.CreateResource(path="other/x"),
        c.CreateUser(email=ALICE),
        c.AddMember(org="acme", email=ALICE, role="admin"),
        c.CreateUser(email=AUDREY),
        c.AddMember(org="acme", email=AUDREY, role="auditor"),
        c.CreateUser(email=BOB),
        c.AddMember(org="acme", email=BOB),
        c.SetGrant(principal=BOB, resource="acme/alpha", level=Level.WRITE),
        c.CreateUser(email=OLGA),
        c.AddMember(org="other", email=OLGA, role="admin"),
        c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level=Level.ADMIN),
        c.CreateServiceAccount(name="etl", org="acme", resource="acme/alpha", level=Level.WRITE),
        c.CreateServiceAccount(name="spy", org="other", resource="other/x", level=Level.ADMIN),
    ):
        ledger.execute(command, OPERATOR)
    world = World(database_url, ledger, None, {}, {})  # type: ignore[arg-type]
    admin = grants(("acme", "admin"))
    world.issue("alice", c.build(c.IssueToken, principal=ALICE, grants=admin))
    world.issue("audrey", c.build(c.IssueToken, principal=AUDREY, grants=grants(("acme", "read"))))
    world.issue("bob", c.build(c.IssueToken, principal=BOB, grants=grants(("acme/alpha", "write"))))
    world.issue("olga", c.build(c.IssueToken, principal=OLGA, grants=grants(("other", "admin"))))
    world.issue("ci", c.IssueToken(principal=CI))
    world.issue("etl", c.IssueToken(principal=ETL))
    world.issue("spy", c.IssueToken(principal=SPY))
    with TestClient(create_app(ledger), raise_server_exceptions=False) as client:
        world.client = client
        yield world
    ledger.close()


# -- a stolen token mints no successor that survives it ------------------------------------


def test_a_token_derives_only_from_itself_or_its_descendants(world: World) -> None:
    """Acting through one token, naming a sibling as parent is refused (CLI and HTTP); deriving
    from the acting token's own descendants is allowed, and all of it dies with it."""
    scope = grants(("acme/alpha", "read"))
    # A sibling that never expires: only the derivation rule stands between it and a
    # ten-year successor that the stolen token could mint.
    world.issue("bob-sibling", c.build(c.IssueToken, principal=BOB, grants=scope, no_expiry=True))
    sibling = world.ids["bob-sibling"]
    before = world.head()
    result = cli_run(
        world.url, "tokens", "create", "--parent", sibling, "--expires-in", "3650d",
        token=world.secrets["bob"],
    )  # fmt: skip
    assert_one_line_error(result, 4, "derive only from the token it acts through")
    response = world.client.post(
        f"/v2/users/{BOB}/tokens",
        json={"parent_id": sibling, "expires_in": "36500d"},
        headers=world.bearer("bob"),
    )
    assert response.status_code == 403, response.text
    assert world.head() == before

    # From its own child: allowed, and revoked with the acting token.
    child = cli_json(world.url, "tokens", "create", "--principal", BOB, "--resource", "acme/alpha",
                     "--level", "read", token=world.secrets["bob"])  # fmt: skip
    grandchild = cli_json(world.url, "tokens", "create", "--parent", child["token_id"],
                          token=world.secrets["bob"])  # fmt: skip
    revoked = cli_json(world.url, "tokens", "revoke", world.ids["bob"])
    assert {child["token_id"], grandchild["token_id"]} <= set(revoked["revoked"])
    assert world.ledger.verify(grandchild["secret"]).reason == "revoked"
    assert world.ledger.verify(world.secrets["bob-sibling"]).active  # untouched


# -- a service account manages no grants and revokes no other principal's token -------------


def test_a_service_account_deletes_no_resource_whatever_the_route(world: World) -> None:
    before = world.head()
    result = cli_run(world.url, "resources", "delete", "acme/alpha/raw", token=world.secrets["ci"])
    assert_one_line_error(result, 4, "a service account may not delete resources")
    response = world.client.delete("/v2/resources/acme/alpha/raw", headers=world.bearer("ci"))
    assert response.status_code == 403, response.text
    assert world.head() == before
    assert world.ledger.verify(world.secrets["etl"]).active
    assert world.ledger.verify(world.secrets["bob"]).active


# -- the raw log and the signing keys are the operator's --------------------------------------


@pytest.mark.parametrize("who", ["spy", "alice", "audrey"])
def test_events_and_keys_refuse_a_token(world: World, who: str, tmp_path: object) -> None:
    keys_file = f"{tmp_path}/keys.json"
    for args in (
        ("events",),
        ("relay", "--to", "nats://127.0.0.1:4222", "--once"),
        ("keys", "rotate", "--keys-file", keys_file),
        ("keys", "list", "--keys-file", keys_file),
    ):
        before = world.head()
        result = cli_run(world.url, *args, token=world.secrets[who])
        assert_one_line_error(result, 4, "only an operator may")
        assert world.head() == before
    assert not (tmp_path / "keys.json").exists()  # type: ignore[operator]


# -- org admins and auditors see their org's revocations ----------------------------------------


@pytest.mark.parametrize("who", ["alice", "audrey"])
def test_an_org_admin_and_auditor_see_every_cascade_of_their_org(world: World, who: str) -> None:
    moved = world.ledger.execute(
        c.SetServiceAccountPermission(account_id=CI, resource="acme/beta", level=Level.ADMIN),
        OPERATOR,
    )
    assert moved.revoked == [world.ids["ci"]]
    world.ledger.execute(c.RemoveMember(org="acme", email=BOB), OPERATOR)  # revokes bob's
    token = world.secrets[who]
    by_subject = cli_json(world.url, "audit", "--subject", "acme",
                          "--type", "TokenRevoked", token=token)  # fmt: skip
    assert {row["data"]["token_id"] for row in by_subject} == {world.ids["ci"], world.ids["bob"]}
    by_type = cli_json(world.url, "audit", "--type", "TokenRevoked", token=token)
    assert {row["data"]["token_id"] for row in by_type} == {world.ids["ci"], world.ids["bob"]}
    by_correlation = cli_json(world.url, "audit", "--correlation-id",
                              moved.correlation_id, token=token)  # fmt: skip
    assert [row["event_type"] for row in by_correlation] == [
        "TokenRevoked",
        "ServiceAccountPermissionMoved",
    ]
    response = world.client.get(
        "/v2/audit", params={"subject": "acme", "type": "TokenRevoked"}, headers=world.bearer(who)
    )
    assert response.status_code == 200, response.text
    assert len(response.json()) == 2
    # Another org's admin sees none of it.
    assert cli_json(world.url, "audit", "--type", "TokenRevoked",
                    token=world.secrets["olga"]) == []  # fmt: skip


def test_limit_counts_the_rows_the_caller_may_see(world: World) -> None:
    """Many events of another org come after the caller's few: a page of 3 is still 3."""
    for n in range(60):
        world.ledger.execute(c.CreateResource(path=f"other/x/r{n}"), OPERATOR)
    rows = cli_json(world.url, "audit", "--limit", "3", token=world.secrets["audrey"])
    assert len(rows) == 3
    assert all("other" not in row["stream_id"] for row in rows)


# -- a deleted resource's grants do not come back ---------------------------------------------


def test_a_grant_on_a_deleted_resource_does_not_come_back_with_the_path(world: World) -> None:
    both = grants(("acme/alpha/raw", "read"), ("acme/beta", "read"))
    world.issue("alice-both", c.build(c.IssueToken, principal=ALICE, grants=both))
    cli_json(world.url, "resources", "delete", "acme/alpha/raw")
    cli_json(world.url, "resources", "create", "acme/alpha/raw")
    answer = world.ledger.verify(world.secrets["alice-both"], resource="acme/alpha/raw")
    assert not answer.allowed
    assert answer.reason == "revoked"


# -- another org's users and accounts: refused alike, whether they exist or not --------------


@pytest.mark.parametrize(
    "args",
    [
        ("service-accounts", "credentials", "list", "{}"),
        ("tokens", "list", "--principal", "{}"),
        ("grants", "list", "{}"),
    ],
)
def test_a_token_cannot_tell_another_orgs_principals_from_missing_ones(
    world: World, args: tuple[str, ...]
) -> None:
    spy = world.secrets["spy"]
    existing = (CI, ALICE) if "credentials" not in args else (CI, ETL)
    missing = ("ghost@acme.service.tokenledger", "ghost@acme.io")
    outputs = set()
    for principal in (*existing, *missing):
        if "credentials" in args and "@acme.io" in principal:
            continue
        result = cli_run(world.url, *(a.format(principal) for a in args), token=spy)
        assert result.exit_code == 4, (principal, result.output)
        outputs.add(result.stderr.replace(principal, "X"))
    assert len(outputs) == 1, outputs
    for principal in (CI, "ghost@acme.service.tokenledger"):
        response = world.client.get(
            f"/v2/service_accounts/{principal}", headers=world.bearer("spy")
        )
        assert response.status_code == 403, response.text
    # Those who may see the org are told what is missing.
    result = cli_run(world.url, "tokens", "list", "--principal", "ghost@acme.service.tokenledger",
                     token=world.secrets["alice"])  # fmt: skip
    assert_one_line_error(result, 3, "no service account")


# -- rules only the Python API can reach (the CLI and HTTP build actors from tokens) -----------


def test_a_reader_sees_no_grant_it_does_not_administer(world: World) -> None:
    auditor = world.ledger.authenticate(world.secrets["audrey"])
    assert world.ledger.grants_of(auditor, BOB) == []  # bob's write on acme/alpha: not hers
    alice = world.ledger.authenticate(world.secrets["alice"])
    assert [g.resource for g in world.ledger.grants_of(alice, BOB)] == ["acme/alpha"]


@pytest.mark.parametrize("token", ["alice", None], ids=["someone_elses_token", "no_token"])
def test_an_actor_acts_only_through_a_token_of_its_own(world: World, token: str | None) -> None:
    """An actor naming another principal's token, or none at all, has no authority."""
    forged = Actor(kind=ActorKind.USER, principal=BOB, token_id=world.ids[token] if token else None)
    before = world.head()
    with pytest.raises(PermissionDenied):
        world.ledger.execute(c.AddMember(org="acme", email=OLGA), forged)
    assert world.head() == before


@pytest.mark.parametrize(
    "args",
    [
        ("service-accounts", "delete", "{}"),
        ("service-accounts", "set-permission", "{}", "acme/alpha", "read"),
        ("service-accounts", "credentials", "create", "{}"),
        ("tokens", "create", "--principal", "{}"),
        ("tokens", "revoke", "--all", "--principal", "{}"),
    ],
)
def test_commands_on_another_orgs_accounts_refuse_alike_whether_they_exist_or_not(
    world: World, args: tuple[str, ...]
) -> None:
    """Another org's admin is refused the same way for an existing and a missing account."""
    olga = world.secrets["olga"]
    before = world.head()
    outputs = set()
    for account in (ETL, "ghost@acme.service.tokenledger"):
        result = cli_run(world.url, *(a.format(account) for a in args), token=olga)
        assert_one_line_error(result, 4, "may not see")
        outputs.add(result.stderr.replace(account, "X"))
    assert len(outputs) == 1, outputs
    assert world.head() == before


# -- a URL's owner is checked by the ledger, not by the route ---------------------------------


def test_a_token_or_credential_is_found_only_under_its_own_owner(world: World) -> None:
    """An admin of both accounts names the wrong one in the URL: not found, nothing revoked."""
    credential = world.ledger.execute(c.IssueClientCredential(account_id=ETL), OPERATOR)
    client_id = credential.outcome.credential_issued.client_id  # type: ignore[union-attr]
    alice = world.bearer("alice")
    before = world.head()
    wrong = [
        ("GET", f"/v2/service_accounts/{CI}/tokens/{world.ids['etl']}"),
        ("DELETE", f"/v2/service_accounts/{CI}/tokens/{world.ids['etl']}"),
        ("DELETE", f"/v2/users/{ALICE}/tokens/{world.ids['bob']}"),
        ("DELETE", f"/v2/service_accounts/{CI}/credentials/{client_id}"),
    ]
    for method, path in wrong:
        response = world.client.request(method, path, headers=alice)
        assert response.status_code == 404, (path, response.text)
    assert world.head() == before
    assert world.ledger.verify(world.secrets["etl"]).active
    assert world.ledger.verify(world.secrets["bob"]).active
    # Under the right owner, the same calls work.
    right = world.client.delete(
        f"/v2/service_accounts/{ETL}/credentials/{client_id}", headers=alice
    )
    assert right.status_code == 200, right.text
    assert right.json()["revoked_client_ids"] == [client_id]
