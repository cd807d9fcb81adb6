"""The permission matrix of docs/permissions.md, run cell by cell.

The expected outcomes are read from the table in the doc (not copied here): every operation for
every actor kind, through the CLI with ``TOKENLEDGER_TOKEN`` and over HTTP with a Bearer token, on
SQLite and PostgreSQL. A refusal is exit 4 / HTTP 403 in one line and
leaves the log head where it was; an allowed call succeeds; a filtered one succeeds and shows
nothing of the org the actor may not read.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from helpers import cli_run
from tokenledger.api import ApiSettings, create_app
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.service import Ledger
from tokenledger.service.keys import KeyStore
from tokenledger.store import open_event_store

DOC = Path(__file__).resolve().parents[1] / "docs" / "permissions.md"
OPERATOR = Actor.operator("root")
ISSUER = "matrix"
ALICE, AUDREY, BOB = "alice@acme.io", "audrey@acme.io", "bob@acme.io"
CAROL, DAVE, ERIN, FRANK = "carol@acme.io", "dave@acme.io", "erin@acme.io", "frank@acme.io"
OLGA = "olga@other.io"


def sa(name: str) -> str:
    return f"{name}@acme.service.tokenledger"


def read_matrix() -> dict[str, dict[str, str]]:
    """operation -> actor kind -> allowed / refused / filtered, from the doc's table."""
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- permission-matrix -->\n(.*?)<!-- /permission-matrix -->", text, re.S)
    assert found, "docs/permissions.md lost its permission matrix"
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in found.group(1).strip().splitlines()
    ]
    header, body = rows[0], rows[2:]
    return {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in body}


MATRIX = read_matrix()
ACTORS = list(next(iter(MATRIX.values())))


@dataclass
class World:
    url: str
    ledger: Ledger
    keys: KeyStore
    secrets: dict[str, str] = field(default_factory=dict)
    principals: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    client_id: str = ""
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def acme_created(self) -> int:
        """The position of acme's creation: an event of the org as a whole."""
        return next(
            r.position
            for r in self.ledger.store.read_all()
            if r.event_type == "OrgCreated" and r.stream_id.endswith("acme")
        )

    def issue(self, kind: str, command: c.IssueToken) -> str:
        result = self.ledger.execute(command, OPERATOR)
        assert result.secret is not None
        assert result.issued is not None
        self.secrets[kind], self.ids[kind] = result.secret, result.issued.token_id
        self.principals[kind] = result.issued.principal
        return result.issued.token_id

    def unique(self) -> str:
        return f"n{next(self.counter)}"


