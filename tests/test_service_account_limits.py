"""Aruna's limits of service accounts, and a resource's license and data class.

* A service account may not manage grants, roles or users (org memberships included), nor
  change a resource's license or data class, whatever it holds: here it holds ADMIN on its
  project, through a ledger token and through an access token of its client credential. Each
  refusal names the limit, is HTTP 403 / exit 4 in one line, and appends nothing; an org admin
  (a person) does the same things.
* A resource's license and data class are set by its admins (``resources set``, ``PATCH
  /v2/resources/{path}``, or on creation), shown by ``resources get/list`` and the HTTP
  answers, kept by a rebuild from the log and by time travel (``--at``); a bad value is
  refused in one line with nothing appended, and setting what a resource already has is a
  conflict.

On SQLite and PostgreSQL, through the CLI (``--db``) and the HTTP API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from freezegun import freeze_time

from api_helpers import ISSUER, OPERATOR, SA, Api, make_api
from helpers import assert_one_line_error, assert_projections_match_log, cli_json, cli_run
from tokenledger.domain import commands as c
from tokenledger.domain.authority import ServiceAccountLimit, refuse_service_account
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.domain.resource_attributes import DataClass
from tokenledger.errors import PermissionDenied
from tokenledger.projections.rebuild import rebuild

GRANTS = "service accounts may not manage grants"
ROLES = "service accounts may not manage roles"
USERS = "service accounts may not manage users"
LICENSES = "service accounts may not change licenses or data classes"


class World:
    """The API's seeded ledger (see ``api_helpers``) with ``ci`` raised to ADMIN on its
    project ``acme/alpha``, a ledger token of ``ci`` with that admin grant, and an access
    token obtained with ``ci``'s client credential (signed with its whole permission)."""

    def __init__(self, api: Api, url: str) -> None:
        self.api = api
        self.url = url
        api.ledger.execute(
            c.SetServiceAccountPermission(account_id=SA, resource="acme/alpha", level=Level.ADMIN),
            OPERATOR,
        )
        grants = [{"resource": "acme/alpha", "level": "admin"}]
        issued = api.ledger.execute(c.IssueToken(principal=SA, grants=grants), OPERATOR)
        assert issued.secret is not None
        self.sa_admin = issued.secret
        self.sa_access = api.access_token()

    def head(self) -> int:
        return self.api.ledger.store.head().position

    def http(self, method: str, path: str, secret: str, body: Any = None) -> Any:
        return self.api.client.request(method, path, json=body, headers=Api.bearer(secret))

    def cli(self, *args: str, token: str | None = None) -> Result:
        return cli_run(self.url, *args, token=token)


