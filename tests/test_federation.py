"""Workload identity federation: a CI job trades its platform's ID token (here signed by a
real OpenID Connect provider on loopback) for a service account's access token (RFC 8693),
over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from api_helpers import OPERATOR, SA, Api, make_api
from helpers import assert_projections_match_log, head_position
from oidc_provider import OidcProvider
from tokenledger.domain import commands as c
from tokenledger.domain.events import IssuerUntrusted
from tokenledger.domain.permissions import Level
from tokenledger.errors import Conflict, PermissionDenied

EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
AUDIENCE = "tokenledger"
SUBJECT = "repo:acme/site:ref:refs/heads/main"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider() as running:
        yield running


@pytest.fixture
def api(database_url: str, tmp_path: Path, provider: OidcProvider) -> Iterator[Api]:
    for made in make_api(database_url, tmp_path):
        trust(made, provider.issuer)
        yield made


def trust(api: Api, issuer: str, subject: str = "repo:acme/site:*") -> Any:
    command = c.build(
        c.TrustIssuer, account_id=SA, issuer=issuer, subject=subject, audience=AUDIENCE
    )
    return api.ledger.execute(command, OPERATOR)


def id_token(provider: OidcProvider, **claims: Any) -> str:
    now = int(time.time())
    return provider.sign(
        {
            "iss": provider.issuer,
            "sub": SUBJECT,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 300,
            **claims,
        }
    )


def exchange(api: Api, subject_token: str, account: str = SA, **extra: str) -> Any:
    form = {
        "grant_type": EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": ID_TOKEN,
        "service_account": account,
        **extra,
    }
    return api.client.post("/oauth2/token", data=form)


def invalid_grant(response: Any) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_grant", body
    description: str = body["error_description"]
    return description


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_trusted_id_token_obtains_the_accounts_access_token(
    api: Api, provider: OidcProvider
) -> None:
    before = head_position(api.ledger)
    response = exchange(api, id_token(provider))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert body["expires_in"] == 3600
    assert body["scope"] == "write:acme/alpha"
    # An exchange changes no state: nothing is appended.
    assert head_position(api.ledger) == before
    who = api.client.get("/v2/whoami", headers=bearer(body["access_token"])).json()
    assert who["sub"] == SA
    assert who["org"] == "acme"
    answer = api.introspect(body["access_token"], resource="acme/alpha/x", level="write")
    assert answer["active"] is True
    assert answer["allowed"] is True


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        ({"sub": "repo:acme/other:ref:refs/heads/main"}, "does not trust"),
        ({"aud": "someone-else"}, "does not trust"),
        ({"exp": int(time.time()) - 600}, "expired"),
        ({"iss": "https://token.actions.example"}, "does not trust"),
    ],
    ids=["subject-outside-the-pattern", "wrong-audience", "expired", "unknown-issuer"],
)
def test_an_id_token_no_trust_admits_obtains_nothing(
    api: Api, provider: OidcProvider, claims: dict[str, Any], fragment: str
) -> None:
    before = head_position(api.ledger)
    assert fragment in invalid_grant(exchange(api, id_token(provider, **claims)))
    assert head_position(api.ledger) == before


def test_a_forged_id_token_obtains_nothing(api: Api, provider: OidcProvider) -> None:
    genuine_key = provider.private_jwk()
    forger = OidcProvider()
    forger.start()
    try:
        forger.use_key(
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            kid=genuine_key["kid"],
        )
        now = int(time.time())
        forged = forger.sign(
            {
                "iss": provider.issuer,
                "sub": SUBJECT,
                "aud": AUDIENCE,
                "iat": now,
                "exp": now + 300,
            }
        )
    finally:
        forger.stop()
    assert "signature" in invalid_grant(exchange(api, forged))


def test_malformed_requests_are_refused_in_one_line(api: Api, provider: OidcProvider) -> None:
    assert "not a JWT" in invalid_grant(exchange(api, "not-a-token"))
    assert "service account id" in invalid_grant(exchange(api, id_token(provider), "ci"))
    other = "deploy@acme.service.tokenledger"
    assert "does not trust" in invalid_grant(exchange(api, id_token(provider), other))
    wrong_type = exchange(api, id_token(provider), subject_token_type="urn:x")
    assert wrong_type.status_code == 400
    assert wrong_type.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (
            c.SetServiceAccountPermission(account_id=SA, resource="acme/beta", level=Level.WRITE),
            "service_account_moved",
        ),
        (c.DeleteServiceAccount(account_id=SA), "service_account_deleted"),
    ],
    ids=["moved", "deleted"],
)
def test_moving_or_deleting_the_account_ends_what_was_exchanged(
    api: Api, provider: OidcProvider, command: c.Command, reason: str
) -> None:
    token = exchange(api, id_token(provider)).json()["access_token"]
    result = api.ledger.execute(command, OPERATOR)
    withdrawn = [e for e in result.events if isinstance(e, IssuerUntrusted)]
    assert [e.reason for e in withdrawn] == [reason]
    assert api.client.get("/v2/whoami", headers=bearer(token)).status_code == 401
    assert api.introspect(token) == {"active": False}
    assert "does not trust" in invalid_grant(exchange(api, id_token(provider)))
    assert_projections_match_log(api.ledger)


def test_withdrawing_the_trust_ends_what_it_obtained(api: Api, provider: OidcProvider) -> None:
    token = exchange(api, id_token(provider)).json()["access_token"]
    api.ledger.execute(c.build(c.UntrustIssuer, account_id=SA, issuer=provider.issuer), OPERATOR)
    assert api.client.get("/v2/whoami", headers=bearer(token)).status_code == 401
    # Trusting again is a new trust: tokens of the old one stay inactive.
    trust(api, provider.issuer)
    assert api.client.get("/v2/whoami", headers=bearer(token)).status_code == 401
    assert exchange(api, id_token(provider)).status_code == 200


def test_a_trust_is_managed_by_admins_of_the_accounts_project(
    api: Api, provider: OidcProvider
) -> None:
    bob = api.ledger.authenticate(api.bob)
    with pytest.raises(PermissionDenied):
        api.ledger.execute(
            c.build(
                c.TrustIssuer,
                account_id=SA,
                issuer="https://ci.example",
                subject="repo:x",
                audience=AUDIENCE,
            ),
            bob,
        )
    with pytest.raises(Conflict, match="already trusts"):
        trust(api, provider.issuer)


def test_trusts_are_managed_over_http(api: Api, provider: OidcProvider) -> None:
    body = {"issuer": "https://ci.example", "subject": "repo:acme/*", "audience": AUDIENCE}
    url = f"/v2/service_accounts/{SA}/trusts"
    assert api.client.post(url, json=body, headers=bearer(api.bob)).status_code == 403
    created = api.client.post(url, json=body, headers=api.admin)
    assert created.status_code == 201, created.text
    assert created.json()["trust_id"].startswith("wif_")
    listed = api.client.get(url, headers=api.admin).json()
    assert sorted(t["issuer"] for t in listed) == sorted([provider.issuer, "https://ci.example"])
    removed = api.client.delete(url, params={"issuer": "https://ci.example"}, headers=api.admin)
    assert removed.status_code == 200, removed.text
    assert [t["issuer"] for t in api.client.get(url, headers=api.admin).json()] == [provider.issuer]
    everything = api.client.get(url, params={"include_withdrawn": "true"}, headers=api.admin)
    assert len(everything.json()) == 2
    star = {**body, "subject": "*"}
    refused = api.client.post(url, json=star, headers=api.admin)
    assert refused.status_code == 400
    assert "not any" in refused.json()["error_description"]
