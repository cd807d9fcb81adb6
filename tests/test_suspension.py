"""Suspension: disabling and enabling tokens, service accounts and client credentials.

The decisions are checked on the in-memory fold; what a user meets is checked over HTTP (the
verification answer ``disabled``, introspection, the OAuth2 token endpoint, a kept answer
dropped) and on the command line, on SQLite and PostgreSQL. The command line against a server
runs the same commands in ``test_cli_contract``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from api_helpers import SA, Api, make_api
from helpers import assert_one_line_error, assert_projections_match_log, cli_json, cli_run
from tokenledger.domain import commands as c
from tokenledger.domain import events as e
from tokenledger.domain.authority import standing
from tokenledger.domain.decide import Context, decide
from tokenledger.domain.model import Actor, ActorKind
from tokenledger.domain.permissions import Grant
from tokenledger.domain.secrets import TokenKind
from tokenledger.domain.state import LedgerState, fold
from tokenledger.errors import Conflict, PermissionDenied

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OPERATOR = Actor.operator("root")
ROOT, CHILD, GRANDCHILD = "tok_root000000000001", "tok_child00000000001", "tok_grand00000000001"
_ids = itertools.count(1)


def mint(kind: TokenKind) -> tuple[str, str]:
    n = next(_ids)
    return f"tok_{n:016d}", f"{n:064x}"


def token(token_id: str, parent_id: str | None = None, hours: int = 24) -> e.TokenIssued:
    return e.TokenIssued(
        token_id=token_id,
        principal=SA,
        kind="derived" if parent_id else "service",
        secret_hash=token_id.ljust(64, "0")[:64],
        grants=(Grant("acme/alpha", "read"),),
        issued_at=NOW,
        expires_at=NOW + timedelta(hours=hours),
        parent_id=parent_id,
        issued_by=None,
    )


WORLD = (
    e.OrgCreated(org="acme"),
    e.ResourceCreated(path="acme/alpha", kind="project"),
    e.ServiceAccountCreated(
        account_id=SA, org="acme", name="ci", permission=Grant("acme/alpha", "write")
    ),
    token(ROOT),
    token(CHILD, parent_id=ROOT),
    token(GRANDCHILD, parent_id=CHILD),
)


def given(*events: e.Event) -> LedgerState:
    return fold((event, NOW) for event in events)


def when(
    state: LedgerState, command: c.Command, actor: Actor = OPERATOR, now: datetime = NOW
) -> list[e.Event]:
    events = decide(command, state, Context(actor=actor, now=now, mint=mint))
    fold(((event, now) for event in events), state)
    return events


# -- the decisions ---------------------------------------------------------------------------


def test_disabling_a_token_disables_what_derives_from_it_and_enabling_brings_those_back() -> None:
    state = given(*WORLD)
    disabled = when(state, c.DisableToken(token_id=ROOT, reason="leak?"))
    assert [(d.token_id, d.cause) for d in disabled if isinstance(d, e.TokenDisabled)] == [
        (ROOT, None),
        (CHILD, ROOT),
        (GRANDCHILD, ROOT),
    ]
    assert all(state.tokens[t].disabled for t in (ROOT, CHILD, GRANDCHILD))
    enabled = when(state, c.EnableToken(token_id=ROOT))
    assert [ev.token_id for ev in enabled] == [ROOT, CHILD, GRANDCHILD]
    assert not any(state.tokens[t].disabled for t in (ROOT, CHILD, GRANDCHILD))


def test_a_token_disabled_by_itself_stays_disabled_when_its_parent_is_enabled() -> None:
    state = given(*WORLD)
    when(state, c.DisableToken(token_id=CHILD))
    [root_disabled] = when(state, c.DisableToken(token_id=ROOT))  # the child was already
    assert isinstance(root_disabled, e.TokenDisabled)
    with pytest.raises(Conflict, match=f"derives from token {ROOT}, which is disabled"):
        when(state, c.EnableToken(token_id=CHILD))  # never usable below a disabled token
    when(state, c.EnableToken(token_id=ROOT))
    assert state.tokens[CHILD].disabled
    assert state.tokens[CHILD].disabled_cause is None
    assert not state.tokens[ROOT].disabled


def test_a_token_disabled_with_its_parent_is_enabled_through_the_parent() -> None:
    state = given(*WORLD)
    when(state, c.DisableToken(token_id=ROOT))
    with pytest.raises(Conflict, match=f"derives from token {ROOT}, which is disabled"):
        when(state, c.EnableToken(token_id=CHILD))
    with pytest.raises(Conflict, match=f"parent token {ROOT} is disabled"):
        when(state, c.IssueToken(parent_id=ROOT))
    with pytest.raises(Conflict, match=f"token {ROOT} is disabled: enable it before rotating"):
        when(state, c.RotateToken(token_id=ROOT))  # a successor would be usable meanwhile


def test_enabling_never_brings_back_a_revoked_or_expired_token() -> None:
    state = given(*WORLD)
    when(state, c.DisableToken(token_id=ROOT))
    when(state, c.RevokeToken(token_id=ROOT))
    with pytest.raises(Conflict, match="is revoked"):
        when(state, c.EnableToken(token_id=ROOT))
    state = given(*WORLD)
    when(state, c.DisableToken(token_id=ROOT))
    with pytest.raises(Conflict, match="has expired"):
        when(state, c.EnableToken(token_id=ROOT), now=NOW + timedelta(days=2))


def test_twice_is_a_conflict() -> None:
    state = given(*WORLD)
    with pytest.raises(Conflict, match="is not disabled"):
        when(state, c.EnableToken(token_id=ROOT))
    when(state, c.DisableToken(token_id=ROOT))
    with pytest.raises(Conflict, match="already disabled"):
        when(state, c.DisableToken(token_id=ROOT))


def test_a_machine_disables_its_own_token_but_only_a_person_enables_one() -> None:
    state = given(*WORLD, token("tok_sibling000000001"))
    as_sibling = Actor(
        kind=ActorKind.SERVICE_ACCOUNT, principal=SA, token_id="tok_sibling000000001"
    )
    when(state, c.DisableToken(token_id=ROOT), actor=as_sibling)
    with pytest.raises(PermissionDenied, match="may not enable credentials"):
        when(state, c.EnableToken(token_id=ROOT), actor=as_sibling)


def test_a_suspended_account_acts_not_and_is_given_no_new_credential() -> None:
    state = given(
        *WORLD,
        e.EndpointCreated(endpoint_id="ep_1", name="proxy", url="https://proxy.example"),
        e.EndpointTrusted(account_id=SA, endpoint_id="ep_1"),
    )
    when(state, c.DisableServiceAccount(account_id=SA, reason="audit"))
    assert standing(state, SA) is None  # nothing it holds allows anything: S3, exchange, ...
    with pytest.raises(Conflict, match="is disabled: enable it first"):
        when(state, c.IssueToken(principal=SA))
    with pytest.raises(Conflict, match="is disabled: enable it first"):
        when(state, c.IssueClientCredential(account_id=SA))
    with pytest.raises(Conflict, match="is disabled: enable it first"):
        when(
            state,
            c.TrustIssuer(
                account_id=SA,
                issuer="https://ci.example",
                subject="repo:acme/site:*",
                audience="ledger",
            ),
        )
    with pytest.raises(Conflict, match="is disabled: enable it first"):
        when(state, c.IssueS3Credential(account_id=SA, endpoint="proxy"))
    with pytest.raises(Conflict, match="not disabled itself: its service account"):
        when(state, c.EnableToken(token_id=ROOT))
    with pytest.raises(Conflict, match="already disabled"):
        when(state, c.DisableServiceAccount(account_id=SA))
    when(state, c.EnableServiceAccount(account_id=SA))
    assert standing(state, SA) == (Grant("acme/alpha", "write"),)


# -- over HTTP --------------------------------------------------------------------------------


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def verify(api: Api, secret: str) -> dict[str, Any]:
    response = api.client.post("/v2/tokens/verify", json={"token": secret}, headers=api.admin)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def post(api: Api, path: str, headers: dict[str, str] | None = None, **body: Any) -> Any:
    return api.client.post(path, json=body or None, headers=headers or api.admin)


def token_id_of(api: Api, secret: str) -> str:
    found = api.ledger.authenticate(secret).token_id
    assert found is not None
    return found


def spare(api: Api, level: str) -> str:
    """Another token of bob's, with ``level`` on acme/alpha."""
    grants = [{"resource": "acme/alpha", "level": level}]
    issued = api.ledger.execute(c.IssueToken(principal="bob@acme.io", grants=grants), OPERATOR)
    assert issued.secret is not None
    return issued.secret


