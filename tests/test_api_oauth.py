"""OAuth 2.0 over the API on SQLite and PostgreSQL: client credentials, introspection,
revocation."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from freezegun import freeze_time

from api_helpers import ISSUER, OPERATOR, SA, Api, is_inactive_body, make_api
from tokenledger.domain import commands as c
from tokenledger.domain.permissions import Level


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def oauth_error(response: object, status: int, code: str) -> str:
    assert getattr(response, "status_code", None) == status, getattr(response, "text", "")
    body = response.json()  # type: ignore[attr-defined]
    assert body["error"] == code
    assert response.headers["Cache-Control"] == "no-store"  # type: ignore[attr-defined]
    description: str = body["error_description"]
    return description


# -- the client credentials grant ------------------------------------------------------------------


def test_a_client_gets_a_short_lived_jwt(api: Api) -> None:
    client_id, client_secret = api.credential()
    assert client_id.startswith("cid_")
    assert client_secret.startswith("tlc_")
    response = api.client.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, client_secret)
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "write:acme/alpha"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == SA
    assert claims["org"] == "acme"
    assert claims["groups"] == []
    assert claims["client_id"] == client_id
    assert claims["iss"] == ISSUER
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["grants"] == [{"resource": "acme/alpha", "level": "write"}]
    assert claims["jti"]
    assert client_secret not in response.text


def test_form_client_authentication_and_a_narrower_scope(api: Api) -> None:
    client_id, client_secret = api.credential()
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
        "scope": "read:acme/alpha",
    }
    response = api.client.post("/oauth2/token", data=form)
    assert response.status_code == 200
    assert response.json()["scope"] == "read:acme/alpha"
    answer = api.introspect(response.json()["access_token"])
    assert answer["scope"] == "read:acme/alpha"


def test_token_endpoint_errors(api: Api) -> None:
    client_id, client_secret = api.credential()
    post = api.client.post
    grant = {"grant_type": "client_credentials"}
    oauth_error(
        post("/oauth2/token", data={"grant_type": "password"}), 400, "unsupported_grant_type"
    )
    oauth_error(post("/oauth2/token", data={}), 400, "invalid_request")
    oauth_error(post("/oauth2/token", data=grant), 401, "invalid_client")
    wrong = "tlc_" + "A" * 32 + "0Bmp0y"
    response = post("/oauth2/token", data=grant, auth=(client_id, wrong))
    assert oauth_error(response, 401, "invalid_client") == "client authentication failed"
    assert response.headers["WWW-Authenticate"] == 'Basic realm="tokenledger"'
    assert wrong not in response.text
    oauth_error(post("/oauth2/token", data=grant, auth=("cid_x", "y")), 401, "invalid_client")
    both = {**grant, "client_id": client_id, "client_secret": client_secret}
    oauth_error(
        post("/oauth2/token", data=both, auth=(client_id, client_secret)), 400, "invalid_request"
    )
    for scope in ("admin:acme/alpha", "read:acme/beta", "read", "bogus:acme/alpha"):
        with_scope = {**grant, "scope": scope}
        oauth_error(
            post("/oauth2/token", data=with_scope, auth=(client_id, client_secret)),
            400,
            "invalid_scope",
        )
    garbled = {"Authorization": "Basic %%%"}
    oauth_error(post("/oauth2/token", data=grant, headers=garbled), 401, "invalid_client")


def test_basic_credentials_are_form_urlencoded_first(api: Api) -> None:
    client_id, client_secret = api.credential()
    raw = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    response = api.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {raw}"},
    )
    assert response.status_code == 200


def test_no_signing_key_is_503(api: Api) -> None:
    assert api.keys.path is not None
    api.keys.path.unlink()
    client_id, client_secret = api.credential()
    with freeze_time(datetime.now(UTC) + timedelta(seconds=5)):
        response = api.client.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, client_secret),
        )
    oauth_error(response, 503, "temporarily_unavailable")


# -- the JWT against the published keys ------------------------------------------------------------


def test_pyjwt_verifies_the_token_with_only_the_jwks(api: Api) -> None:
    token = api.access_token()
    jwks = jwt.PyJWKSet.from_dict(api.client.get("/.well-known/jwks.json").json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    claims = jwt.decode(token, key.key, algorithms=["EdDSA"], issuer=ISSUER)
    assert claims["sub"] == SA
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(tampered, key.key, algorithms=["EdDSA"], issuer=ISSUER)


def test_tokens_signed_before_a_rotation_stay_valid(api: Api) -> None:
    before = api.access_token()
    with freeze_time(datetime.now(UTC) + timedelta(seconds=5)):
        api.keys.rotate(datetime.now(UTC))
        after = api.access_token()
        kids = [k["kid"] for k in api.client.get("/.well-known/jwks.json").json()["keys"]]
        assert api.introspect(before)["active"] is True
    assert jwt.get_unverified_header(after)["kid"] == kids[0]
    assert jwt.get_unverified_header(before)["kid"] == kids[1]


# -- introspection ---------------------------------------------------------------------------------


def test_introspecting_a_ledger_token(api: Api) -> None:
    answer = api.introspect(api.bob, resource="acme/alpha", level="write")
    assert answer["active"] is True
    assert answer["sub"] == "bob@acme.io"
    assert answer["scope"] == "write:acme/alpha"
    assert answer["token_type"] == "personal"
    assert answer["allowed"] is True
    assert answer["grants"] == [{"resource": "acme/alpha", "level": "write"}]
    assert {"exp", "iat", "token_id"} <= set(answer)
    assert api.introspect(api.bob, resource="acme/beta")["allowed"] is False


def test_inactive_answers_reveal_nothing_more(api: Api) -> None:
    _, client_secret = api.credential()
    for token in ("nonsense", "tlp_" + "A" * 32 + "0Bmp0y", client_secret, "eyJ.e30.x", ""):
        response = api.client.post("/oauth2/introspect", data={"token": token}, headers=api.admin)
        if token == "":
            assert response.status_code == 400
            continue
        assert response.status_code == 200
        assert is_inactive_body(response.content)


def test_introspecting_a_jwt(api: Api) -> None:
    token = api.access_token()
    answer = api.introspect(token, token_type_hint="access_token", resource="acme/alpha")
    assert answer["active"] is True
    assert answer["sub"] == SA
    assert answer["token_type"] == "access_token"
    assert str(answer["client_id"]).startswith("cid_")
    assert answer["allowed"] is True
    assert answer["iss"] == ISSUER


def test_a_jwt_follows_the_accounts_current_level(api: Api) -> None:
    token = api.access_token()
    api.ledger.execute(
        c.SetServiceAccountPermission(account_id=SA, resource="acme/alpha", level=Level.READ),
        OPERATOR,
    )
    answer = api.introspect(token, resource="acme/alpha", level="write")
    assert answer["active"] is True
    assert answer["scope"] == "read:acme/alpha"
    assert answer["allowed"] is False


def test_a_jwt_is_inactive_once_its_credential_is_revoked(api: Api) -> None:
    client_id, client_secret = api.credential()
    token = api.exchange(client_id, client_secret)
    revoked = api.client.delete(
        f"/v2/service_accounts/{SA}/credentials/{client_id}", headers=api.admin
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_client_ids"] == [client_id]
    assert api.introspect(token) == {"active": False}
    refused = api.client.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, client_secret)
    )
    oauth_error(refused, 401, "invalid_client")


def test_a_jwt_is_inactive_once_the_permission_moves(api: Api) -> None:
    token = api.access_token()
    api.client.put(
        f"/v2/service_accounts/{SA}/permission",
        json={"resource": "acme/beta", "level": "write"},
        headers=api.admin,
    )
    assert api.introspect(token) == {"active": False}


def test_a_jwt_is_inactive_once_the_account_is_deleted(api: Api) -> None:
    token = api.access_token()
    api.client.delete(f"/v2/service_accounts/{SA}", headers=api.admin)
    assert api.introspect(token) == {"active": False}


def test_a_jwt_expires(api: Api) -> None:
    start = datetime.now(UTC)
    with freeze_time(start) as frozen:
        token = api.access_token()
        frozen.move_to(start + timedelta(minutes=59))
        assert api.introspect(token)["active"] is True
        frozen.move_to(start + timedelta(hours=1, seconds=1))
        assert api.introspect(token) == {"active": False}


def test_a_jwt_never_outlives_its_credential(api: Api) -> None:
    response = api.client.post(
        f"/v2/service_accounts/{SA}/credentials", json={"expires_in": "10m"}, headers=api.admin
    )
    body = response.json()
    token = api.exchange(body["client_id"], body["client_secret"])
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] <= 600


def test_who_may_introspect(api: Api) -> None:
    form = {"token": api.bob}
    response = api.client.post("/oauth2/introspect", data=form)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="tokenledger"'
    as_sa = api.client.post("/oauth2/introspect", data=form, headers=api.bearer(api.sa_token))
    assert as_sa.json()["active"] is True
    jwt_caller = api.access_token()
    as_jwt = api.client.post("/oauth2/introspect", data=form, headers=api.bearer(jwt_caller))
    assert as_jwt.json()["active"] is True
    client_id, client_secret = api.credential()
    as_client = api.client.post("/oauth2/introspect", data=form, auth=(client_id, client_secret))
    assert as_client.json()["active"] is True
    bad_client = api.client.post("/oauth2/introspect", data=form, auth=(client_id, "nope"))
    assert bad_client.status_code == 401
    assert bad_client.json()["error"] == "invalid_client"
    bad_bearer = api.client.post("/oauth2/introspect", data=form, headers=api.bearer("x.y.z"))
    assert bad_bearer.status_code == 401


def test_introspection_input_errors(api: Api) -> None:
    post = api.client.post
    headers = api.admin
    level_only = {"token": api.bob, "level": "read"}
    assert post("/oauth2/introspect", data=level_only, headers=headers).status_code == 400
    bad_level = {"token": api.bob, "resource": "acme", "level": "root"}
    assert post("/oauth2/introspect", data=bad_level, headers=headers).status_code == 400
    bad_path = {"token": api.bob, "resource": "ACME"}
    assert post("/oauth2/introspect", data=bad_path, headers=headers).status_code == 400


# -- revocation ------------------------------------------------------------------------------------


def test_revoking_a_ledger_token(api: Api) -> None:
    response = api.client.post(
        "/oauth2/revoke", data={"token": api.bob}, headers=api.bearer(api.bob)
    )
    assert response.status_code == 200
    assert len(response.json()["revoked"]) == 1
    assert response.json()["correlation_id"]
    assert api.introspect(api.bob) == {"active": False}


def test_revoking_unknown_malformed_or_revoked_tokens_is_200(api: Api) -> None:
    for token in ("nonsense", "tlp_" + "A" * 32 + "0Bmp0y", api.sa_token, api.sa_token):
        response = api.client.post("/oauth2/revoke", data={"token": token}, headers=api.admin)
        assert response.status_code == 200, response.text


def test_revoking_a_client_secret(api: Api) -> None:
    client_id, client_secret = api.credential()
    token = api.exchange(client_id, client_secret)
    response = api.client.post(
        "/oauth2/revoke",
        data={"token": client_secret, "token_type_hint": "client_secret"},
        headers=api.admin,
    )
    assert response.json()["revoked_client_ids"] == [client_id]
    assert api.introspect(token) == {"active": False}


def test_revocation_is_authorised_like_tokens_revoke(api: Api) -> None:
    response = api.client.post(
        "/oauth2/revoke", data={"token": api.ann}, headers=api.bearer(api.carol)
    )
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert api.introspect(api.ann)["active"] is True
    unauthenticated = api.client.post("/oauth2/revoke", data={"token": api.ann})
    assert unauthenticated.status_code == 401


def test_access_tokens_cannot_be_revoked_one_by_one(api: Api) -> None:
    token = api.access_token()
    response = api.client.post("/oauth2/revoke", data={"token": token}, headers=api.admin)
    oauth_error(response, 400, "unsupported_token_type")


# -- client credentials as ledger facts ------------------------------------------------------------


def test_credentials_are_listed_without_secrets_and_only_for_admins(api: Api) -> None:
    client_id, client_secret = api.credential()
    base = f"/v2/service_accounts/{SA}/credentials"
    listed = api.client.get(base, headers=api.admin)
    assert [cred["client_id"] for cred in listed.json()] == [client_id]
    assert client_secret not in listed.text
    assert api.client.get(base, headers=api.bearer(api.carol)).status_code == 403
    # The account's own (narrower) token may not mint a credential with its whole permission.
    own = api.client.post(base, headers=api.bearer(api.sa_token))
    assert own.status_code == 403
    assert api.client.delete(f"{base}/cid_0000000000000000", headers=api.admin).status_code == 404
    assert api.client.delete(f"{base}/nonsense", headers=api.admin).status_code == 400
    assert (
        api.client.post(
            base, json={"expires_in": "1y", "no_expiry": True}, headers=api.admin
        ).status_code
        == 400
    )