def build_world(url: str, tmp_path: Path) -> World:
    ledger = Ledger(open_event_store(url, auto_upgrade=True))
    keys = KeyStore(tmp_path / "keys.json")
    keys.rotate(datetime.now(UTC))
    world = World(url, ledger, keys)
    write = Level.WRITE
    for command in (
        c.CreateOrg(org="acme"),
        c.CreateOrg(org="other"),
        c.CreateResource(path="acme/alpha"),
        c.CreateResource(path="acme/alpha/raw"),
        c.CreateResource(path="other/secret"),
        *(c.CreateUser(email=e) for e in (ALICE, AUDREY, BOB, CAROL, DAVE, ERIN, FRANK, OLGA)),
        c.AddMember(org="acme", email=ALICE, role="admin"),
        c.AddMember(org="acme", email=AUDREY, role="auditor"),
        c.AddMember(org="acme", email=BOB),
        c.AddMember(org="acme", email=ERIN),
        c.AddMember(org="acme", email=FRANK),
        c.AddMember(org="other", email=OLGA, role="admin"),
        c.SetGrant(principal=BOB, resource="acme/alpha", level=write),
        c.SetGrant(principal=FRANK, resource="acme/alpha", level=Level.READ),
        c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level=Level.ADMIN),
        *(
            c.CreateServiceAccount(name=n, org="acme", resource="acme/alpha", level=write)
            for n in ("etl", "doomed", "mover")
        ),
        c.CreateServiceAccount(name="spy", org="other", resource="other/secret", level=write),
        c.build(
            c.CreateRole, org="acme", role="reader", grants=[{"resource": "acme", "level": "read"}]
        ),
        c.CreateEndpoint(name="proxy", url="https://proxy.example"),
        c.CreateEndpoint(name="proxy2", url="https://proxy2.example"),
        c.TrustEndpoint(account_id=sa("etl"), endpoint="proxy"),
    ):
        ledger.execute(command, OPERATOR)

    def grants(*pairs: tuple[str, str]) -> list[dict[str, str]]:
        return [{"resource": r, "level": lvl} for r, lvl in pairs]

    admin = world.issue(
        "org admin", c.build(c.IssueToken, principal=ALICE, grants=grants(("acme", "admin")))
    )
    world.issue("auditor", c.build(c.IssueToken, principal=AUDREY, grants=grants(("acme", "read"))))
    world.issue(
        "member", c.build(c.IssueToken, principal=BOB, grants=grants(("acme/alpha", "write")))
    )
    world.issue("service account", c.IssueToken(principal=sa("ci")))
    world.issue(
        "scoped token",
        c.build(c.IssueToken, principal=ALICE, grants=grants(("acme/alpha", "read"))),
    )
    world.issue(
        "derived token", c.build(c.IssueToken, parent_id=admin, grants=grants(("acme", "read")))
    )
    world.issue("etl", c.IssueToken(principal=sa("etl")))
    # Another org's token, which no filtered listing may show (but the operator's).
    world.issue("spy", c.IssueToken(principal="spy@other.service.tokenledger"))
    world.issue("etl to rotate", c.IssueToken(principal=sa("etl")))
    for kind in ("etl credential", "ci credential", "etl credential to rotate"):
        account = sa("etl") if kind.startswith("etl") else sa("ci")
        result = ledger.execute(c.IssueClientCredential(account_id=account), OPERATOR)
        credential = result.events[0]
        world.ids[kind] = credential.client_id  # type: ignore[attr-defined]
        world.secrets[kind] = result.secret or ""
    credential, account = ledger.authenticate_client(
        world.ids["ci credential"], world.secrets["ci credential"]
    )
    jwt = ledger.issue_access_token(credential, account, keys.ring(), issuer=ISSUER)
    world.secrets["access token"] = jwt.access_token
    world.principals["access token"] = sa("ci")
    world.principals["operator"] = BOB  # "for itself", said of the operator, issues for bob
    return world


# -- how each operation is called -------------------------------------------------------------

Cli = Callable[[World, str], list[str]]
Http = Callable[[World, str], tuple[str, str, dict[str, Any] | None]]


def _self(world: World, kind: str) -> str:
    return world.principals[kind]


def _owner_route(principal: str) -> str:
    return (
        f"/v2/service_accounts/{principal}"
        if "@acme.service" in principal
        else f"/v2/users/{principal}"
    )


def _window(world: World) -> str:
    """From the log's first event to now: ``tokens live --during``."""
    first = next(iter(world.ledger.store.read_all(until_position=1))).recorded_at
    return f"{first.isoformat()}..{world.ledger.now().isoformat()}"


def _window_query(world: World) -> str:
    start, end = _window(world).split("..")
    return urlencode({"from": start, "to": end})