def test_a_disabled_token_answers_disabled_and_works_again_once_enabled(api: Api) -> None:
    bob_id = token_id_of(api, api.bob)
    bob, spare_bob = api.bearer(api.bob), api.bearer(spare(api, "write"))
    assert api.introspect(api.bob)["active"] is True  # kept by the answer cache
    response = post(api, f"/v2/tokens/{bob_id}/disable", headers=bob, reason="lost laptop")
    assert response.status_code == 200, response.text
    assert [ev["event_type"] for ev in response.json()["events"]] == ["TokenDisabled"]
    assert verify(api, api.bob)["reason"] == "disabled"
    assert api.introspect(api.bob) == {"active": False}
    assert api.client.get("/v2/orgs", headers=bob).status_code == 401
    shown = api.client.get(f"/v2/tokens/{bob_id}", headers=spare_bob)
    assert shown.json()["status"] == "disabled"
    assert shown.json()["disabled_at"] is not None

    head = api.ledger.store.head().position
    weaker = post(api, f"/v2/tokens/{bob_id}/enable", headers=api.bearer(spare(api, "read")))
    assert weaker.status_code == 403  # nobody brings back more than it holds
    assert "exceeds the acting token" in weaker.json()["error_description"]
    assert api.ledger.store.head().position == head + 1  # the spare token's issue only
    response = post(api, f"/v2/tokens/{bob_id}/enable", headers=spare_bob)
    assert response.status_code == 200, response.text
    assert verify(api, api.bob)["active"] is True
    assert api.introspect(api.bob)["active"] is True
    assert api.client.get(f"/v2/tokens/{bob_id}", headers=bob).json()["status"] == "active"
    assert_projections_match_log(api.ledger)


