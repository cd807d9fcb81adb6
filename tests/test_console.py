"""The web console (``/console``) through HTTP, on SQLite and PostgreSQL: logging in with a
token and through the org's identity provider, its cookies and headers, CSRF, each page's
content, the API's authorisation, moving a permission after its preview, and the log check."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from api_helpers import OPERATOR, SA, Api, make_api
from login_helpers import register_provider
from oidc_provider import OidcProvider

from tokenledger.domain import commands as c
from tokenledger.domain.permissions import Level

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    with OidcProvider() as running:
        yield running


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def head(api: Api) -> tuple[int, str]:
    found = api.ledger.store.head()
    return found.position, found.hash


def csrf_of(page: httpx.Response) -> str:
    match = CSRF.search(page.text)
    assert match is not None, page.text
    return match.group(1)


def log_in(api: Api, secret: str) -> httpx.Response:
    """Log the test client in with ``secret`` through the login form."""
    form = api.client.get("/console/login")
    assert form.status_code == 200, form.text
    return api.client.post(
        "/console/login",
        data={"token": secret, "csrf": csrf_of(form)},
        follow_redirects=False,
    )


def logged_in(api: Api, secret: str) -> str:
    """Log in; the CSRF token of the session's forms."""
    answer = log_in(api, secret)
    assert answer.status_code == 303, answer.text
    home = api.client.get("/console")
    assert home.status_code == 200, home.text
    return csrf_of(home)


def test_login_with_a_token_reaches_the_home_page(api: Api) -> None:
    answer = log_in(api, api.ann)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console"
    home = api.client.get("/console")
    assert home.status_code == 200
    assert "<h1>Organizations</h1>" in home.text
    assert 'href="/console/orgs/acme"' in home.text
    assert "ann@acme.io" in home.text