OPERATIONS: dict[str, tuple[Cli, Http | None]] = {
    "orgs create": (
        lambda w, k: ["orgs", "create", w.unique()],
        lambda w, k: ("POST", "/v2/orgs", {"name": w.unique()}),
    ),
    "users create": (
        lambda w, k: ["users", "create", f"{w.unique()}@acme.io"],
        lambda w, k: ("POST", "/v2/users", {"email": f"{w.unique()}@acme.io"}),
    ),
    "accounts create": (
        lambda w, k: ["accounts", "create", "-n", f"{w.unique()}@acme.io"],
        lambda w, k: ("POST", "/v2/users", {"email": f"{w.unique()}@acme.io", "account": True}),
    ),
    "users disable": (
        lambda w, k: ["users", "disable", DAVE],
        lambda w, k: ("POST", f"/v2/users/{DAVE}/disable", {}),
    ),
    "orgs add-member": (
        lambda w, k: ["orgs", "add-member", "acme", CAROL],
        lambda w, k: ("PUT", f"/v2/orgs/acme/members/{CAROL}", {"role": "member"}),
    ),
    "orgs remove-member": (
        lambda w, k: ["orgs", "remove-member", "acme", ERIN],
        lambda w, k: ("DELETE", f"/v2/orgs/acme/members/{ERIN}", None),
    ),
    "grants set": (
        lambda w, k: ["grants", "set", FRANK, "acme/alpha", "write"],
        lambda w, k: (
            "PUT",
            f"/v2/users/{FRANK}/grants",
            {"resource": "acme/alpha", "level": "write"},
        ),
    ),
    "roles create": (
        lambda w, k: ["roles", "create", "acme", w.unique(), "--grant", "acme/alpha=read"],
        lambda w, k: (
            "POST",
            "/v2/orgs/acme/roles",
            {"name": w.unique(), "grants": [{"resource": "acme/alpha", "level": "read"}]},
        ),
    ),
    "roles key new": (
        lambda w, k: ["roles", "key", "new", "acme:reader"],
        lambda w, k: ("POST", "/v2/orgs/acme/roles/reader/keys", {}),
    ),
    "roles policy new": (
        lambda w, k: ["roles", "policy", "new", "acme:reader", "data:get@acme/alpha/raw"],
        lambda w, k: (
            "POST",
            "/v2/orgs/acme/roles/reader/policies",
            {"policy": "data:get@acme/alpha/raw"},
        ),
    ),
    "resources create (in acme/alpha)": (
        lambda w, k: ["resources", "create", f"acme/alpha/{w.unique()}"],
        lambda w, k: ("POST", "/v2/resources", {"path": f"acme/alpha/{w.unique()}"}),
    ),
    "resources set (license of acme/alpha)": (
        lambda w, k: ["resources", "set", "acme/alpha", "--license", f"LicenseRef-{w.unique()}"],
        lambda w, k: (
            "PATCH",
            "/v2/resources/acme/alpha",
            {"license": f"LicenseRef-{w.unique()}"},
        ),
    ),
    "resources delete": (
        lambda w, k: ["resources", "delete", "acme/alpha/raw"],
        lambda w, k: ("DELETE", "/v2/resources/acme/alpha/raw", None),
    ),
    "service-accounts create": (
        lambda w, k: [
            "service-accounts",
            "create",
            w.unique(),
            "--org",
            "acme",
            "--resource",
            "acme/alpha",
            "--level",
            "read",
        ],
        lambda w, k: (
            "POST",
            "/v2/service_accounts",
            {"name": w.unique(), "org": "acme", "resource": "acme/alpha", "level": "read"},
        ),
    ),
    "service-accounts set-permission": (
        lambda w, k: ["service-accounts", "set-permission", sa("mover"), "acme/alpha", "read"],
        lambda w, k: (
            "PUT",
            f"/v2/service_accounts/{sa('mover')}/permission",
            {"resource": "acme/alpha", "level": "read"},
        ),
    ),
    "service-accounts delete": (
        lambda w, k: ["service-accounts", "delete", sa("doomed")],
        lambda w, k: ("DELETE", f"/v2/service_accounts/{sa('doomed')}", None),
    ),
    "tokens create (for itself)": (
        lambda w, k: [
            "tokens",
            "create",
            "--principal",
            _self(w, k),
            "--resource",
            "acme/alpha",
            "--level",
            "read",
        ],
        lambda w, k: (
            "POST",
            f"{_owner_route(_self(w, k))}/tokens",
            {"grants": [{"resource": "acme/alpha", "level": "read"}]},
        ),
    ),
    "tokens create (for another account)": (
        lambda w, k: ["tokens", "create", "--principal", sa("etl")],
        lambda w, k: ("POST", f"/v2/service_accounts/{sa('etl')}/tokens", {}),
    ),
    # Suspension: each undone right after, so the operations below find the account whole.
    "tokens disable (another account's)": (
        lambda w, k: ["tokens", "disable", w.ids["etl"]],
        lambda w, k: ("POST", f"/v2/tokens/{w.ids['etl']}/disable", None),
    ),
    "tokens enable (another account's)": (
        lambda w, k: ["tokens", "enable", w.ids["etl"]],
        lambda w, k: ("POST", f"/v2/tokens/{w.ids['etl']}/enable", None),
    ),
    "service-accounts disable": (
        lambda w, k: ["service-accounts", "disable", sa("etl")],
        lambda w, k: ("POST", f"/v2/service_accounts/{sa('etl')}/disable", None),
    ),
    "service-accounts enable": (
        lambda w, k: ["service-accounts", "enable", sa("etl")],
        lambda w, k: ("POST", f"/v2/service_accounts/{sa('etl')}/enable", None),
    ),
    "credentials disable": (
        lambda w, k: ["service-accounts", "credentials", "disable", w.ids["etl credential"]],
        lambda w, k: (
            "POST",
            f"/v2/service_accounts/-/credentials/{w.ids['etl credential']}/disable",
            None,
        ),
    ),
    "credentials enable": (
        lambda w, k: ["service-accounts", "credentials", "enable", w.ids["etl credential"]],
        lambda w, k: (
            "POST",
            f"/v2/service_accounts/-/credentials/{w.ids['etl credential']}/enable",
            None,
        ),
    ),
    "tokens revoke (another account's)": (
        lambda w, k: ["tokens", "revoke", w.ids["etl"]],
        lambda w, k: ("DELETE", f"/v2/service_accounts/{sa('etl')}/tokens/{w.ids['etl']}", None),
    ),
    "tokens revoke --where (an account's, preview)": (
        lambda w, k: ["tokens", "revoke", "--where", f"principal={sa('etl')}"],
        lambda w, k: (
            "POST",
            "/v2/tokens/revoke",
            {"where": {"principal": sa("etl")}, "dry_run": True},
        ),
    ),
    "credentials create": (
        lambda w, k: ["service-accounts", "credentials", "create", sa("etl")],
        lambda w, k: ("POST", f"/v2/service_accounts/{sa('etl')}/credentials", {}),
    ),
    "credentials revoke": (
        lambda w, k: ["service-accounts", "credentials", "revoke", w.ids["etl credential"]],
        lambda w, k: (
            "DELETE",
            f"/v2/service_accounts/{sa('etl')}/credentials/{w.ids['etl credential']}",
            None,
        ),
    ),
    "orgs list": (lambda w, k: ["orgs", "list"], lambda w, k: ("GET", "/v2/orgs", None)),
    "users list (of acme)": (
        lambda w, k: ["users", "list", "--org", "acme"],
        lambda w, k: ("GET", "/v2/users?org=acme", None),
    ),
    "orgs members": (
        lambda w, k: ["orgs", "members", "acme"],
        lambda w, k: ("GET", "/v2/orgs/acme/members", None),
    ),
    "roles list": (
        lambda w, k: ["roles", "list", "acme"],
        lambda w, k: ("GET", "/v2/orgs/acme/roles", None),
    ),
    "resources list": (
        lambda w, k: ["resources", "list"],
        lambda w, k: ("GET", "/v2/resources", None),
    ),
    "service-accounts list": (
        lambda w, k: ["service-accounts", "list"],
        lambda w, k: ("GET", "/v2/service_accounts", None),
    ),
    "grants list (of a member)": (
        lambda w, k: ["grants", "list", FRANK],
        lambda w, k: ("GET", f"/v2/users/{FRANK}/grants", None),
    ),
    "tokens list (of an account)": (
        lambda w, k: ["tokens", "list", "--principal", sa("etl")],
        lambda w, k: ("GET", f"/v2/service_accounts/{sa('etl')}/tokens", None),
    ),
    "tokens get (an account's)": (
        lambda w, k: ["tokens", "get", w.ids["etl"]],
        lambda w, k: ("GET", f"/v2/tokens/{w.ids['etl']}", None),
    ),
    "tokens expiring": (
        lambda w, k: ["tokens", "expiring", "--within", "400d"],
        lambda w, k: ("GET", "/v2/tokens/expiring?within=400d", None),
    ),
    "tokens unused": (
        lambda w, k: ["tokens", "unused", "--for", "1s"],
        lambda w, k: ("GET", "/v2/tokens/unused?for=1s", None),
    ),
    "tokens live (on acme/alpha)": (
        lambda w, k: ["tokens", "live", "--during", _window(w), "--resource", "acme/alpha"],
        lambda w, k: ("GET", f"/v2/tokens/live?{_window_query(w)}&resource=acme/alpha", None),
    ),
    "audit who-can (acme/alpha)": (
        lambda w, k: ["audit", "who-can", "acme/alpha", "write"],
        lambda w, k: ("GET", "/v2/audit/who-can?resource=acme/alpha&level=write", None),
    ),
    "credentials list": (
        lambda w, k: ["service-accounts", "credentials", "list", sa("etl")],
        lambda w, k: ("GET", f"/v2/service_accounts/{sa('etl')}/credentials", None),
    ),
    "orgs set-idp": (
        lambda w, k: [
            "orgs",
            "set-idp",
            "acme",
            "--issuer",
            f"https://{w.unique()}.idp.example",
            "--client-id",
            "ledger",
        ],
        lambda w, k: (
            "PUT",
            "/v2/orgs/acme/identity-provider",
            {"issuer": f"https://{w.unique()}.idp.example", "client_id": "ledger"},
        ),
    ),
    "service-accounts trust-issuer": (
        lambda w, k: [
            "service-accounts",
            "trust-issuer",
            sa("etl"),
            "--issuer",
            "https://ci.example",
            "--subject",
            f"repo:acme/{w.unique()}:*",
            "--audience",
            "tokenledger",
        ],
        lambda w, k: (
            "POST",
            f"/v2/service_accounts/{sa('etl')}/trusts",
            {
                "issuer": "https://ci.example",
                "subject": f"repo:acme/{w.unique()}:*",
                "audience": "tokenledger",
            },
        ),
    ),
    "endpoints create": (
        lambda w, k: ["endpoints", "create", w.unique(), "--url", "https://gateway.example"],
        None,
    ),
    "service-accounts trust-endpoint": (
        lambda w, k: ["service-accounts", "trust-endpoint", sa("etl"), "proxy2"],
        lambda w, k: (
            "POST",
            f"/v2/service_accounts/{sa('etl')}/trusted_endpoints",
            {"endpointId": "proxy2"},
        ),
    ),
    "s3-credentials create": (
        lambda w, k: ["s3-credentials", "create", sa("etl"), "proxy"],
        lambda w, k: ("GET", f"/v2/user/s3_credentials/{sa('etl')}/s3_credentials/proxy", None),
    ),
    "webhooks create": (
        lambda w, k: [
            "webhooks",
            "create",
            "acme",
            "--url",
            f"https://hooks.example/{w.unique()}",
            "--events",
            "token.revoked",
        ],
        lambda w, k: (
            "POST",
            "/v2/webhooks",
            {
                "org": "acme",
                "url": f"https://hooks.example/{w.unique()}",
                "events": ["token.revoked"],
            },
        ),
    ),
    "webhooks list (of acme)": (
        lambda w, k: ["webhooks", "list", "--org", "acme"],
        lambda w, k: ("GET", "/v2/webhooks?org=acme", None),
    ),
    "audit search": (
        lambda w, k: ["audit", "--limit", "500"],
        lambda w, k: ("GET", "/v2/audit?limit=500", None),
    ),
    "audit explain (an account's token)": (
        lambda w, k: ["audit", "explain", w.ids["etl"]],
        lambda w, k: ("GET", f"/v2/tokens/{w.ids['etl']}/explain", None),
    ),
    "audit blast-radius (an account's token)": (
        lambda w, k: ["audit", "blast-radius", w.ids["etl"]],
        lambda w, k: ("GET", f"/v2/audit/blast-radius/{w.ids['etl']}", None),
    ),
    "audit blast-radius --revoke (an account's token, preview)": (
        lambda w, k: ["audit", "blast-radius", w.ids["etl to rotate"], "--revoke"],
        lambda w, k: (
            "POST",
            f"/v2/audit/blast-radius/{w.ids['etl to rotate']}/revoke?dry_run=true",
            None,
        ),
    ),
    "audit export": (lambda w, k: ["audit", "export"], None),
    "events": (lambda w, k: ["events"], None),
    "keys list": (lambda w, k: ["keys", "list", "--keys-file", str(w.keys.describe())], None),
    "keys rotate": (lambda w, k: ["keys", "rotate", "--keys-file", str(w.keys.describe())], None),
    "replay --check": (lambda w, k: ["replay", "--check"], None),
    "tokens rotate (another account's)": (
        lambda w, k: ["tokens", "rotate", w.ids["etl to rotate"]],
        lambda w, k: ("POST", f"/v2/tokens/{w.ids['etl to rotate']}/rotate", {}),
    ),
    "credentials rotate": (
        lambda w, k: [
            *("service-accounts", "credentials", "rotate", w.ids["etl credential to rotate"])
        ],
        lambda w, k: (
            "POST",
            f"/v2/service_accounts/{sa('etl')}/credentials/"
            f"{w.ids['etl credential to rotate']}/rotate",
            {},
        ),
    ),
    "orgs policy set": (
        lambda w, k: ["orgs", "policy", "set", "acme", "--max-live-tokens", "1000"],
        lambda w, k: ("PUT", "/v2/orgs/acme/policy", {"max_live_tokens": 1000}),
    ),
    "orgs policy get": (
        lambda w, k: ["orgs", "policy", "get", "acme"],
        lambda w, k: ("GET", "/v2/orgs/acme/policy", None),
    ),
    "log checkpoint": (
        lambda w, k: ["log", "checkpoint"],
        lambda w, k: ("GET", "/v2/log/checkpoint", None),
    ),
    "log prove consistency": (
        lambda w, k: ["log", "prove", "consistency", "--from", "3"],
        lambda w, k: ("GET", "/v2/log/proof/consistency?from=3", None),
    ),
    "log prove inclusion (an event of acme)": (
        lambda w, k: ["log", "prove", "inclusion", "--position", str(w.acme_created())],
        lambda w, k: ("GET", f"/v2/log/proof/inclusion?position={w.acme_created()}", None),
    ),
}


