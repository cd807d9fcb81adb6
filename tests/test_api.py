"""The management API over SQLite and PostgreSQL: every endpoint and every error category."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api_helpers import OPERATOR, SA, Api, make_api
from tokenledger.api import create_app
from tokenledger.domain import commands as c
from tokenledger.service import Ledger
from tokenledger.store import EventStore, create_ledger_engine


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[Api]:
    """SQLite only: for what the HTTP layer decides alone (documents, discovery)."""
    yield from make_api(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)


def error(response: object, status: int, code: str) -> dict[str, str]:
    """The JSON error answer: the status, one ``error`` code, a one-line description."""
    assert getattr(response, "status_code", None) == status, getattr(response, "text", "")
    body: dict[str, str] = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error", "error_description"}
    assert body["error"] == code
    assert "\n" not in body["error_description"]
    assert "Traceback" not in body["error_description"]
    return body


# -- authentication --------------------------------------------------------------------------------


def test_a_call_without_a_token_is_401_with_a_bare_challenge(api: Api) -> None:
    response = api.client.get("/v2/orgs")
    error(response, 401, "invalid_token")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="tokenledger"'


@pytest.mark.parametrize(
    "presented",
    [
        "tlp_0000000000000000000000000000000000000",  # bad checksum
        "not-a-token",
        "tlp_" + "A" * 32 + "000000",
    ],
)
def test_an_invalid_token_is_401_invalid_token(api: Api, presented: str) -> None:
    response = api.client.get("/v2/orgs", headers=api.bearer(presented))
    body = error(response, 401, "invalid_token")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="tokenledger", error="invalid_token"')
    assert presented not in body["error_description"]
    assert presented not in challenge


def test_a_revoked_token_is_401(api: Api) -> None:
    token_id = api.ledger.authenticate(api.bob).token_id
    assert token_id is not None
    api.ledger.execute(c.RevokeToken(token_id=token_id), OPERATOR)
    body = error(api.client.get("/v2/orgs", headers=api.bearer(api.bob)), 401, "invalid_token")
    assert "revoked" in body["error_description"]


def test_another_scheme_is_treated_as_no_token(api: Api) -> None:
    response = api.client.get("/v2/orgs", headers={"Authorization": "Basic Zm9vOmJhcg=="})
    error(response, 401, "invalid_token")


def test_an_access_token_acts_as_its_service_account_while_its_credential_lives(
    api: Api,
) -> None:
    client_id, client_secret = api.credential()
    jwt = api.exchange(client_id, client_secret)
    seen = api.client.get(f"/v2/service_accounts/{SA}", headers=api.bearer(jwt))
    assert seen.status_code == 200, seen.text
    assert api.client.get("/v2/whoami", headers=api.bearer(jwt)).json()["sub"] == SA
    revoked = api.client.delete(
        f"/v2/service_accounts/{SA}/credentials/{client_id}", headers=api.admin
    )
    assert revoked.status_code == 200, revoked.text
    body = error(api.client.get("/v2/orgs", headers=api.bearer(jwt)), 401, "invalid_token")
    assert "revoked" in body["error_description"]


def test_insufficient_permission_is_403_insufficient_scope(api: Api) -> None:
    response = api.client.post(
        "/v2/resources", json={"path": "acme/beta/raw"}, headers=api.bearer(api.bob)
    )
    body = error(response, 403, "insufficient_scope")
    assert "needs write on acme/beta" in body["error_description"]
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


# -- error categories ------------------------------------------------------------------------------


def test_validation_errors_are_400_with_the_cli_message(api: Api) -> None:
    response = api.client.post("/v2/resources", json={"path": "Acme/x"}, headers=api.admin)
    body = error(response, 400, "invalid_request")
    assert "invalid resource path" in body["error_description"]


def test_a_malformed_body_is_400_not_422(api: Api) -> None:
    error(api.client.post("/v2/orgs", json={"nam": "x"}, headers=api.admin), 400, "invalid_request")
    error(
        api.client.post(
            "/v2/orgs",
            content=b"{not json",
            headers={**api.admin, "Content-Type": "application/json"},
        ),
        400,
        "invalid_request",
    )
    error(api.client.post("/v2/orgs", json=[1, 2], headers=api.admin), 400, "invalid_request")


def test_not_found_is_404(api: Api) -> None:
    error(api.client.get("/v2/resources/acme/nope", headers=api.admin), 404, "not_found")
    # An org the caller may not read is refused alike whether it exists or not.
    error(api.client.get("/v2/orgs/nope/members", headers=api.admin), 403, "insufficient_scope")
    error(api.client.get("/v2/nothing-here", headers=api.admin), 404, "not_found")


def test_a_conflict_is_409(api: Api) -> None:
    body = {"name": "ci", "org": "acme", "resource": "acme/alpha", "level": "read"}
    response = api.client.post("/v2/service_accounts", json=body, headers=api.admin)
    error(response, 409, "conflict")


def test_a_wrong_method_is_405(api: Api) -> None:
    error(api.client.patch("/v2/orgs", headers=api.admin), 405, "method_not_allowed")


def test_an_unreachable_database_is_503() -> None:
    engine = create_ledger_engine("postgresql://postgres@127.0.0.1:1/nowhere")
    ledger = Ledger(EventStore(engine))
    with TestClient(create_app(ledger), raise_server_exceptions=False) as client:
        error(client.get("/healthz"), 503, "temporarily_unavailable")
        bearer = {"Authorization": "Bearer tlp_" + "A" * 32 + "0Bmp0y"}
        response = client.get("/v2/orgs", headers=bearer)
        assert response.status_code in (401, 503)
        metrics = client.get("/metrics")
        assert "tokenledger_database_up 0" in metrics.text
    engine.dispose()


def test_a_secret_in_the_wrong_place_is_never_echoed(api: Api) -> None:
    response = api.client.get(f"/v2/tokens/{api.bob}", headers=api.admin)
    body = error(response, 400, "invalid_request")
    assert api.bob not in response.text
    assert "looks like a token secret" in body["error_description"]


def test_a_correlation_id_is_taken_from_the_caller(api: Api) -> None:
    headers = {**api.admin, "X-Correlation-ID": "deploy-42"}
    response = api.client.post("/v2/resources", json={"path": "acme/gamma"}, headers=headers)
    assert response.status_code == 201
    assert response.json()["correlation_id"] == "deploy-42"
    assert response.headers["X-Correlation-ID"] == "deploy-42"
    headers["X-Correlation-ID"] = "no spaces allowed"
    bad = api.client.post("/v2/resources", json={"path": "acme/delta"}, headers=headers)
    error(bad, 400, "invalid_request")


# -- orgs, members, roles --------------------------------------------------------------------------


def test_orgs(api: Api) -> None:
    assert api.client.get("/v2/orgs", headers=api.admin).json() == [{"id": "acme"}]
    assert api.client.get("/v2/orgs", headers=api.bearer(api.carol)).json() == [{"id": "other"}]
    body = error(
        api.client.post("/v2/orgs", json={"name": "new"}, headers=api.admin),
        403,
        "insufficient_scope",
    )
    assert "only an operator" in body["error_description"]


def test_members(api: Api) -> None:
    members = api.client.get("/v2/orgs/acme/members", headers=api.admin).json()
    assert {m["email"]: m["role"] for m in members} == {
        "ann@acme.io": "admin",
        "bob@acme.io": "member",
    }
    changed = api.client.put(
        "/v2/orgs/acme/members/bob@acme.io", json={"role": "auditor"}, headers=api.admin
    )
    assert changed.status_code == 200
    assert changed.json()["previous_role"] == "member"
    assert changed.json()["correlation_id"]
    removed = api.client.delete("/v2/orgs/acme/members/bob@acme.io", headers=api.admin)
    assert removed.status_code == 200
    assert len(removed.json()["revoked"]) == 1  # bob's token reached into acme
    error(
        api.client.get("/v2/orgs/acme/members", headers=api.bearer(api.carol)),
        403,
        "insufficient_scope",
    )


def test_roles(api: Api) -> None:
    body = {"name": "deployer", "grants": [{"resource": "acme/alpha", "level": "write"}]}
    created = api.client.post("/v2/orgs/acme/roles", json=body, headers=api.admin)
    assert created.status_code == 201
    assert created.json()["id"] == "acme:deployer"
    roles = api.client.get("/v2/orgs/acme/roles", headers=api.admin).json()
    assert [r["role"] for r in roles] == ["admin", "auditor", "deployer", "member"]
    outside = {"name": "bad", "grants": [{"resource": "other", "level": "read"}]}
    error(
        api.client.post("/v2/orgs/acme/roles", json=outside, headers=api.admin),
        400,
        "invalid_request",
    )


# -- users and grants ------------------------------------------------------------------------------


def test_users(api: Api) -> None:
    created = api.client.post(
        "/v2/users", json={"email": "Dan@Acme.io", "name": "Dan"}, headers=api.admin
    )
    assert created.status_code == 201
    assert created.json()["id"] == "dan@acme.io"
    members = api.client.get("/v2/users", params={"org": "acme"}, headers=api.admin).json()
    assert [u["email"] for u in members] == ["ann@acme.io", "bob@acme.io"]
    error(api.client.get("/v2/users", headers=api.admin), 403, "insufficient_scope")
    error(
        api.client.post("/v2/users/bob@acme.io/disable", headers=api.admin),
        403,
        "insufficient_scope",
    )
    error(
        api.client.post(
            "/v2/users", json={"email": "x@acme.service.tokenledger"}, headers=api.admin
        ),
        400,
        "invalid_request",
    )


def test_grants(api: Api) -> None:
    grants = api.client.get("/v2/users/bob@acme.io/grants", headers=api.admin).json()
    assert grants == [{"resource": "acme/alpha", "level": "write", "source": "direct"}]
    changed = api.client.put(
        "/v2/users/bob@acme.io/grants",
        json={"resource": "acme/beta", "level": "read"},
        headers=api.admin,
    )
    assert changed.status_code == 200
    assert changed.json()["level"] == "read"
    error(
        api.client.put(
            "/v2/users/bob@acme.io/grants",
            json={"resource": "acme/beta", "level": "superuser"},
            headers=api.admin,
        ),
        400,
        "invalid_request",
    )


# -- resources -------------------------------------------------------------------------------------


def test_resources(api: Api) -> None:
    created = api.client.post(
        "/v2/resources", json={"path": "acme/alpha/raw"}, headers=api.bearer(api.bob)
    )
    assert created.status_code == 201
    assert created.json()["kind"] == "collection"
    listed = api.client.get("/v2/resources", params={"prefix": "acme/alpha"}, headers=api.admin)
    assert [r["path"] for r in listed.json()] == ["acme/alpha", "acme/alpha/raw"]
    one = api.client.get("/v2/resources/acme/alpha/raw", headers=api.admin)
    assert one.json()["path"] == "acme/alpha/raw"
    error(api.client.get("/v2/resources/acme/zeta", headers=api.admin), 404, "not_found")
    error(api.client.delete("/v2/resources/acme/alpha", headers=api.admin), 409, "conflict")
    deleted = api.client.delete("/v2/resources/acme/alpha/raw", headers=api.admin)
    assert deleted.json()["deleted"] == ["acme/alpha/raw"]


# -- service accounts ------------------------------------------------------------------------------


def test_service_accounts(api: Api) -> None:
    body = {"name": "etl", "org": "acme", "resource": "acme/beta", "level": "read"}
    created = api.client.post("/v2/service_accounts", json=body, headers=api.admin)
    assert created.status_code == 201
    account_id = created.json()["id"]
    assert account_id == "etl@acme.service.tokenledger"
    assert created.json()["permission"] == {"resource": "acme/beta", "level": "read"}
    listed = api.client.get("/v2/service_accounts", params={"org": "acme"}, headers=api.admin)
    assert [a["id"] for a in listed.json()] == [SA, account_id]
    got = api.client.get(f"/v2/service_accounts/{account_id}", headers=api.admin)
    assert got.json()["deleted"] is False
    error(
        api.client.get(f"/v2/service_accounts/{account_id}", headers=api.bearer(api.carol)),
        403,
        "insufficient_scope",
    )
    deleted = api.client.delete(f"/v2/service_accounts/{account_id}", headers=api.admin)
    assert deleted.status_code == 200
    assert api.client.get(f"/v2/service_accounts/{account_id}", headers=api.admin).json()["deleted"]
    error(
        api.client.post("/v2/service_accounts", json=body, headers=api.bearer(api.sa_token)),
        403,
        "insufficient_scope",
    )


def test_moving_a_permission_revokes_tokens_and_credentials(api: Api) -> None:
    client_id, _ = api.credential()
    level_only = api.client.put(
        f"/v2/service_accounts/{SA}/permission",
        json={"resource": "acme/alpha", "level": "read"},
        headers=api.admin,
    )
    assert level_only.json()["moved"] is False
    assert level_only.json()["revoked"] == []
    moved = api.client.put(
        f"/v2/service_accounts/{SA}/permission",
        json={"resource": "acme/beta", "level": "read"},
        headers=api.admin,
    )
    assert moved.status_code == 200
    assert moved.json()["moved"] is True
    assert len(moved.json()["revoked"]) == 1
    assert moved.json()["revoked_client_ids"] == [client_id]


# -- tokens ----------------------------------------------------------------------------------------


def test_service_account_tokens(api: Api) -> None:
    base = f"/v2/service_accounts/{SA}/tokens"
    issued = api.client.post(
        base,
        json={"name": "deploy", "grants": [{"resource": "acme/alpha", "level": "read"}]},
        headers=api.admin,
    )
    assert issued.status_code == 201
    token = issued.json()
    assert token["secret"].startswith("tls_")
    assert token["correlation_id"]
    token_id = token["token_id"]
    listed = api.client.get(base, headers=api.admin).json()
    assert token_id in [t["token_id"] for t in listed]
    assert all("secret" not in t for t in listed)
    assert token["secret"] not in api.client.get(base, headers=api.admin).text
    got = api.client.get(f"{base}/{token_id}", headers=api.admin)
    assert got.json()["status"] == "active"
    assert api.client.get(f"/v2/tokens/{token_id}", headers=api.admin).json()["name"] == "deploy"
    revoked = api.client.delete(
        f"{base}/{token_id}", params={"reason": "rotated"}, headers=api.admin
    )
    assert revoked.json()["revoked"] == [token_id]
    error(api.client.delete(f"{base}/{token_id}", headers=api.admin), 409, "conflict")
    everything = api.client.get(base, params={"all": "true"}, headers=api.admin).json()
    assert {t["token_id"]: t["status"] for t in everything}[token_id] == "revoked"
    all_revoked = api.client.delete(base, headers=api.admin)
    assert len(all_revoked.json()["revoked"]) == 1


def test_user_tokens(api: Api) -> None:
    base = "/v2/users/bob@acme.io/tokens"
    issued = api.client.post(
        base,
        json={"grants": [{"resource": "acme/alpha", "level": "read"}], "expires_in": "2h"},
        headers=api.bearer(api.bob),
    )
    assert issued.status_code == 201
    assert issued.json()["secret"].startswith("tlp_")
    token_id = issued.json()["token_id"]
    derived = api.client.post(
        base, json={"parent_id": token_id}, headers=api.bearer(api.bob)
    ).json()
    assert derived["parent_id"] == token_id
    # Someone else's token under bob's path is "not found"; others may not see bob's tokens.
    ann_token = api.ledger.authenticate(api.ann).token_id
    error(api.client.get(f"{base}/{ann_token}", headers=api.admin), 404, "not_found")
    error(api.client.get(base, headers=api.bearer(api.carol)), 403, "insufficient_scope")
    error(
        api.client.post(
            base,
            json={"grants": [{"resource": "acme", "level": "admin"}]},
            headers=api.bearer(api.bob),
        ),
        403,
        "insufficient_scope",
    )
    error(
        api.client.post(base, json={"expires_in": "soon"}, headers=api.bearer(api.bob)),
        400,
        "invalid_request",
    )
    error(
        api.client.post(base, json={"expires_at": "tomorrow"}, headers=api.bearer(api.bob)),
        400,
        "invalid_request",
    )
    revoked = api.client.delete(f"{base}/{token_id}", headers=api.bearer(api.bob))
    assert revoked.json()["revoked"] == [token_id, derived["token_id"]]
    error(api.client.get(f"/v2/users/{SA}/tokens", headers=api.admin), 404, "not_found")
    error(
        api.client.get("/v2/service_accounts/bob@acme.io/tokens", headers=api.admin),
        404,
        "not_found",
    )


# -- audit -----------------------------------------------------------------------------------------


def test_audit_search_is_filtered_to_what_the_caller_may_see(api: Api) -> None:
    mine = api.client.get("/v2/audit", params={"subject": "acme", "limit": 5}, headers=api.admin)
    assert mine.status_code == 200
    assert 0 < len(mine.json()) <= 5
    assert all(e["position"] for e in mine.json())
    none = api.client.get("/v2/audit", params={"subject": "acme"}, headers=api.bearer(api.carol))
    assert none.json() == []
    typed = api.client.get(
        "/v2/audit", params={"type": "ServiceAccountCreated"}, headers=api.admin
    ).json()
    assert [e["data"]["account_id"] for e in typed] == [SA]
    error(
        api.client.get("/v2/audit", params={"type": "Nope"}, headers=api.admin),
        400,
        "invalid_request",
    )
    error(
        api.client.get("/v2/audit", params={"since": "x"}, headers=api.admin),
        400,
        "invalid_request",
    )
    error(
        api.client.get("/v2/audit", params={"limit": 0}, headers=api.admin), 400, "invalid_request"
    )


def test_explain_a_revoked_token(api: Api) -> None:
    token_id = api.ledger.authenticate(api.sa_token).token_id
    api.client.put(
        f"/v2/service_accounts/{SA}/permission",
        json={"resource": "acme/beta", "level": "read"},
        headers=api.admin,
    )
    story = api.client.get(f"/v2/tokens/{token_id}/explain", headers=api.admin)
    assert story.status_code == 200
    assert story.json()["status"] == "revoked"
    assert story.json()["root_cause"]["event_type"] == "ServiceAccountPermissionMoved"
    # Carol is of another org: the token reads as one that does not exist.
    error(
        api.client.get(f"/v2/tokens/{token_id}/explain", headers=api.bearer(api.carol)),
        404,
        "not_found",
    )


# -- health, metrics, discovery --------------------------------------------------------------------


def test_health(api: Api) -> None:
    answer = api.client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert answer.json()["head_position"] > 10


def test_metrics(api: Api) -> None:
    api.client.get("/v2/orgs", headers=api.admin)
    api.client.get("/v2/orgs")
    api.introspect(api.bob)
    api.introspect("tlp_nothing")
    text = api.client.get("/metrics").text
    assert 'tokenledger_http_requests_total{method="GET",route="/v2/orgs",status="200"} 1' in text
    assert 'tokenledger_http_requests_total{method="GET",route="/v2/orgs",status="401"} 1' in text
    assert 'route="/oauth2/introspect",status="200",le="+Inf"} 2' in text
    assert 'tokenledger_introspections_total{outcome="active"} 1' in text
    assert 'tokenledger_introspections_total{outcome="malformed"} 1' in text
    head = api.client.get("/healthz").json()["head_position"]
    assert f"tokenledger_log_head_position {head}" in text


def test_openapi_document_lists_every_endpoint(sqlite_api: Api) -> None:
    document = sqlite_api.client.get("/openapi.json").json()
    paths = set(document["paths"])
    for path in (
        "/v2/orgs",
        "/v2/service_accounts",
        "/v2/service_accounts/{account_id}",
        "/v2/service_accounts/{account_id}/permission",
        "/v2/service_accounts/{account_id}/tokens",
        "/v2/service_accounts/{account_id}/tokens/{token_id}",
        "/v2/service_accounts/{account_id}/credentials",
        "/v2/users/{user_id}/tokens",
        "/v2/users/{user_id}/tokens/{token_id}",
        "/v2/audit",
        "/v2/tokens/{token_id}/explain",
        "/oauth2/token",
        "/oauth2/introspect",
        "/oauth2/revoke",
        "/.well-known/jwks.json",
        "/healthz",
    ):
        assert path in paths, path
    assert set(document["components"]["securitySchemes"]) == {"ledgerToken", "clientCredentials"}


def test_discovery_metadata(sqlite_api: Api) -> None:
    metadata = sqlite_api.client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == "https://ledger.test"
    assert metadata["token_endpoint"].endswith("/oauth2/token")
    assert metadata["grant_types_supported"] == [
        "client_credentials",
        "authorization_code",
        "refresh_token",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
