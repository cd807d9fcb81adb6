"""Logging in through the org's OpenID Connect provider (a real one, on loopback), and the
sessions it starts: over HTTP, on SQLite and PostgreSQL.

Every refused login leaves the log as it was; a reused refresh token appends exactly the
session's end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from freezegun import freeze_time

from api_helpers import OPERATOR, Api, make_api
from helpers import assert_projections_match_log, head_position
from login_helpers import (
    Login,
    back_to_cli,
    browser_login,
    local,
    log_in,
    redeem,
    refresh,
    register_provider,
    to_provider,
)
from oidc_provider import OidcProvider
from tokenledger.domain import commands as c
from tokenledger.domain.events import SessionEnded, SessionRefreshed, SessionStarted
from tokenledger.errors import PermissionDenied
from tokenledger.projections.audit_queries import AuditQuery

ANN = "ann@acme.io"
BOB = "bob@acme.io"
CAROL = "carol@other.io"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider() as running:
        yield running


@pytest.fixture
def api(database_url: str, tmp_path: Path, provider: OidcProvider) -> Iterator[Api]:
    for made in make_api(database_url, tmp_path):
        register_provider(made, provider)
        yield made


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def events_of(api: Api, subject: str) -> list[Any]:
    return [
        entry.event
        for entry in api.ledger.audit_search(
            OPERATOR, AuditQuery(subject=subject, oldest_first=True)
        )
    ]


def oauth_error(response: Any, code: str, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    description: str = body["error_description"]
    assert "\n" not in description
    return description


# -- a login ---------------------------------------------------------------------------------


def test_a_login_starts_a_session_with_an_access_token_and_a_refresh_token(
    api: Api, provider: OidcProvider
) -> None:
    body = log_in(api, provider, ANN)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["refresh_token"].startswith("tlr_")
    assert body["sub"] == ANN
    assert body["org"] == "acme"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == claims["email"] == ANN
    assert claims["org"] == "acme"
    assert claims["groups"] == ["acme:admin"]
    assert claims["sid"] == body["session_id"]
    # Descartes' identity: a stable namespace and the ACL subjects, in the token and whoami.
    namespace = hashlib.sha1(ANN.encode(), usedforsecurity=False).hexdigest()
    assert claims["namespace"] == namespace
    assert claims["acl_subjects"] == [f"user:{ANN}", "org:acme", "group:acme:admin"]
    assert claims["grants"] == [{"resource": "acme", "level": "admin"}]

    who = api.client.get("/v2/whoami", headers=bearer(body["access_token"])).json()
    assert who["sub"] == ANN
    assert who["org"] == "acme"
    assert who["groups"] == ["acme:admin"]
    assert who["session_id"] == body["session_id"]
    assert who["namespace"] == namespace
    assert who["acl_subjects"] == claims["acl_subjects"]
    # The session's access token manages what its user may, as a ledger token would.
    members = api.client.get("/v2/orgs/acme/members", headers=bearer(body["access_token"]))
    assert members.status_code == 200, members.text

    (started,) = events_of(api, body["session_id"])
    assert isinstance(started, SessionStarted)
    assert started.principal == ANN
    assert started.issuer == provider.issuer
    # Only the refresh token's hash is recorded.
    assert body["refresh_token"] not in repr(started)


def test_a_session_reaches_only_the_org_whose_provider_vouched_for_it(
    api: Api, provider: OidcProvider
) -> None:
    api.ledger.execute(c.AddMember(org="other", email=BOB, role="admin"), OPERATOR)
    body = log_in(api, provider, BOB)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["grants"] == [{"resource": "acme/alpha", "level": "write"}]
    assert claims["groups"] == ["acme:member"]
    other = api.client.get("/v2/orgs/other/members", headers=bearer(body["access_token"]))
    assert other.status_code == 403, other.text


def test_the_session_access_token_introspects_active_with_its_org(
    api: Api, provider: OidcProvider
) -> None:
    body = log_in(api, provider, BOB)
    answer = api.introspect(body["access_token"], resource="acme/alpha/raw", level="write")
    assert answer["active"] is True
    assert answer["sub"] == BOB
    assert answer["org"] == "acme"
    assert answer["allowed"] is True


# -- refused logins: nothing appended ---------------------------------------------------------


def test_a_wrong_pkce_verifier_is_invalid_grant(api: Api, provider: OidcProvider) -> None:
    login = Login.new()
    back = browser_login(api, provider, login, ANN, email=ANN, email_verified=True)
    before = head_position(api.ledger)
    other = Login.new()
    described = oauth_error(
        redeem(api, login, back["code"], code_verifier=other.verifier), "invalid_grant"
    )
    assert "code_verifier" in described
    assert head_position(api.ledger) == before


def test_a_login_code_is_spent_once(api: Api, provider: OidcProvider) -> None:
    login = Login.new()
    back = browser_login(api, provider, login, ANN, email=ANN, email_verified=True)
    assert redeem(api, login, back["code"]).status_code == 200
    before = head_position(api.ledger)
    oauth_error(redeem(api, login, back["code"]), "invalid_grant")
    assert head_position(api.ledger) == before


def test_a_replayed_provider_code_is_refused_by_the_provider(
    api: Api, provider: OidcProvider
) -> None:
    login = Login.new()
    provider.set_user(ANN, email=ANN, email_verified=True)
    location = provider.login(to_provider(api, login), ANN)
    assert "code" in back_to_cli(api, location)
    again = back_to_cli(api, location)
    assert again["error"] == "access_denied"
    assert "invalid_grant" in again["error_description"]
    assert again["state"] == login.state


def test_a_code_for_another_redirect_uri_is_invalid_grant(api: Api, provider: OidcProvider) -> None:
    login = Login.new()
    back = browser_login(api, provider, login, ANN, email=ANN, email_verified=True)
    response = redeem(api, login, back["code"], redirect_uri="http://127.0.0.1:1/other")
    assert "redirect_uri" in oauth_error(response, "invalid_grant")


def test_an_expired_login_code_is_invalid_grant(api: Api, provider: OidcProvider) -> None:
    login = Login.new()
    with freeze_time(datetime.now(UTC)) as frozen:
        back = browser_login(api, provider, login, ANN, email=ANN, email_verified=True)
        frozen.tick(timedelta(minutes=3))
        assert "expired" in oauth_error(redeem(api, login, back["code"]), "invalid_grant")


def test_a_forged_login_code_is_invalid_grant(api: Api, provider: OidcProvider) -> None:
    login = Login.new()
    forged = provider.sign({"sub": ANN, "org": "acme", "iss": "x", "exp": 2_000_000_000})
    before = head_position(api.ledger)
    oauth_error(redeem(api, login, forged), "invalid_grant")
    assert head_position(api.ledger) == before


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"email_verified": False}, "verified"),
        ({"nonce": "not-this-login"}, "nonce"),
        ({"aud": "another-client"}, "not issued to"),
        ({"exp": 1_000_000_000}, "expired"),
        ({"iss": "https://elsewhere.example"}, "issued by"),
    ],
    ids=["email-unverified", "wrong-nonce", "wrong-audience", "expired", "wrong-issuer"],
)
def test_an_id_token_the_ledger_cannot_trust_ends_the_login(
    api: Api, provider: OidcProvider, claims: dict[str, Any], reason: str
) -> None:
    before = head_position(api.ledger)
    login = Login.new()
    back = browser_login(
        api, provider, login, ANN, **{"email": ANN, "email_verified": True, **claims}
    )
    assert back["error"] == "access_denied"
    assert reason in back["error_description"]
    assert back["state"] == login.state
    assert head_position(api.ledger) == before


@pytest.mark.parametrize(
    ("email", "reason"),
    [(CAROL, "not a member"), ("nobody@acme.io", "no account")],
    ids=["outside-the-org", "unknown"],
)
def test_only_a_member_of_the_org_logs_in(
    api: Api, provider: OidcProvider, email: str, reason: str
) -> None:
    before = head_position(api.ledger)
    login = Login.new()
    back = browser_login(api, provider, login, email, email=email, email_verified=True)
    assert reason in oauth_error(redeem(api, login, back["code"]), "invalid_grant")
    assert head_position(api.ledger) == before


def test_a_disabled_user_cannot_log_in(api: Api, provider: OidcProvider) -> None:
    api.ledger.execute(c.DisableUser(email=BOB), OPERATOR)
    before = head_position(api.ledger)
    login = Login.new()
    back = browser_login(api, provider, login, BOB, email=BOB, email_verified=True)
    assert "disabled" in oauth_error(redeem(api, login, back["code"]), "invalid_grant")
    assert head_position(api.ledger) == before


def test_the_authorize_endpoint_redirects_only_to_a_loopback_or_its_own_page(api: Api) -> None:
    login = Login.new()
    for redirect in ("https://evil.example/cb", "http://10.0.0.1:80/cb", "http://127.0.0.1/cb"):
        params = login.authorize_params(redirect_uri=redirect)
        response = api.client.get("/oauth2/authorize", params=params, follow_redirects=False)
        assert response.status_code == 400, redirect
        assert "location" not in response.headers


def test_an_org_without_a_provider_is_told_to_the_command_line(api: Api) -> None:
    login = Login.new()
    response = api.client.get(
        "/oauth2/authorize", params=login.authorize_params(org="other"), follow_redirects=False
    )
    assert response.status_code == 303
    back = OidcProvider.redirect_params(response.headers["location"])
    assert back["error"] == "access_denied"
    assert "set-idp" in back["error_description"]
    assert back["state"] == login.state


def test_a_forged_state_at_the_callback_is_refused_in_the_browser(api: Api) -> None:
    response = api.client.get(
        "/oauth2/callback", params={"state": "forged", "code": "x"}, follow_redirects=False
    )
    assert response.status_code == 400
    assert "location" not in response.headers


def test_the_code_page_shows_the_code_for_no_browser_logins(
    api: Api, provider: OidcProvider
) -> None:
    login = Login.new()
    page = "http://testserver/oauth2/code"
    params = login.authorize_params(redirect_uri=page)
    response = api.client.get("/oauth2/authorize", params=params, follow_redirects=False)
    provider.set_user(ANN, email=ANN, email_verified=True)
    location = provider.login(response.headers["location"], ANN)
    shown = api.client.get(local(location), follow_redirects=True)
    assert shown.status_code == 200
    code = OidcProvider.redirect_params(str(shown.url))["code"]
    assert code in shown.text
    assert redeem(api, login, code, redirect_uri=page).status_code == 200


# -- refresh, rotation and theft ---------------------------------------------------------------


def test_a_refresh_rotates_the_refresh_token(api: Api, provider: OidcProvider) -> None:
    first = log_in(api, provider, ANN)
    response = refresh(api, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["session_id"] == first["session_id"]
    assert api.client.get("/v2/whoami", headers=bearer(second["access_token"])).status_code == 200
    kinds = [type(e) for e in events_of(api, first["session_id"])]
    assert kinds == [SessionStarted, SessionRefreshed]


def test_a_reused_refresh_token_ends_the_whole_session(api: Api, provider: OidcProvider) -> None:
    first = log_in(api, provider, ANN)
    second = refresh(api, first["refresh_token"]).json()
    before = head_position(api.ledger)
    described = oauth_error(refresh(api, first["refresh_token"]), "invalid_grant")
    assert "used already" in described
    # Exactly the session's end was appended, and everything of the session stops.
    assert head_position(api.ledger) == before + 1
    ended = events_of(api, first["session_id"])[-1]
    assert isinstance(ended, SessionEnded)
    assert ended.reason == "refresh_token_reused"
    oauth_error(refresh(api, second["refresh_token"]), "invalid_grant")
    whoami = api.client.get("/v2/whoami", headers=bearer(second["access_token"]))
    assert whoami.status_code == 401
    # The sessions' tables hold what a fold of the log gives (rebuild equals live).
    state = assert_projections_match_log(api.ledger)
    assert state.sessions[first["session_id"]].revoked


def test_an_unknown_or_malformed_refresh_token_is_invalid_grant(api: Api) -> None:
    before = head_position(api.ledger)
    oauth_error(refresh(api, "tlr_" + "A" * 38), "invalid_grant")
    oauth_error(refresh(api, "not a token"), "invalid_grant")
    assert head_position(api.ledger) == before


def test_an_access_token_expires_in_an_hour_and_a_refresh_gives_another(
    api: Api, provider: OidcProvider
) -> None:
    with freeze_time(datetime.now(UTC)) as frozen:
        body = log_in(api, provider, ANN)
        frozen.tick(timedelta(minutes=61))
        expired = api.client.get("/v2/whoami", headers=bearer(body["access_token"]))
        assert expired.status_code == 401
        assert "expired" in expired.json()["error_description"]
        again = refresh(api, body["refresh_token"]).json()
        assert (
            api.client.get("/v2/whoami", headers=bearer(again["access_token"])).status_code == 200
        )


def test_a_session_lives_at_most_its_orgs_lifetime(api: Api, provider: OidcProvider) -> None:
    register_provider(api, provider, session_lifetime=timedelta(days=1))
    with freeze_time(datetime.now(UTC)) as frozen:
        body = log_in(api, provider, ANN)
        started = datetime.fromisoformat(body["session_expires_at"])
        assert started - datetime.now(UTC) == timedelta(days=1)
        frozen.tick(timedelta(hours=23, minutes=30))
        late = refresh(api, body["refresh_token"]).json()
        # The last access token ends with the session, not an hour later.
        assert late["expires_in"] == 30 * 60
        frozen.tick(timedelta(hours=1))
        assert "expired" in oauth_error(refresh(api, late["refresh_token"]), "invalid_grant")


def test_a_session_lives_at_most_thirty_days(api: Api, provider: OidcProvider) -> None:
    with freeze_time(datetime.now(UTC)) as frozen:
        body = log_in(api, provider, ANN)
        assert datetime.fromisoformat(body["session_expires_at"]) - datetime.now(UTC) == (
            timedelta(days=30)
        )
        frozen.tick(timedelta(days=30, seconds=1))
        oauth_error(refresh(api, body["refresh_token"]), "invalid_grant")


# -- ending sessions ------------------------------------------------------------------------------


def test_logging_out_ends_the_session(api: Api, provider: OidcProvider) -> None:
    body = log_in(api, provider, ANN)
    response = api.client.post(
        "/oauth2/revoke", data={"token": body["refresh_token"], "token_type_hint": "refresh_token"}
    )
    assert response.status_code == 200, response.text
    ended = events_of(api, body["session_id"])[-1]
    assert isinstance(ended, SessionEnded)
    assert ended.reason == "logged_out"
    assert api.client.get("/v2/whoami", headers=bearer(body["access_token"])).status_code == 401
    oauth_error(refresh(api, body["refresh_token"]), "invalid_grant")
    # Logging out twice is answered like the first time, and appends nothing; so is a
    # mistyped refresh token, which needs no Authorization header either.
    before = head_position(api.ledger)
    again = api.client.post("/oauth2/revoke", data={"token": body["refresh_token"]})
    assert again.status_code == 200
    mistyped = body["refresh_token"][:-1] + ("A" if body["refresh_token"][-1] != "A" else "B")
    assert api.client.post("/oauth2/revoke", data={"token": mistyped}).status_code == 200
    assert head_position(api.ledger) == before


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (c.DisableUser(email=BOB), "user_disabled"),
        (c.RemoveMember(org="acme", email=BOB), "member_removed"),
    ],
    ids=["disabled", "removed"],
)
def test_the_cascade_that_revokes_a_users_tokens_ends_their_sessions(
    api: Api, provider: OidcProvider, command: c.Command, reason: str
) -> None:
    body = log_in(api, provider, BOB)
    result = api.ledger.execute(command, OPERATOR)
    ended = [e for e in result.events if isinstance(e, SessionEnded)]
    assert [(e.session_id, e.reason) for e in ended] == [(body["session_id"], reason)]
    assert api.client.get("/v2/whoami", headers=bearer(body["access_token"])).status_code == 401
    oauth_error(refresh(api, body["refresh_token"]), "invalid_grant")


def test_another_provider_ends_the_sessions_the_old_one_started(
    api: Api, provider: OidcProvider
) -> None:
    body = log_in(api, provider, BOB)
    result = api.ledger.execute(
        c.build(
            c.SetIdentityProvider,
            org="acme",
            issuer="https://login.acme.example",
            oidc_client_id="ledger",
        ),
        OPERATOR,
    )
    assert [e.reason for e in result.events if isinstance(e, SessionEnded)] == ["provider_changed"]
    assert api.client.get("/v2/whoami", headers=bearer(body["access_token"])).status_code == 401


def test_an_admin_lists_and_ends_a_members_session(api: Api, provider: OidcProvider) -> None:
    body = log_in(api, provider, BOB)
    listed = api.client.get(f"/v2/users/{BOB}/sessions", headers=api.admin)
    assert [s["session_id"] for s in listed.json()] == [body["session_id"]]
    outsider = api.client.get(f"/v2/users/{BOB}/sessions", headers=bearer(api.carol))
    assert outsider.status_code == 403
    ended = api.client.delete(f"/v2/sessions/{body['session_id']}", headers=api.admin)
    assert ended.status_code == 200, ended.text
    assert api.client.get("/v2/whoami", headers=bearer(body["access_token"])).status_code == 401
    kept = api.client.get(
        f"/v2/users/{BOB}/sessions", params={"include_ended": "true"}, headers=api.admin
    ).json()
    assert kept[0]["status"] == "ended"
    assert kept[0]["ended_reason"] == "requested"


def test_the_audit_shows_who_logged_in(api: Api, provider: OidcProvider) -> None:
    body = log_in(api, provider, BOB)
    refresh(api, body["refresh_token"])
    entries = api.client.get(
        "/v2/audit", params={"subject": BOB, "type": "SessionStarted"}, headers=api.admin
    )
    assert entries.status_code == 200, entries.text
    assert [e["data"]["session_id"] for e in entries.json()] == [body["session_id"]]


def test_the_login_client_is_named_in_the_metadata(api: Api) -> None:
    metadata = api.client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["authorization_endpoint"].endswith("/oauth2/authorize")
    assert "refresh_token" in metadata["grant_types_supported"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    # The command line is a public client: it authenticates to no endpoint.
    assert "none" in metadata["token_endpoint_auth_methods_supported"]


# -- the provider, administered over HTTP ------------------------------------------------------


def test_an_admin_sets_the_provider_and_its_secret_stays_out_of_the_log(
    api: Api, provider: OidcProvider
) -> None:
    secret = "s3cr3t-of-the-provider"
    body = {
        "issuer": "https://login.acme.example",
        "client_id": "other-client",
        "client_secret": secret,
    }
    refused = api.client.put("/v2/orgs/acme/identity-provider", json=body, headers=bearer(api.bob))
    assert refused.status_code == 403
    assert api.keys.ring().provider_secrets["acme"] != secret
    response = api.client.put(
        "/v2/orgs/acme/identity-provider",
        json={**body, "session_lifetime": "7d"},
        headers=api.admin,
    )
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["client_id"] == "other-client"
    assert shown["client_secret"] is True
    assert shown["session_lifetime_seconds"] == 7 * 86400
    assert secret not in response.text
    assert api.keys.ring().provider_secrets["acme"] == secret
    with api.ledger.store.engine.connect() as connection:
        logged = " ".join(str(row) for row in connection.exec_driver_sql("SELECT * FROM events"))
    assert secret not in logged
    # Only a new secret for the same provider: kept, nothing recorded.
    before = head_position(api.ledger)
    rotated = {**body, "client_secret": "rotated-secret", "session_lifetime": "7d"}
    again = api.client.put("/v2/orgs/acme/identity-provider", json=rotated, headers=api.admin)
    assert again.status_code == 200, again.text
    assert head_position(api.ledger) == before
    assert api.keys.ring().provider_secrets["acme"] == "rotated-secret"
    seen = api.client.get("/v2/orgs/acme/identity-provider", headers=bearer(api.bob))
    assert seen.status_code == 403
    assert api.client.get("/v2/orgs/acme/identity-provider", headers=api.admin).status_code == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"issuer": "http://idp.example.com", "client_id": "x"}, "https"),
        ({"issuer": "https://idp.example.com?x=1", "client_id": "x"}, "query"),
        ({"issuer": "https://idp.example.com", "client_id": "x", "session_lifetime": "31d"}, "30"),
        ({"issuer": "https://idp.example.com", "client_id": ""}, "client"),
    ],
    ids=["plain-http", "query", "too-long-a-session", "no-client-id"],
)
def test_a_bad_provider_is_refused_and_nothing_is_kept(
    api: Api, body: dict[str, str], fragment: str
) -> None:
    before = head_position(api.ledger)
    response = api.client.put("/v2/orgs/acme/identity-provider", json=body, headers=api.admin)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error_description"]
    assert head_position(api.ledger) == before


def test_a_token_made_through_a_session_outlives_it_and_names_it(
    api: Api, provider: OidcProvider
) -> None:
    body = log_in(api, provider, BOB)
    created = api.client.post(
        f"/v2/users/{BOB}/tokens",
        json={"grants": [{"resource": "acme/alpha", "level": "read"}], "name": "ci"},
        headers=bearer(body["access_token"]),
    )
    assert created.status_code == 201, created.text
    token = created.json()
    assert token["parent_id"] is None
    issued = next(e for e in events_of(api, token["token_id"]) if type(e).__name__ == "TokenIssued")
    assert issued.issued_by == body["session_id"]
    # Beyond the session's grants: refused, as through any token.
    beyond = api.client.post(
        f"/v2/users/{BOB}/tokens",
        json={"grants": [{"resource": "acme/beta", "level": "read"}]},
        headers=bearer(body["access_token"]),
    )
    assert beyond.status_code == 403
    api.client.post("/oauth2/revoke", data={"token": body["refresh_token"]})
    assert api.ledger.verify(token["secret"]).active


def test_audit_explain_tells_a_sessions_story_and_why_it_ended(
    api: Api, provider: OidcProvider
) -> None:
    body = log_in(api, provider, BOB)
    refresh(api, body["refresh_token"])
    api.ledger.execute(c.DisableUser(email=BOB, reason="left the company"), OPERATOR)
    explained = api.ledger.explain_token(OPERATOR, body["session_id"])
    summaries = [entry.summary for entry in explained.story]
    assert summaries[0].startswith(f"{BOB} logged in to acme")
    assert "refreshed" in summaries[1]
    assert explained.root_cause is not None
    assert explained.root_cause.summary == f"user {BOB} disabled (left the company)"
    told = explained.to_dict()
    assert told["session_id"] == body["session_id"]
    assert told["status"] == "ended"
    # Only the user, an operator and the org's admins see it.
    carol = api.ledger.authenticate(api.carol)
    with pytest.raises(PermissionDenied):
        api.ledger.explain_token(carol, body["session_id"])
    ann = api.ledger.authenticate(api.ann)
    assert api.ledger.explain_token(ann, body["session_id"]).principal == BOB