def test_every_operation_of_the_doc_is_run_and_every_run_is_in_the_doc() -> None:
    assert set(OPERATIONS) == set(MATRIX)
    assert ACTORS == [
        "operator",
        "org admin",
        "auditor",
        "member",
        "service account",
        "scoped token",
        "derived token",
        "access token",
    ]


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    world = build_world(database_url, tmp_path)
    yield world
    world.ledger.close()


def _check(
    expected: str, operation: str, kind: str, ok: bool, refused: bool, hidden: bool, output: str
) -> None:
    where = f"{operation} by {kind}"
    if expected == "refused":
        assert refused, f"{where} should be refused: {output[:300]}"
    elif expected == "hidden":
        assert hidden, f"{where} should be answered as not found: {output[:300]}"
    else:
        assert ok, f"{where} should be {expected}: {output[:300]}"
        if expected == "filtered":
            # Nothing of the org the actor may not read (its resource, account and admin).
            assert "other/secret" not in output, where
            assert "spy@other" not in output, where
            assert OLGA not in output, where


@pytest.mark.parametrize("kind", ACTORS)
def test_through_the_cli(world: World, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    token = None if kind == "operator" else world.secrets[kind]
    # An access token is checked with the keys and issuer a server of this database uses.
    monkeypatch.setenv("TOKENLEDGER_KEYS_FILE", world.keys.describe())
    monkeypatch.setenv("TOKENLEDGER_ISSUER", ISSUER)
    for operation, (cli, _) in OPERATIONS.items():
        expected = MATRIX[operation][kind]
        before = world.ledger.store.head()
        result = cli_run(world.url, *cli(world, kind), token=token)
        refused, hidden = result.exit_code == 4, result.exit_code == 3
        if refused or hidden:
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1, (operation, kind, result.stderr)
            assert world.ledger.store.head() == before, f"{operation} by {kind} wrote"
        ok = result.exit_code == 0
        _check(expected, operation, kind, ok, refused, hidden, result.output)


@pytest.mark.parametrize("kind", [k for k in ACTORS if k != "operator"])
def test_over_http(world: World, kind: str) -> None:
    settings = ApiSettings(issuer=ISSUER, keys=world.keys)
    with TestClient(create_app(world.ledger, settings), raise_server_exceptions=False) as client:
        headers = {"Authorization": f"Bearer {world.secrets[kind]}"}
        for operation, (_, http) in OPERATIONS.items():
            if http is None:
                continue
            expected = MATRIX[operation][kind]
            method, path, body = http(world, kind)
            before = world.ledger.store.head()
            response = client.request(method, path, json=body, headers=headers)
            refused, hidden = response.status_code == 403, response.status_code == 404
            if refused or hidden:
                assert "\n" not in response.json()["error_description"]
                assert world.ledger.store.head() == before, f"{operation} by {kind} wrote"
            ok = 200 <= response.status_code < 300
            _check(expected, operation, kind, ok, refused, hidden, response.text)
