"""Logging in through a real OpenID Connect provider in tests: the browser's part of the
flow (``/oauth2/authorize``, the provider's form, ``/oauth2/callback``) and the command
line's (``/oauth2/token``), against the API of ``api_helpers.make_api``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from api_helpers import OPERATOR, Api
from oidc_provider import OidcProvider
from tokenledger.domain import commands as c
from tokenledger.domain.pkce import code_challenge, new_code_verifier

#: The command line's loopback redirect (nothing listens: the test reads the Location).
REDIRECT = "http://127.0.0.1:53682/callback"
CLI = "tokenledger-cli"
#: The ledger's client id at the provider (the mock accepts any).
OIDC_CLIENT = "tokenledger-test"


def register_provider(api: Api, provider: OidcProvider, org: str = "acme", **extra: Any) -> None:
    """``org`` logs in through ``provider``, as a confidential client (its secret kept with
    the signing keys)."""
    api.keys.set_provider_secret(org, "provider-secret-of-" + org)
    api.ledger.execute(
        c.build(
            c.SetIdentityProvider,
            org=org,
            issuer=provider.issuer,
            oidc_client_id=OIDC_CLIENT,
            client_secret=True,
            **extra,
        ),
        OPERATOR,
    )


@dataclass
class Login:
    """One login's state on the command line's side."""

    verifier: str
    state: str = "cli-state-1"

    @classmethod
    def new(cls) -> Login:
        return cls(verifier=new_code_verifier())

    def authorize_params(self, org: str = "acme", **overrides: str) -> dict[str, str]:
        return {
            "response_type": "code",
            "client_id": CLI,
            "redirect_uri": REDIRECT,
            "code_challenge": code_challenge(self.verifier),
            "code_challenge_method": "S256",
            "state": self.state,
            "org": org,
            **overrides,
        }


def local(location: str) -> str:
    """A Location on the API's own host as a path the TestClient can get."""
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}"


def to_provider(api: Api, login: Login, org: str = "acme") -> str:
    """``/oauth2/authorize``: the provider's authorization URL it redirects to."""
    response = api.client.get(
        "/oauth2/authorize", params=login.authorize_params(org), follow_redirects=False
    )
    assert response.status_code == 303, response.text
    location: str = response.headers["location"]
    return location


def back_to_cli(api: Api, provider_location: str) -> dict[str, str]:
    """``/oauth2/callback`` with what the provider sent: the query of the redirect to the
    command line (``code`` and ``state``, or ``error``)."""
    response = api.client.get(local(provider_location), follow_redirects=False)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?"), location
    return OidcProvider.redirect_params(location)


def browser_login(
    api: Api, provider: OidcProvider, login: Login, sub: str, org: str = "acme", **claims: Any
) -> dict[str, str]:
    """The browser's whole part: the query the command line's loopback receives."""
    provider.set_user(sub, **claims)
    return back_to_cli(api, provider.login(to_provider(api, login, org), sub))


def redeem(api: Api, login: Login, code: str, **overrides: str) -> Any:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": login.verifier,
        "redirect_uri": REDIRECT,
        "client_id": CLI,
        **overrides,
    }
    return api.client.post("/oauth2/token", data=form)


def log_in(api: Api, provider: OidcProvider, email: str, org: str = "acme") -> dict[str, Any]:
    """A whole successful login as ``email``: the token endpoint's answer."""
    login = Login.new()
    back = browser_login(api, provider, login, email, org, email=email, email_verified=True)
    assert back["state"] == login.state
    response = redeem(api, login, back["code"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def refresh(api: Api, refresh_token: str) -> Any:
    return api.client.post(
        "/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": CLI},
    )