@pytest.fixture
def world(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for api in make_api(database_url, tmp_path):
        # The command line checks an access token with the keys and issuer of the server.
        monkeypatch.setenv("TOKENLEDGER_KEYS_FILE", api.keys.describe())
        monkeypatch.setenv("TOKENLEDGER_ISSUER", ISSUER)
        yield World(api, database_url)


#: Each kind of call a service account may not make, over HTTP: (method, path, body, limit).
HTTP_CALLS = {
    "set a grant": (
        "PUT",
        "/v2/users/bob@acme.io/grants",
        {"resource": "acme/alpha", "level": "read"},
        GRANTS,
    ),
    "remove a grant": (
        "PUT",
        "/v2/users/bob@acme.io/grants",
        {"resource": "acme/alpha", "level": "none"},
        GRANTS,
    ),
    "create a role": (
        "POST",
        "/v2/orgs/acme/roles",
        {"name": "readers", "grants": [{"resource": "acme/alpha", "level": "read"}]},
        ROLES,
    ),
    "create a user": ("POST", "/v2/users", {"email": "dan@acme.io"}, USERS),
    "disable a user": ("POST", "/v2/users/bob@acme.io/disable", {}, USERS),
    "change a member's role": (
        "PUT",
        "/v2/orgs/acme/members/bob@acme.io",
        {"role": "admin"},
        USERS,
    ),
    "remove a member": ("DELETE", "/v2/orgs/acme/members/bob@acme.io", None, USERS),
    "set a license": ("PATCH", "/v2/resources/acme/alpha", {"license": "MIT"}, LICENSES),
    "set a data class": (
        "PATCH",
        "/v2/resources/acme/alpha",
        {"dataClass": "DATA_CLASS_PUBLIC"},
        LICENSES,
    ),
    "create a resource with a license": (
        "POST",
        "/v2/resources",
        {"path": "acme/alpha/raw", "license": "CC-BY-4.0"},
        LICENSES,
    ),
}

#: The same kinds through the command line: (arguments, limit).
CLI_CALLS = {
    "set a grant": (["grants", "set", "bob@acme.io", "acme/alpha", "read"], GRANTS),
    "remove a grant": (["grants", "set", "bob@acme.io", "acme/alpha", "none"], GRANTS),
    "create a role": (["roles", "create", "acme", "readers", "--grant", "acme/alpha=read"], ROLES),
    "create a user": (["users", "create", "dan@acme.io"], USERS),
    "disable a user": (["users", "disable", "bob@acme.io"], USERS),
    "change a member's role": (
        ["orgs", "add-member", "acme", "bob@acme.io", "--role", "admin"],
        USERS,
    ),
    "remove a member": (["orgs", "remove-member", "acme", "bob@acme.io"], USERS),
    "set a license": (["resources", "set", "acme/alpha", "--license", "MIT"], LICENSES),
    "set a data class": (["resources", "set", "acme/alpha", "--data-class", "public"], LICENSES),
    "create a resource with a license": (
        ["resources", "create", "acme/alpha/raw", "--license", "CC-BY-4.0"],
        LICENSES,
    ),
}


# -- the limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("call", sorted(HTTP_CALLS))
def test_an_admin_service_account_is_refused_over_http(world: World, call: str) -> None:
    method, path, body, limit = HTTP_CALLS[call]
    before = world.head()
    for secret in (world.sa_admin, world.sa_access):
        response = world.http(method, path, secret, body)
        assert response.status_code == 403, response.text
        answer = response.json()
        assert answer["error"] == "insufficient_scope"
        assert answer["error_description"] == limit
    assert world.head() == before


@pytest.mark.parametrize("call", sorted(CLI_CALLS))
def test_an_admin_service_account_is_refused_on_the_command_line(world: World, call: str) -> None:
    args, limit = CLI_CALLS[call]
    before = world.head()
    for secret in (world.sa_admin, world.sa_access):
        assert_one_line_error(world.cli(*args, token=secret), 4, limit)
    assert world.head() == before


def test_the_service_account_does_what_its_admin_level_allows_otherwise(world: World) -> None:
    """The limits are named, not a blanket refusal: the same admin token creates a resource
    (without a license) in its project."""
    created = world.http("POST", "/v2/resources", world.sa_admin, {"path": "acme/alpha/raw"})
    assert created.status_code == 201, created.text


#: Disabling a user is the operator's alone (who has no HTTP route): see the next test.
BY_ORG_ADMINS = sorted(set(HTTP_CALLS) - {"disable a user"})


@pytest.mark.parametrize("call", BY_ORG_ADMINS)
def test_an_org_admin_does_each_over_http(world: World, call: str) -> None:
    method, path, body, _ = HTTP_CALLS[call]
    before = world.head()
    response = world.http(method, path, world.api.ann, body)
    assert response.status_code in (200, 201), response.text
    assert world.head() > before


@pytest.mark.parametrize("call", sorted(CLI_CALLS))
def test_a_person_does_each_on_the_command_line(world: World, call: str) -> None:
    """An org admin through a token; disabling a user, the operator."""
    args, _ = CLI_CALLS[call]
    before = world.head()
    result = world.cli(*args, token=None if call == "disable a user" else world.api.ann)
    assert result.exit_code == 0, result.output
    assert world.head() > before


def test_the_rule_is_one_named_set_that_other_commands_call_by_name() -> None:
    account = Actor.through_token(SA, "tok_0000000000000001")
    person = Actor.through_token("ann@acme.io", "tok_0000000000000002")
    with pytest.raises(PermissionDenied, match=r"^service accounts may not manage endpoints$"):
        refuse_service_account(account, "manage endpoints")
    refuse_service_account(person, "manage endpoints")
    refuse_service_account(OPERATOR, ServiceAccountLimit.MANAGE_ENDPOINTS)
    with pytest.raises(ValueError, match="manage everything"):
        refuse_service_account(person, "manage everything")  # a limit nobody named


# -- license and data class ---------------------------------------------------------------------


def test_an_admin_sets_shows_and_replays_license_and_data_class(world: World) -> None:
    ann = world.api.ann
    answer = cli_json(
        world.url,
        "resources",
        "set",
        "acme/alpha",
        "--license",
        "CC-BY-4.0",
        "--data-class",
        "DATA_CLASS_CONFIDENTIAL",
        token=ann,
    )
    assert (answer["license"], answer["data_class"]) == ("CC-BY-4.0", "confidential")
    patched = world.http("PATCH", "/v2/resources/acme/beta", ann, {"data_class": "workspace"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["data_class"] == "workspace"
    assert patched.json()["license"] is None
    assert [e["event_type"] for e in patched.json()["events"]] == ["ResourceDataClassSet"]

    shown = world.cli("resources", "get", "acme/alpha", token=ann)
    assert shown.exit_code == 0, shown.output
    assert "license: CC-BY-4.0" in shown.stdout
    assert "data class: confidential" in shown.stdout
    listed = world.cli("resources", "list", "acme", token=ann).stdout
    assert "acme/alpha  (project, license CC-BY-4.0, data class confidential)" in listed
    assert "acme/beta  (project, data class workspace)" in listed
    rows = {r["path"]: r for r in cli_json(world.url, "resources", "list", token=ann)}
    assert (rows["acme/beta"]["license"], rows["acme/beta"]["data_class"]) == (None, "workspace")
    one = world.http("GET", "/v2/resources/acme/alpha", ann).json()
    assert (one["license"], one["data_class"]) == ("CC-BY-4.0", "confidential")
    many = {r["path"]: r for r in world.http("GET", "/v2/resources", ann).json()}
    assert many["acme/beta"]["data_class"] == "workspace"

    # The live tables, the in-memory fold of the log and a rebuild from it all agree.
    state = assert_projections_match_log(world.api.ledger)
    assert state.resources["acme/alpha"].license == "CC-BY-4.0"
    rebuild(world.api.ledger.store)
    again = world.http("GET", "/v2/resources/acme/alpha", ann).json()
    assert again == one
    assert_projections_match_log(world.api.ledger)


def test_a_resource_created_again_starts_without_them(world: World) -> None:
    ann = world.api.ann
    cli_json(world.url, "resources", "create", "acme/gamma", "--license", "MIT", token=ann)
    assert world.cli("resources", "delete", "acme/gamma", token=ann).exit_code == 0
    cli_json(world.url, "resources", "create", "acme/gamma", token=ann)
    fresh = cli_json(world.url, "resources", "get", "acme/gamma", token=ann)
    assert (fresh["license"], fresh["data_class"]) == (None, None)
    assert_projections_match_log(world.api.ledger)


def test_given_on_creation_they_are_set_with_it(world: World) -> None:
    created = world.http(
        "POST",
        "/v2/resources",
        world.api.ann,
        {"path": "acme/alpha/raw", "license": "Apache-2.0", "dataClass": "DATA_CLASS_PUBLIC"},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["license"], body["data_class"]) == ("Apache-2.0", "public")
    assert [e["event_type"] for e in body["events"]] == [
        "ResourceCreated",
        "ResourceLicenseSet",
        "ResourceDataClassSet",
    ]
    # Creating needs write on the parent; a license with it needs admin, which bob lacks.
    before = world.head()
    result = world.cli(
        "resources", "create", "acme/alpha/x", "--data-class", "public", token=world.api.bob
    )
    assert_one_line_error(result, 4, "needs admin on acme/alpha/x")
    assert world.head() == before


def test_time_travel_shows_them_as_they_were(world: World) -> None:
    ann = world.api.ann
    start = datetime.now(UTC)
    with freeze_time(start + timedelta(minutes=10)):
        cli_json(world.url, "resources", "set", "acme/alpha", "--license", "MIT", token=ann)
    with freeze_time(start + timedelta(minutes=20)):
        cli_json(
            world.url, "resources", "set", "acme/alpha", "--license", "GPL-3.0-only", token=ann
        )
    between = (start + timedelta(minutes=15)).isoformat()
    before_any = (start + timedelta(minutes=5)).isoformat()
    # Asked later: a moment after now is refused (the log cannot answer for it yet).
    with freeze_time(start + timedelta(minutes=30)):
        then = cli_json(world.url, "resources", "get", "acme/alpha", "--at", between, token=ann)
        assert then["license"] == "MIT"
        at_first = cli_json(
            world.url, "resources", "get", "acme/alpha", "--at", before_any, token=ann
        )
        assert at_first["license"] is None
        over_http = world.api.client.get(
            "/v2/resources/acme/alpha", params={"at": between}, headers=Api.bearer(ann)
        )
        assert over_http.json()["license"] == "MIT"
    assert cli_json(world.url, "resources", "get", "acme/alpha", token=ann)["license"] == (
        "GPL-3.0-only"
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--license", "MIT OR Apache-2.0"], "invalid license 'MIT OR Apache-2.0'"),
        (["--license", "A" * 101], "invalid license"),
        (["--license", "-MIT"], "invalid license"),
        (["--data-class", "secret"], "unknown data class 'secret'"),
        (["--data-class", "DATA_CLASS_"], "unknown data class"),
        ([], "give a license, a data class or both"),
    ],
    ids=["expression", "too-long", "leading-dash", "unknown-class", "bare-prefix", "nothing"],
)
def test_bad_values_are_refused_in_one_line(world: World, args: list[str], fragment: str) -> None:
    before = world.head()
    result = world.cli("resources", "set", "acme/alpha", *args, token=world.api.ann)
    assert_one_line_error(result, 2, fragment)
    assert world.head() == before


@pytest.mark.parametrize(
    "body",
    [
        {"license": "bad license"},
        {"license": "x" * 101},
        {"dataClass": "DATA_CLASS_SECRET"},
        {"data_class": "public", "dataClass": "DATA_CLASS_PUBLIC"},
        {"license": 3},
        {"data_class": "public", "owner": "me"},
        {},
    ],
    ids=["shape", "too-long", "unknown-class", "twice", "not-text", "unknown-field", "empty"],
)
def test_bad_bodies_are_refused_in_one_line(world: World, body: dict[str, Any]) -> None:
    before = world.head()
    response = world.http("PATCH", "/v2/resources/acme/alpha", world.api.ann, body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["error"] == "invalid_request"
    assert "\n" not in answer["error_description"]
    assert world.head() == before


def test_setting_what_it_has_is_a_conflict_and_only_a_change_is_recorded(world: World) -> None:
    ann = world.api.ann
    cli_json(
        world.url,
        "resources",
        "set",
        "acme/alpha",
        "--license",
        "MIT",
        "--data-class",
        "private",
        token=ann,
    )
    before = world.head()
    same = world.cli(
        "resources", "set", "acme/alpha", "--license", "MIT", "--data-class", "PRIVATE", token=ann
    )
    assert_one_line_error(same, 5, "already has license MIT and data class private")
    conflict = world.http("PATCH", "/v2/resources/acme/alpha", ann, {"license": "MIT"})
    assert conflict.status_code == 409, conflict.text
    assert world.head() == before
    changed = world.http(
        "PATCH",
        "/v2/resources/acme/alpha",
        ann,
        {"license": "MIT", "dataClass": "DATA_CLASS_PUBLIC"},
    ).json()
    assert [e["event_type"] for e in changed["events"]] == ["ResourceDataClassSet"]
    assert (changed["license"], changed["data_class"]) == (None, "public")


def test_only_admins_of_the_resource_set_them(world: World) -> None:
    before = world.head()
    # bob writes on acme/alpha: enough to create there, not to set its license.
    result = world.cli("resources", "set", "acme/alpha", "--license", "MIT", token=world.api.bob)
    assert_one_line_error(result, 4, "needs admin on acme/alpha")
    # carol administers another org: acme's resource is not hers to find.
    response = world.http("PATCH", "/v2/resources/acme/alpha", world.api.carol, {"license": "MIT"})
    assert response.status_code == 403, response.text
    missing = world.http("PATCH", "/v2/resources/acme/nope", world.api.ann, {"license": "MIT"})
    assert missing.status_code == 404, missing.text
    assert world.head() == before


def test_the_data_classes_are_arunas() -> None:
    assert [d.value for d in DataClass] == ["public", "private", "workspace", "confidential"]
    assert DataClass.parse("DATA_CLASS_WORKSPACE") is DataClass.WORKSPACE
    assert DataClass.parse(" Public ") is DataClass.PUBLIC
    assert DataClass.CONFIDENTIAL.aruna_name == "DATA_CLASS_CONFIDENTIAL"


def test_json_answers_name_every_field(world: World) -> None:
    shown = json.loads(
        world.cli("resources", "get", "acme/alpha", "--json", token=world.api.ann).stdout
    )
    assert set(shown) == {"id", "path", "urn", "kind", "created_at", "license", "data_class"}
