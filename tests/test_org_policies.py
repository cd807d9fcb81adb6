"""Orgs' token policies: ``orgs policy set/get/clear``. A dry run lists the live tokens that
break a policy and appends nothing; ``--existing cap`` brings exactly those within it (one
event each), ``leave`` leaves them; issuing outside a policy is refused naming the rule
(``tokens create``, role keys, client credentials, rotation); a policy that contradicts
itself is refused; only org admins and the operator set or read one. On SQLite and
PostgreSQL, through the command line and HTTP, time moved with freezegun."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from api_helpers import Api, make_api
from helpers import assert_one_line_error, cli_head, cli_json, cli_run

ANN, BOB = "ann@acme.io", "bob@acme.io"
CI = "ci@acme.service.tokenledger"


@pytest.fixture
def url(database_url: str) -> str:
    for args in (
        ("db", "upgrade"),
        ("orgs", "create", "acme"),
        ("orgs", "create", "other"),
        ("resources", "create", "acme/alpha"),
        ("users", "create", ANN),
        ("users", "create", BOB),
        ("orgs", "add-member", "acme", ANN, "--role", "admin"),
        ("orgs", "add-member", "acme", BOB),
        ("grants", "set", BOB, "acme/alpha", "write"),
        ("service-accounts", "create", "ci", "--org", "acme", "--resource", "acme/alpha"),
    ):
        extra = ("--level", "write") if "ci" in args else ()
        result = cli_run(database_url, *args, *extra)
        assert result.exit_code == 0, result.output
    return database_url


def issue(url: str, *args: str, principal: str = CI, token: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = cli_json(
        url, "tokens", "create", "--principal", principal, *args, token=token
    )
    return found


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def test_set_get_and_clear(url: str) -> None:
    assert cli_json(url, "orgs", "policy", "get", "acme") is None
    assert cli_run(url, "orgs", "policy", "get", "acme").stdout == "org acme has no policy\n"
    cli_json(
        url,
        "orgs", "policy", "set", "acme",
        "--max-lifetime", "service=90d",
        "--max-lifetime", "personal=30d",
        "--require-expiry",
        "--max-admin-lifetime", "7d",
        "--max-live-tokens", "20",
    )  # fmt: skip
    policy = cli_json(url, "orgs", "policy", "get", "acme")
    assert policy["max_lifetime"] == {"personal": "30d", "service": "90d"}
    assert policy["require_expiry"] is True
    assert policy["max_admin_lifetime"] == "7d"
    assert policy["max_live_tokens"] == 20
    plain = cli_run(url, "orgs", "policy", "get", "acme").stdout
    assert "service tokens live at most 90d" in plain
    assert "tokens with an admin grant live at most 7d" in plain
    # Setting again replaces it whole.
    cli_json(url, "orgs", "policy", "set", "acme", "--max-live-tokens", "5")
    policy = cli_json(url, "orgs", "policy", "get", "acme")
    assert policy["max_lifetime"] == {}
    assert policy["max_live_tokens"] == 5
    cli_json(url, "orgs", "policy", "clear", "acme")
    assert cli_json(url, "orgs", "policy", "get", "acme") is None
    assert_one_line_error(cli_run(url, "orgs", "policy", "clear", "acme"), 3, "has no policy")


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("--max-lifetime", "service=0d"), 2, "invalid duration"),
        (("--max-lifetime", "service=-3d"), 2, "invalid duration"),
        (("--max-lifetime", "service=200y"), 2, "at most 100 years"),
        (("--max-lifetime", "robots=30d"), 2, "unknown token kind 'robots'"),
        (("--max-lifetime", "service=30d", "--max-lifetime", "service=60d"), 2, "twice"),
        (("--max-lifetime", "service"), 2, "KIND=DURATION"),
        (("--max-live-tokens", "0"), 2, "between 1 and"),
        (("--max-live-tokens", "99999999"), 2, "between 1 and"),
        (("--max-admin-lifetime", "0s"), 2, "invalid duration"),
        ((), 2, "at least one rule"),
        (
            (
                *("--max-lifetime", "service=1d", "--max-lifetime", "personal=1d"),
                *("--max-lifetime", "derived=1h", "--max-lifetime", "role=1d"),
                *("--max-lifetime", "client=1d", "--max-admin-lifetime", "2d"),
            ),
            2,
            "it would never apply",
        ),
        (("--existing", "maybe", "--max-live-tokens", "3"), 2, "Invalid value"),
    ],
)
def test_a_policy_out_of_range_or_contradicting_itself_is_refused(
    url: str, args: tuple[str, ...], code: int, fragment: str
) -> None:
    head = cli_head(url)
    result = cli_run(url, "orgs", "policy", "set", "acme", *args)
    assert result.exit_code == code, result.output
    assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert cli_head(url) == head


def test_only_org_admins_and_the_operator_set_or_read_a_policy(url: str) -> None:
    bob = issue(url, "--resource", "acme/alpha", "--level", "write", principal=BOB)
    ci = issue(url)
    ann = issue(url, "--resource", "acme", "--level", "admin", "--expires-in", "1d", principal=ANN)
    head = cli_head(url)
    for secret in (bob["secret"], ci["secret"]):
        refused = cli_run(
            url, "orgs", "policy", "set", "acme", "--max-live-tokens", "3", token=secret
        )
        assert_one_line_error(refused, 4)
        assert_one_line_error(cli_run(url, "orgs", "policy", "get", "acme", token=secret), 4)
        dry = cli_run(
            url, "orgs", "policy", "set", "acme", "--max-live-tokens", "3", "--dry-run",
            token=secret,
        )  # fmt: skip
        assert_one_line_error(dry, 4)
    assert cli_head(url) == head
    other_admin = cli_run(
        url, "orgs", "policy", "set", "other", "--max-live-tokens", "3", token=ann["secret"]
    )
    assert_one_line_error(other_admin, 4)
    cli_json(url, "orgs", "policy", "set", "acme", "--max-live-tokens", "3", token=ann["secret"])
    assert cli_json(url, "orgs", "policy", "get", "acme", token=ann["secret"])["max_live_tokens"]


def test_dry_run_lists_the_offenders_and_appends_nothing_then_cap_shortens_exactly_those(
    url: str,
) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    with freeze_time(start):
        long_lived = issue(url, "--expires-in", "1y")
        forever = issue(url, "--no-expiry")
        fine = issue(url, "--expires-in", "30d")
        derived = cli_json(url, "tokens", "create", "--parent", forever["token_id"])
        personal = issue(
            url, "--resource", "acme/alpha", "--level", "read", "--expires-in", "60d", principal=BOB
        )
    policy = ("--max-lifetime", "service=90d", "--require-expiry")
    with freeze_time(start + timedelta(days=1)):
        head = cli_head(url)
        dry = cli_json(url, "orgs", "policy", "set", "acme", *policy, "--dry-run")
        assert cli_head(url) == head
        assert dry["dry_run"] is True
        offenders = {b["token_id"]: b for b in dry["breaches"]}
        assert set(offenders) == {long_lived["token_id"], forever["token_id"]}
        assert offenders[long_lived["token_id"]]["rule"] == "service tokens live at most 90d"
        assert at(offenders[long_lived["token_id"]]["capped_at"]) == start + timedelta(days=90)
        plain = cli_run(url, "orgs", "policy", "set", "acme", *policy, "--dry-run").stdout
        assert "2 live token(s) break this policy" in plain
        # Without a choice, nothing is set.
        refused = cli_run(url, "orgs", "policy", "set", "acme", *policy)
        assert_one_line_error(refused, 5, "2 live token(s) break this policy", "--existing")
        assert cli_head(url) == head
        capped = cli_json(url, "orgs", "policy", "set", "acme", *policy, "--existing", "cap")
    by_id = {row["token_id"]: at(row["expires_at"]) for row in capped["capped"]}
    assert by_id == {
        long_lived["token_id"]: start + timedelta(days=90),
        forever["token_id"]: start + timedelta(days=90),
        # Derived from a token now capped: it never outlives its parent.
        **(
            {derived["token_id"]: start + timedelta(days=90)}
            if at(derived["expires_at"]) > start + timedelta(days=90)
            else {}
        ),
    }
    events = cli_json(url, "audit", "--correlation-id", capped["correlation_id"])
    types = sorted(entry["event_type"] for entry in events)
    assert types == sorted(["OrgPolicySet", *(["TokenExpiryShortened"] * len(by_id))])
    assert at(cli_json(url, "tokens", "get", fine["token_id"])["expires_at"]) == start + timedelta(
        days=30
    )
    assert at(cli_json(url, "tokens", "get", personal["token_id"])["expires_at"]) == (
        start + timedelta(days=60)
    )
    with freeze_time(start + timedelta(days=90, seconds=1)):
        answer = json.loads(
            cli_run(url, "tokens", "verify", "--json", stdin=long_lived["secret"]).stdout
        )
        assert answer["reason"] == "expired"
        story = cli_run(url, "audit", "explain", forever["token_id"]).stdout
        assert "org_policy" in story


def test_leave_leaves_them_and_the_live_token_count_is_reported_not_capped(url: str) -> None:
    tokens = [issue(url, "--expires-in", "1y") for _ in range(3)]
    policy = ("--max-lifetime", "service=90d", "--max-live-tokens", "2")
    dry = cli_json(url, "orgs", "policy", "set", "acme", *policy, "--dry-run")
    over = [b for b in dry["breaches"] if b["capped_at"] is None]
    assert [b["token_id"] for b in over] == [tokens[2]["token_id"]]
    assert over[0]["rule"] == f"a principal holds at most 2 live tokens ({CI} holds 3)"
    left = cli_json(url, "orgs", "policy", "set", "acme", *policy, "--existing", "leave")
    assert left["capped"] == []
    for token in tokens:
        assert (
            cli_json(url, "tokens", "get", token["token_id"])["expires_at"] == token["expires_at"]
        )
    events = cli_json(url, "audit", "--correlation-id", left["correlation_id"])
    assert [entry["event_type"] for entry in events] == ["OrgPolicySet"]
    # Over the count, the account issues no more until it is back under it.
    refused = cli_run(url, "tokens", "create", "--principal", CI, "--expires-in", "1d")
    assert_one_line_error(refused, 4, "org acme's policy: a principal holds at most 2 live tokens")
    assert cli_run(url, "tokens", "revoke", tokens[0]["token_id"]).exit_code == 0
    assert cli_run(url, "tokens", "revoke", tokens[1]["token_id"]).exit_code == 0
    issue(url, "--expires-in", "1d")


def test_issuing_outside_each_rule_is_refused_naming_it(url: str) -> None:
    cli_json(
        url, "orgs", "policy", "set", "acme",
        "--max-lifetime", "service=90d",
        "--max-lifetime", "personal=30d",
        "--max-lifetime", "client=60d",
        "--require-expiry",
        "--max-admin-lifetime", "2d",
    )  # fmt: skip
    head = cli_head(url)
    cases = [
        (
            ("--principal", CI, "--expires-in", "91d"),
            "org acme's policy: service tokens live at most 90d",
        ),
        (("--principal", CI, "--no-expiry"), "org acme's policy: every token must expire"),
        (
            (
                "--principal", BOB, "--resource", "acme/alpha", "--level", "read",
                "--expires-in", "31d",
            ),
            "org acme's policy: personal tokens live at most 30d",
        ),
        (
            ("--principal", ANN, "--resource", "acme", "--level", "admin", "--expires-in", "3d"),
            "org acme's policy: tokens with an admin grant live at most 2d",
        ),
    ]  # fmt: skip
    for args, message in cases:
        assert_one_line_error(cli_run(url, "tokens", "create", *args), 4, message)
    credential = cli_run(url, "service-accounts", "credentials", "create", CI, "--expires-in", "1y")
    assert_one_line_error(credential, 4, "org acme's policy: client tokens live at most 60d")
    assert cli_head(url) == head
    # A default lifetime is brought within the policy rather than refused.
    default = issue(url)
    assert at(default["expires_at"]) - at(default["issued_at"]) == timedelta(days=90)
    admin = issue(url, "--resource", "acme", "--level", "admin", principal=ANN)
    assert at(admin["expires_at"]) - at(admin["issued_at"]) == timedelta(days=2)
    cred = cli_json(url, "service-accounts", "credentials", "create", CI)
    assert at(cred["expires_at"]) - at(cred["issued_at"]) == timedelta(days=60)


def test_role_keys_and_rotation_are_held_to_the_policy(url: str) -> None:
    created = cli_run(url, "roles", "create", "acme", "readers", "--grant", "acme/alpha=read")
    assert created.exit_code == 0, created.output
    old = issue(url, "--expires-in", "1y")
    cli_json(
        url, "orgs", "policy", "set", "acme", "--max-lifetime", "service=90d", "--existing", "leave"
    )
    head = cli_head(url)
    refused = cli_run(url, "tokens", "rotate", old["token_id"])
    assert_one_line_error(refused, 4, "org acme's policy: service tokens live at most 90d")
    assert cli_head(url) == head
    # A role key never expires: a policy requiring expiry refuses it, naming the rule...
    cli_json(url, "orgs", "policy", "set", "acme", "--require-expiry", "--existing", "leave")
    key = cli_run(url, "roles", "key", "new", "acme:readers")
    assert_one_line_error(key, 4, "org acme's policy: every token must expire")
    # ... and one bounding role keys gives them that lifetime.
    cli_json(
        url, "orgs", "policy", "set", "acme", "--max-lifetime", "role=30d", "--existing", "leave"
    )
    key_json = cli_json(url, "roles", "key", "new", "acme:readers")
    got = cli_json(url, "tokens", "get", key_json["access"])
    assert at(got["expires_at"]) - at(got["issued_at"]) == timedelta(days=30)


def test_a_user_token_is_held_to_every_org_it_has_a_grant_in(url: str) -> None:
    assert cli_run(url, "orgs", "add-member", "other", BOB).exit_code == 0
    assert cli_run(url, "resources", "create", "other/data").exit_code == 0
    assert cli_run(url, "grants", "set", BOB, "other/data", "read").exit_code == 0
    cli_json(url, "orgs", "policy", "set", "acme", "--max-lifetime", "personal=30d")
    cli_json(url, "orgs", "policy", "set", "other", "--max-lifetime", "personal=7d")
    both = (
        "--resource", "acme/alpha", "--level", "read", "--resource", "other/data", "--level", "read"
    )  # fmt: skip
    refused = cli_run(url, "tokens", "create", "--principal", BOB, *both, "--expires-in", "10d")
    assert_one_line_error(refused, 4, "org other's policy: personal tokens live at most 7d")
    only_acme = issue(
        url, "--resource", "acme/alpha", "--level", "read", "--expires-in", "10d", principal=BOB
    )
    assert only_acme["principal"] == BOB


# -- HTTP ----------------------------------------------------------------------------------------


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def test_over_http(api: Api) -> None:
    assert api.client.get("/v2/orgs/acme/policy", headers=api.admin).json() is None
    body = {"max_lifetime": {"service": "90d"}, "require_expiry": True}
    dry = api.client.put("/v2/orgs/acme/policy", json={**body, "dry_run": True}, headers=api.admin)
    assert dry.status_code == 200, dry.text
    assert [b["token_id"] for b in dry.json()["breaches"]] == [
        api.ledger.authenticate(api.sa_token).token_id
    ]
    conflict = api.client.put("/v2/orgs/acme/policy", json=body, headers=api.admin)
    assert conflict.status_code == 409, conflict.text
    capped = api.client.put(
        "/v2/orgs/acme/policy", json={**body, "existing": "cap"}, headers=api.admin
    )
    assert capped.status_code == 200, capped.text
    assert len(capped.json()["capped"]) == 1
    got = api.client.get("/v2/orgs/acme/policy", headers=api.admin).json()
    assert got["max_lifetime"] == {"service": "90d"}
    assert got["require_expiry"] is True
    sa_path = "/v2/service_accounts/ci@acme.service.tokenledger/tokens"
    too_long = api.client.post(sa_path, json={"expires_in": "100d"}, headers=api.admin)
    assert too_long.status_code == 403, too_long.text
    assert "service tokens live at most 90d" in too_long.text
    bad = {"max_lifetime": {"robots": "1d"}}
    assert api.client.put("/v2/orgs/acme/policy", json=bad, headers=api.admin).status_code == 400
    bad = {"max_live_tokens": 0}
    assert api.client.put("/v2/orgs/acme/policy", json=bad, headers=api.admin).status_code == 400
    member = api.client.get("/v2/orgs/acme/policy", headers=api.bearer(api.bob))
    assert member.status_code == 403, member.text
    sa = api.client.put(
        "/v2/orgs/acme/policy", json={"max_live_tokens": 3}, headers=api.bearer(api.sa_token)
    )
    assert sa.status_code == 403, sa.text
    cleared = api.client.delete("/v2/orgs/acme/policy", headers=api.admin)
    assert cleared.status_code == 200, cleared.text
    assert api.client.get("/v2/orgs/acme/policy", headers=api.admin).json() is None


def test_client_credentials_are_listed_and_capped_like_tokens(url: str) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)
    with freeze_time(start):
        long = cli_json(url, "service-accounts", "credentials", "create", CI, "--expires-in", "1y")
        short = cli_json(url, "service-accounts", "credentials", "create", CI, "--expires-in", "7d")
    policy = ("--max-lifetime", "client=30d")
    with freeze_time(start + timedelta(hours=1)):
        dry = cli_json(url, "orgs", "policy", "set", "acme", *policy, "--dry-run")
        assert [(b["token_id"], b["kind"]) for b in dry["breaches"]] == [
            (long["client_id"], "client")
        ]
        assert dry["breaches"][0]["rule"] == "client tokens live at most 30d"
        capped = cli_json(url, "orgs", "policy", "set", "acme", *policy, "--existing", "cap")
    assert [row["token_id"] for row in capped["capped"]] == [long["client_id"]]
    listed = cli_json(url, "service-accounts", "credentials", "list", CI)
    expiries = {row["client_id"]: at(row["expires_at"]) for row in listed}
    assert expiries == {
        long["client_id"]: start + timedelta(days=30),
        short["client_id"]: start + timedelta(days=7),
    }
    events = cli_json(url, "audit", "--correlation-id", capped["correlation_id"])
    assert sorted(entry["event_type"] for entry in events) == [
        "ClientCredentialExpiryShortened",
        "OrgPolicySet",
    ]
