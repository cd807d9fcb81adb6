"""Rotation with overlap: ``tokens rotate`` and ``service-accounts credentials rotate`` issue a
successor with the same principal, grants, name and lifetime and bring the old one's expiry
forward to the overlap's end; both work until then, only the successor after. ``audit
explain`` shows the chain. On SQLite and PostgreSQL, through the command line and HTTP, time
moved with freezegun."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from api_helpers import SA, Api, make_api
from helpers import assert_one_line_error, cli_head, cli_json, cli_run

ANN, BOB = "ann@acme.io", "bob@acme.io"
CI = "ci@acme.service.tokenledger"


@pytest.fixture
def url(database_url: str) -> str:
    for args in (
        ("db", "upgrade"),
        ("orgs", "create", "acme"),
        ("resources", "create", "acme/alpha"),
        ("users", "create", ANN),
        ("users", "create", BOB),
        ("orgs", "add-member", "acme", ANN, "--role", "admin"),
        ("orgs", "add-member", "acme", BOB),
        ("grants", "set", BOB, "acme/alpha", "write"),
        ("service-accounts", "create", "ci", "--org", "acme", "--resource", "acme/alpha"),
    ):
        result = cli_run(database_url, *args, *(("--level", "write") if "ci" in args else ()))
        assert result.exit_code == 0, result.output
    return database_url


def issue(url: str, *args: str, principal: str = CI, token: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = cli_json(
        url, "tokens", "create", "--principal", principal, *args, token=token
    )
    return found


def verify(url: str, secret: str) -> dict[str, Any]:
    result = cli_run(url, "tokens", "verify", "--json", stdin=secret)
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def test_the_successor_keeps_grants_name_and_lifetime_and_both_work_until_the_overlap_ends(
    url: str,
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    with freeze_time(start):
        old = issue(
            url,
            "--resource",
            "acme/alpha",
            "--level",
            "read",
            "--name",
            "deploy",
            "--expires-in",
            "90d",
        )
    with freeze_time(start + timedelta(days=10)):
        rotated = cli_json(url, "tokens", "rotate", old["token_id"], "--overlap", "2h")
    assert rotated["rotated_token_id"] == old["token_id"]
    assert at(rotated["rotated_expires_at"]) == start + timedelta(days=10, hours=2)
    assert rotated["token_id"] != old["token_id"]
    assert rotated["principal"] == CI
    assert rotated["kind"] == "service"
    assert rotated["name"] == "deploy"
    assert rotated["grants"] == old["grants"]
    assert at(rotated["expires_at"]) - at(rotated["issued_at"]) == timedelta(days=90)
    assert rotated["secret"] != old["secret"]
    with freeze_time(start + timedelta(days=10, hours=1, minutes=59)):
        assert verify(url, old["secret"])["active"] is True
        assert verify(url, rotated["secret"])["active"] is True
    with freeze_time(start + timedelta(days=10, hours=2, seconds=1)):
        answer = verify(url, old["secret"])
        assert answer["active"] is False
        assert answer["reason"] == "expired"
        assert verify(url, rotated["secret"])["active"] is True
        listed = cli_json(url, "tokens", "get", old["token_id"])
        assert at(listed["expires_at"]) == start + timedelta(days=10, hours=2)


def test_an_overlap_never_extends_and_zero_expires_now(url: str) -> None:
    old = issue(url, "--expires-in", "1h")
    rotated = cli_json(url, "tokens", "rotate", old["token_id"], "--overlap", "7d")
    assert rotated["rotated_expires_at"] == old["expires_at"]  # not extended to 7 days
    now = cli_json(url, "tokens", "rotate", rotated["token_id"], "--overlap", "0")
    assert verify(url, rotated["secret"])["reason"] == "expired"
    assert verify(url, now["secret"])["active"] is True


def test_a_token_without_expiry_rotates_into_one_without_expiry(url: str) -> None:
    old = issue(url, "--no-expiry")
    rotated = cli_json(url, "tokens", "rotate", old["token_id"])
    assert rotated["expires_at"] is None
    issued = at(rotated["issued_at"])
    assert at(rotated["rotated_expires_at"]) == issued + timedelta(hours=24)


def test_tokens_derived_from_the_rotated_token_end_with_it(url: str) -> None:
    parent = issue(url, "--expires-in", "30d")
    child = cli_json(url, "tokens", "create", "--parent", parent["token_id"])
    cli_json(url, "tokens", "rotate", parent["token_id"], "--overlap", "0")
    answer = verify(url, child["secret"])
    assert answer["active"] is False
    assert answer["reason"] == "expired"


def test_explain_shows_the_chain_of_rotations(url: str) -> None:
    first = issue(url)
    second = cli_json(url, "tokens", "rotate", first["token_id"])
    third = cli_json(url, "tokens", "rotate", second["token_id"])
    story = cli_json(url, "audit", "explain", second["token_id"])
    assert story["rotated_from"] == [first["token_id"]]
    assert story["rotated_to"] == [third["token_id"]]
    assert cli_json(url, "audit", "explain", first["token_id"])["rotated_to"] == [
        second["token_id"],
        third["token_id"],
    ]
    plain = cli_run(url, "audit", "explain", third["token_id"])
    assert plain.exit_code == 0, plain.output
    chain = f"rotation chain: {first['token_id']} -> {second['token_id']} -> [{third['token_id']}]"
    assert chain in plain.stdout
    assert f"token {first['token_id']} rotated: successor {second['token_id']}" in (
        cli_run(url, "audit", "explain", first["token_id"]).stdout
    )


@pytest.mark.parametrize(
    ("overlap", "code", "fragment"),
    [
        ("31d", 2, "the overlap is at most 30d"),
        ("-1h", 2, "invalid duration"),
        ("soon", 2, "invalid duration"),
        ("1000000000000d", 2, "invalid duration"),
    ],
)
def test_an_overlap_out_of_range_is_refused(
    url: str, overlap: str, code: int, fragment: str
) -> None:
    token = issue(url)
    head = cli_head(url)
    result = cli_run(url, "tokens", "rotate", token["token_id"], "--overlap", overlap)
    assert_one_line_error(result, code, fragment)
    assert cli_head(url) == head


def test_a_revoked_expired_rotated_or_unknown_token_is_not_rotated(url: str) -> None:
    revoked = issue(url)
    assert cli_run(url, "tokens", "revoke", revoked["token_id"]).exit_code == 0
    rotated = issue(url)
    cli_json(url, "tokens", "rotate", rotated["token_id"])
    start = datetime.now(UTC) + timedelta(minutes=1)
    with freeze_time(start):
        expiring = issue(url, "--expires-in", "1h")
    head = cli_head(url)
    with freeze_time(start + timedelta(hours=2)):
        cases = [
            (revoked["token_id"], 5, "is revoked"),
            (expiring["token_id"], 5, "has expired"),
            (rotated["token_id"], 5, "was rotated already: rotate its successor"),
            ("tok_0000000000000000", 3, "no token"),
            ("tok_bad", 2, "invalid token id"),
        ]
        for token_id, code, fragment in cases:
            assert_one_line_error(cli_run(url, "tokens", "rotate", token_id), code, fragment)
        assert cli_head(url) == head


def test_rotating_is_authorised_as_issuing_for_the_principal(url: str) -> None:
    ci_token = issue(url)
    bob = issue(url, "--resource", "acme/alpha", "--level", "write", principal=BOB)
    head = cli_head(url)
    # A member may not manage a service account's tokens.
    refused = cli_run(url, "tokens", "rotate", ci_token["token_id"], token=bob["secret"])
    assert_one_line_error(refused, 4)
    # A token rotating itself would make its successor its child, ending with it.
    itself = cli_run(url, "tokens", "rotate", bob["token_id"], token=bob["secret"])
    assert_one_line_error(itself, 4, f"acts through token {bob['token_id']}", "through another")
    assert cli_head(url) == head
    # Through another token of its own that outlives the successor (as issuing asks), a
    # person rotates their token.
    other = issue(
        url, "--resource", "acme/alpha", "--level", "write", "--expires-in", "60d", principal=BOB
    )
    rotated = cli_json(url, "tokens", "rotate", bob["token_id"], token=other["secret"])
    assert rotated["principal"] == BOB
    assert rotated["parent_id"] == other["token_id"]  # minted through it, as issuing does
    # The org admin rotates the service account's token.
    ann = issue(url, "--resource", "acme", "--level", "admin", "--expires-in", "1d", principal=ANN)
    by_admin = cli_json(url, "tokens", "rotate", ci_token["token_id"], token=ann["secret"])
    assert by_admin["principal"] == CI


def test_a_role_key_rotates_as_a_role_key(url: str) -> None:
    created = cli_run(url, "roles", "create", "acme", "readers", "--grant", "acme/alpha=read")
    assert created.exit_code == 0, created.output
    key = cli_json(url, "roles", "key", "new", "acme:readers")
    rotated = cli_json(url, "tokens", "rotate", key["access"], "--overlap", "0")
    assert rotated["kind"] == "role"
    assert rotated["principal"] == "acme:readers"
    assert rotated["expires_at"] is None
    assert rotated["secret"].startswith(rotated["token_id"] + ":")
    assert verify(url, key["token"])["reason"] == "expired"
    assert verify(url, rotated["secret"])["active"] is True


# -- client credentials ------------------------------------------------------------------------


def test_a_client_credential_rotates_with_two_secrets_during_the_overlap(url: str) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    with freeze_time(start):
        old = cli_json(
            url,
            "service-accounts",
            "credentials",
            "create",
            CI,
            "--name",
            "ci",
            "--expires-in",
            "30d",
        )
        new = cli_json(
            url, "service-accounts", "credentials", "rotate", old["client_id"], "--overlap", "1h"
        )
    assert new["rotated_client_id"] == old["client_id"]
    assert new["client_id"] != old["client_id"]
    assert new["account_id"] == CI
    assert new["name"] == "ci"
    assert at(new["expires_at"]) == start + timedelta(days=30)
    assert at(new["rotated_expires_at"]) == start + timedelta(hours=1)
    listed = cli_json(url, "service-accounts", "credentials", "list", CI, "--all")
    by_id = {row["client_id"]: row for row in listed}
    assert at(by_id[old["client_id"]]["expires_at"]) == start + timedelta(hours=1)
    again = cli_run(url, "service-accounts", "credentials", "rotate", old["client_id"])
    assert_one_line_error(again, 5, "was rotated already")


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def test_over_http_both_client_secrets_work_during_the_overlap_then_only_the_new_one(
    api: Api,
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    with freeze_time(start):
        old_id, old_secret = api.credential()
        response = api.client.post(
            f"/v2/service_accounts/{SA}/credentials/{old_id}/rotate",
            json={"overlap": "2h"},
            headers=api.admin,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        new_id, new_secret = body["client_id"], body["client_secret"]
        assert body["rotated_client_id"] == old_id
    with freeze_time(start + timedelta(hours=1)):
        old_access = api.exchange(old_id, old_secret)
        api.exchange(new_id, new_secret)
        assert api.introspect(old_access)["active"] is True
    with freeze_time(start + timedelta(hours=2, seconds=1)):
        form = {"grant_type": "client_credentials"}
        refused = api.client.post("/oauth2/token", data=form, auth=(old_id, old_secret))
        assert refused.status_code == 401, refused.text
        assert api.introspect(old_access)["active"] is False  # it lives while its source does
        api.exchange(new_id, new_secret)


def test_over_http_a_token_rotates_and_bad_input_is_a_4xx(api: Api) -> None:
    token_id = api.ledger.authenticate(api.sa_token).token_id
    response = api.client.post(
        f"/v2/tokens/{token_id}/rotate", json={"overlap": "0"}, headers=api.admin
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["rotated_token_id"] == token_id
    assert body["principal"] == SA
    assert body["secret"].startswith("tls_")
    assert api.ledger.verify(api.sa_token).reason == "expired"
    assert api.ledger.verify(body["secret"]).active
    for overlap, status in (("40d", 400), ("x", 400)):
        bad = api.client.post(
            f"/v2/tokens/{body['token_id']}/rotate", json={"overlap": overlap}, headers=api.admin
        )
        assert bad.status_code == status, bad.text
    again = api.client.post(f"/v2/tokens/{token_id}/rotate", headers=api.admin)
    assert again.status_code == 409, again.text
    member = api.client.post(f"/v2/tokens/{body['token_id']}/rotate", headers=api.bearer(api.bob))
    assert member.status_code == 403, member.text