def test_what_the_operator_suspends_only_the_operator_lifts(api: Api) -> None:
    bob_id = token_id_of(api, api.bob)
    api.ledger.execute(c.DisableToken(token_id=bob_id, reason="suspected leak"), OPERATOR)
    head = api.ledger.store.head().position
    refused = post(api, f"/v2/tokens/{bob_id}/enable", headers=api.bearer(spare(api, "write")))
    assert refused.status_code == 403
    assert "suspension an operator made" in refused.json()["error_description"]
    assert api.ledger.store.head().position == head + 1  # the spare token's issue only
    api.ledger.execute(c.EnableToken(token_id=bob_id), OPERATOR)
    assert verify(api, api.bob)["active"] is True


def test_an_admins_suspension_of_an_account_token_is_lifted_by_an_admin(api: Api) -> None:
    sa_id = token_id_of(api, api.sa_token)
    assert post(api, f"/v2/tokens/{sa_id}/disable").status_code == 200  # ann, an org admin
    sibling = api.bearer(api.ledger.execute(c.IssueToken(principal=SA), OPERATOR).secret or "")
    refused = post(api, f"/v2/tokens/{sa_id}/enable", headers=sibling)
    assert refused.status_code == 403  # a machine lifts nothing
    assert post(api, f"/v2/tokens/{sa_id}/enable").status_code == 200


