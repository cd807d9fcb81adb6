"""Aruna's words on the wire and on the command line: its request bodies (camelCase,
``projectId`` ..., ``PERMISSION_LEVEL_*``) on its paths, and the fields its clients read; on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api_helpers import OPERATOR, SA, Api, make_api
from helpers import assert_one_line_error, cli_json, cli_run, head_position
from tokenledger.domain import commands as c


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    for made in make_api(database_url, tmp_path):
        made.ledger.execute(c.CreateResource(path="acme/alpha/raw"), OPERATOR)
        yield made


def refused(api: Api, path: str, body: dict[str, Any], fragment: str) -> None:
    before = head_position(api.ledger)
    response = api.client.post(path, json=body, headers=api.admin)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error_description"]
    assert head_position(api.ledger) == before


def test_arunas_create_service_account_body(api: Api) -> None:
    body = {"name": "loader", "projectId": "acme/beta", "permissionLevel": "PERMISSION_LEVEL_ADMIN"}
    response = api.client.post("/v2/service_accounts", json=body, headers=api.admin)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["serviceAccount"] == {
        "svcAccountId": "loader@acme.service.tokenledger",
        "name": "loader",
        "projectId": "acme/beta",
        "permissionLevel": "PERMISSION_LEVEL_ADMIN",
    }
    seen = api.client.get("/v2/service_accounts/loader@acme.service.tokenledger", headers=api.admin)
    assert seen.json()["permission"] == {"resource": "acme/beta", "level": "admin"}


def test_arunas_create_service_account_token_body(api: Api) -> None:
    body = {
        "permission": {
            "projectId": "",
            "collectionId": "acme/alpha/raw",
            "datasetId": "",
            "objectId": "",
            "permissionLevel": "PERMISSION_LEVEL_READ",
        },
        "name": "string",
        "expiresAt": "2030-01-01T08:00:00.000Z",
    }
    response = api.client.post(f"/v2/service_accounts/{SA}/tokens", json=body, headers=api.admin)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["tokenSecret"] == answer["secret"]
    assert answer["token"]["permission"] == {
        "collectionId": "acme/alpha/raw",
        "permissionLevel": "PERMISSION_LEVEL_READ",
    }
    assert answer["token"]["expiresAt"].startswith("2030-01-01T08:00:00")
    assert answer["grants"] == [{"resource": "acme/alpha/raw", "level": "read"}]
    verified = api.ledger.verify(answer["secret"], resource="acme/alpha/raw")
    assert verified.allowed


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        (
            "/v2/service_accounts",
            {
                "name": "x",
                "projectId": "acme/beta",
                "permissionLevel": "PERMISSION_LEVEL_UNSPECIFIED",
            },
            "unknown level",
        ),
        (
            "/v2/service_accounts",
            {
                "name": "x",
                "projectId": "acme/beta",
                "permissionLevel": "PERMISSION_LEVEL_ADMIN",
                "licenseTag": "CC-BY",
            },
            "licenseTag",
        ),
        (
            f"/v2/service_accounts/{SA}/tokens",
            {"permission": {"permissionLevel": "PERMISSION_LEVEL_READ"}, "name": "t"},
            "name a projectId",
        ),
        (
            f"/v2/service_accounts/{SA}/tokens",
            {"permission": {"datasetId": "acme/alpha/raw", "permissionLevel": "READ_ALL"}},
            "unknown level",
        ),
    ],
    ids=["unspecified-level", "unknown-field", "no-resource", "bad-level"],
)
def test_arunas_bodies_are_refused_in_one_line_when_wrong(
    api: Api, path: str, body: dict[str, Any], fragment: str
) -> None:
    refused(api, path, body, fragment)


def test_arunas_level_names_on_the_command_line(database_url: str) -> None:
    for args in (
        ("db", "upgrade"),
        ("orgs", "create", "acme"),
        ("resources", "create", "acme/alpha"),
    ):
        assert cli_run(database_url, *args).exit_code == 0
    created = cli_json(
        database_url,
        "service-accounts",
        "create",
        "ci",
        "--org",
        "acme",
        "--resource",
        "acme/alpha",
        "--level",
        "PERMISSION_LEVEL_WRITE",
    )
    assert created["permission"] == {"resource": "acme/alpha", "level": "write"}
    wrong = cli_run(
        database_url, "service-accounts", "create", "cd", "--org", "acme", "--resource",
        "acme/alpha", "--level", "PERMISSION_LEVEL_UNSPECIFIED",
    )  # fmt: skip
    assert_one_line_error(wrong, 2, "unknown level")
