"""A token with an admin grant that lives longer than 7 days is issued with a one-line
warning (Dyff's documentation warns against long-lived highly-privileged tokens), on the
command line (stderr; ``--json`` carries it) and over HTTP; ``--yes-long-lived`` silences
it. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_helpers import Api, make_api
from helpers import cli_run

ANN = "ann@acme.io"


@pytest.fixture
def url(database_url: str) -> str:
    for args in (
        ("db", "upgrade"),
        ("orgs", "create", "acme"),
        ("users", "create", ANN),
        ("orgs", "add-member", "acme", ANN, "--role", "admin"),
    ):
        assert cli_run(database_url, *args).exit_code == 0
    return database_url


def create(url: str, *args: str) -> tuple[str, dict[str, object]]:
    result = cli_run(url, "tokens", "create", "--principal", ANN, *args, "--json")
    assert result.exit_code == 0, result.output
    return result.stderr, json.loads(result.stdout)


def test_a_long_lived_admin_token_is_issued_with_a_warning(url: str) -> None:
    stderr, issued = create(url, "--resource", "acme", "--level", "admin")
    lines = stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("tokenledger: warning: token ")
    assert "admin on acme and lives 30 days" in lines[0]
    assert issued["warning"] == lines[0].removeprefix("tokenledger: warning: ")
    plain = cli_run(url, "tokens", "create", "--principal", ANN, "--role", "acme:admin")
    assert plain.exit_code == 0
    assert "warning: " in plain.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--resource", "acme", "--level", "admin", "--yes-long-lived"),
        ("--resource", "acme", "--level", "admin", "--expires-in", "7d"),
        ("--resource", "acme", "--level", "write"),
    ],
    ids=["silenced", "a-week", "not-admin"],
)
def test_no_warning_otherwise(url: str, args: tuple[str, ...]) -> None:
    stderr, issued = create(url, *args)
    assert stderr == ""
    assert "warning" not in issued


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def test_over_http_the_answer_carries_the_warning(api: Api) -> None:
    long = {"grants": [{"resource": "acme", "level": "admin"}]}
    answer = api.client.post(f"/v2/users/{ANN}/tokens", json=long, headers=api.admin).json()
    assert "lives 30 days" in answer["warning"]
    short = {**long, "expires_in": "1d"}
    answer = api.client.post(f"/v2/users/{ANN}/tokens", json=short, headers=api.admin).json()
    assert answer["warning"] is None