def test_a_suspended_account_loses_every_credential_at_once_and_gets_them_back(api: Api) -> None:
    sa_id = token_id_of(api, api.sa_token)
    client_id, client_secret = api.credential()
    access_token = api.exchange(client_id, client_secret)
    assert api.introspect(access_token)["active"] is True
    assert verify(api, api.sa_token)["active"] is True

    response = post(api, f"/v2/service_accounts/{SA}/disable", reason="audit")
    assert response.status_code == 200, response.text
    assert verify(api, api.sa_token)["reason"] == "disabled"
    assert api.introspect(access_token) == {"active": False}
    refused = api.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, client_secret),
    )
    assert refused.status_code == 401
    assert api.client.get(f"/v2/service_accounts/{SA}", headers=api.admin).json()["disabled_at"]
    listed = api.client.get(f"/v2/tokens/{sa_id}", headers=api.admin).json()
    assert (listed["status"], listed["disabled_cause"]) == ("disabled", SA)
    credentials = api.client.get(f"/v2/service_accounts/{SA}/credentials", headers=api.admin)
    assert {row["status"] for row in credentials.json()} == {"disabled"}
    issued = api.client.post(f"/v2/service_accounts/{SA}/tokens", json={}, headers=api.admin)
    assert issued.status_code == 409

    assert post(api, f"/v2/service_accounts/{SA}/enable").status_code == 200
    assert verify(api, api.sa_token)["active"] is True
    assert api.introspect(access_token)["active"] is True
    assert api.exchange(client_id, client_secret)


def test_a_disabled_client_credential_obtains_nothing_until_enabled(api: Api) -> None:
    client_id, client_secret = api.credential()
    other_id, other_secret = api.credential()
    access_token = api.exchange(client_id, client_secret)
    path = f"/v2/service_accounts/-/credentials/{client_id}"
    assert post(api, f"{path}/disable").status_code == 200
    assert api.introspect(access_token) == {"active": False}
    form = {"grant_type": "client_credentials"}
    refused = api.client.post("/oauth2/token", data=form, auth=(client_id, client_secret))
    assert refused.status_code == 401
    assert api.exchange(other_id, other_secret)  # the account's other credential works
    listed = api.client.get(f"/v2/service_accounts/{SA}/credentials", headers=api.admin).json()
    assert {row["client_id"]: row["status"] for row in listed}[client_id] == "disabled"

    assert post(api, f"{path}/enable").status_code == 200
    assert api.introspect(access_token)["active"] is True
    assert api.exchange(client_id, client_secret)


def test_enabling_leaves_a_token_revoked_or_expired_meanwhile_so(api: Api) -> None:
    sa_id = token_id_of(api, api.sa_token)
    assert post(api, f"/v2/tokens/{sa_id}/disable").status_code == 200
    assert api.client.delete(f"/v2/tokens/{sa_id}", headers=api.admin).status_code == 200
    head = api.ledger.store.head().position
    refused = post(api, f"/v2/tokens/{sa_id}/enable")
    assert refused.status_code == 409
    assert "is revoked" in refused.json()["error_description"]
    assert api.ledger.store.head().position == head
    assert verify(api, api.sa_token)["reason"] == "revoked"

    start = datetime.now(UTC)
    with freeze_time(start) as frozen:
        made = api.client.post(
            f"/v2/service_accounts/{SA}/tokens", json={"expires_in": "1h"}, headers=api.admin
        )
        assert made.status_code == 201, made.text
        short_id, short_secret = made.json()["token_id"], made.json()["secret"]
        assert post(api, f"/v2/tokens/{short_id}/disable").status_code == 200
        frozen.move_to(start + timedelta(hours=2))
        refused = post(api, f"/v2/tokens/{short_id}/enable")
        assert refused.status_code == 409
        assert "has expired" in refused.json()["error_description"]
        assert verify(api, short_secret)["reason"] == "expired"


def test_who_may_suspend(api: Api) -> None:
    head = api.ledger.store.head().position
    bob = api.bearer(api.bob)
    assert post(api, f"/v2/service_accounts/{SA}/disable", headers=bob).status_code == 403
    sa = api.bearer(api.sa_token)
    assert post(api, f"/v2/service_accounts/{SA}/disable", headers=sa).status_code == 403
    ann_id = token_id_of(api, api.ann)
    assert post(api, f"/v2/tokens/{ann_id}/disable", headers=bob).status_code == 403
    missing = post(api, "/v2/tokens/tok_0000000000000000/disable")
    assert missing.status_code == 404
    assert api.ledger.store.head().position == head


# -- on the command line ----------------------------------------------------------------------


def cli_verify(url: str, secret: str) -> dict[str, Any]:
    """``tokens verify --json`` of ``secret``: exit 0 when active, 1 when not."""
    result = cli_run(url, "tokens", "verify", "--json", stdin=secret + "\n")
    answer: dict[str, Any] = json.loads(result.stdout)
    assert result.exit_code == (0 if answer["active"] else 1), result.output
    return answer


def test_the_command_line_suspends_and_says_so(database_url: str, tmp_path: Path) -> None:
    url = database_url
    assert cli_run(url, "db", "upgrade").exit_code == 0
    cli_json(url, "orgs", "create", "acme")
    cli_json(url, "resources", "create", "acme/alpha")
    cli_json(url, "service-accounts", "create", "ci", "--org", "acme", "--resource", "acme/alpha",
             "--level", "write")  # fmt: skip
    issued = cli_json(url, "tokens", "create", "--principal", SA)
    token_id, secret = issued["token_id"], issued["secret"]

    result = cli_run(url, "tokens", "disable", token_id, "--reason", "rotating keys")
    assert result.exit_code == 0, result.output
    assert result.output == f"disabled token {token_id}\n"
    answer = cli_verify(url, secret)
    assert answer["reason"] == "disabled"
    assert cli_json(url, "tokens", "get", token_id)["status"] == "disabled"

    head = cli_json(url, "log", "head")["position"]
    again = cli_run(url, "tokens", "disable", token_id)
    assert_one_line_error(again, 5, "already disabled")
    assert cli_json(url, "log", "head")["position"] == head

    assert cli_json(url, "tokens", "enable", token_id)["enabled"] == [token_id]
    assert cli_verify(url, secret)["active"] is True

    assert cli_json(url, "service-accounts", "disable", SA)["disabled"] is True
    assert cli_verify(url, secret)["reason"] == "disabled"
    [listed] = cli_json(url, "service-accounts", "list")
    assert listed["disabled_at"] is not None
    cli_json(url, "service-accounts", "enable", SA)
    assert cli_verify(url, secret)["active"] is True

    client_id = cli_json(url, "service-accounts", "credentials", "create", SA)["client_id"]
    cli_json(url, "service-accounts", "credentials", "disable", client_id)
    [credential] = cli_json(url, "service-accounts", "credentials", "list", SA)
    assert credential["disabled_at"] is not None
    cli_json(url, "service-accounts", "credentials", "enable", client_id)
    [credential] = cli_json(url, "service-accounts", "credentials", "list", SA)
    assert credential["disabled_at"] is None


def test_listings_by_filter_and_a_tokens_story_show_suspension_as_it_is(api: Api) -> None:
    sa_id = token_id_of(api, api.sa_token)
    bob_id = token_id_of(api, api.bob)
    spare_id = token_id_of(api, spare(api, "read"))
    api.ledger.execute(c.DisableToken(token_id=spare_id), OPERATOR)
    story = api.ledger.explain_token(OPERATOR, bob_id).story
    assert not any(isinstance(entry.event, e.TokenDisabled) for entry in story)  # another's
    assert post(api, f"/v2/service_accounts/{SA}/disable").status_code == 200
    expiring = api.client.get("/v2/tokens/expiring?within=400d", headers=api.admin).json()
    assert {t["token_id"]: t["status"] for t in expiring}[sa_id] == "disabled"
    preview = post(api, "/v2/tokens/revoke", where={"principal": SA}, dry_run=True).json()
    assert {t["status"] for t in preview["tokens"]} == {"disabled"}


def test_an_unused_period_beyond_what_the_ledger_holds_is_refused_in_one_line(api: Api) -> None:
    head = api.ledger.store.head().position
    for dry_run in (True, False):
        refused = post(api, "/v2/tokens/revoke", where={"unused_for": "P9999999D"}, dry_run=dry_run)
        assert refused.status_code == 400, refused.text
        assert "earliest" in refused.json()["error_description"]
    assert api.ledger.store.head().position == head
