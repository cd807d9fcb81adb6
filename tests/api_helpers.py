"""What the HTTP API tests share: a seeded ledger behind a TestClient (``make_api``).

No tests live here; each ``test_api*`` module makes its fixtures with ``make_api``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from tokenledger.api import ApiSettings, create_asgi_app
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.service import Ledger
from tokenledger.service.keys import KeyStore
from tokenledger.store import open_event_store

OPERATOR = Actor.operator("root")
SA = "ci@acme.service.tokenledger"
ISSUER = "https://ledger.test"


@dataclass
class Api:
    """The API over a ledger holding org ``acme`` (projects alpha, beta), its admin ``ann``,
    a member ``bob`` with write on ``acme/alpha``, ``carol`` of another org, and the
    service account ``ci`` with write on ``acme/alpha``."""

    ledger: Ledger
    keys: KeyStore
    client: TestClient
    ann: str
    bob: str
    carol: str
    sa_token: str

    @staticmethod
    def bearer(secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.bearer(self.ann)

    def credential(self) -> tuple[str, str]:
        """A new client credential of ``ci``: (client id, client secret)."""
        response = self.client.post(f"/v2/service_accounts/{SA}/credentials", headers=self.admin)
        assert response.status_code == 201, response.text
        body = response.json()
        return body["client_id"], body["client_secret"]

    def access_token(self, scope: str | None = None) -> str:
        client_id, client_secret = self.credential()
        return self.exchange(client_id, client_secret, scope)

    def exchange(self, client_id: str, client_secret: str, scope: str | None = None) -> str:
        form = {"grant_type": "client_credentials"}
        if scope is not None:
            form["scope"] = scope
        response = self.client.post("/oauth2/token", data=form, auth=(client_id, client_secret))
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    def introspect(self, token: str, **extra: str) -> dict[str, object]:
        response = self.client.post(
            "/oauth2/introspect", data={"token": token, **extra}, headers=self.admin
        )
        assert response.status_code == 200, response.text
        answer: dict[str, object] = response.json()
        # Every answer says the log position it reflects; the rest is the token's.
        position = answer.pop("log_position")
        assert isinstance(position, int), answer
        assert position >= 0
        return answer

    def revoke_elsewhere(self, secret: str, database_url: str) -> int:
        """Revoke ``secret``'s token through another ledger on the same database, as another
        process would (this app's caches are not told); the revocation's log position."""
        token_id = self.ledger.authenticate(secret).token_id
        assert token_id is not None
        other = Ledger(open_event_store(database_url))
        result = other.execute(c.RevokeToken(token_id=token_id), OPERATOR)
        other.close()
        return result.records[-1].position


def seed(ledger: Ledger) -> dict[str, str]:
    for command in (
        c.CreateOrg(org="acme"),
        c.CreateOrg(org="other"),
        c.CreateResource(path="acme/alpha"),
        c.CreateResource(path="acme/beta"),
        c.CreateUser(email="ann@acme.io", name="Ann"),
        c.CreateUser(email="bob@acme.io"),
        c.CreateUser(email="carol@other.io"),
        c.AddMember(org="acme", email="ann@acme.io", role="admin"),
        c.AddMember(org="acme", email="bob@acme.io"),
        c.AddMember(org="other", email="carol@other.io", role="admin"),
        c.SetGrant(principal="bob@acme.io", resource="acme/alpha", level=Level.WRITE),
        c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level=Level.WRITE),
    ):
        ledger.execute(command, OPERATOR)

    def issue(principal: str, resource: str, level: str) -> str:
        grants = [{"resource": resource, "level": level}]
        result = ledger.execute(c.IssueToken(principal=principal, grants=grants), OPERATOR)
        assert result.secret is not None
        return result.secret

    return {
        "ann": issue("ann@acme.io", "acme", "admin"),
        "bob": issue("bob@acme.io", "acme/alpha", "write"),
        "carol": issue("carol@other.io", "other", "admin"),
        "sa_token": issue(SA, "acme/alpha", "write"),
    }


def make_api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    secrets = seed(ledger)
    keys = KeyStore(tmp_path / "keys.json")
    keys.rotate(datetime.now(UTC))
    # The app as served: every API test goes through the introspection fast path too.
    app = create_asgi_app(ledger, ApiSettings(issuer=ISSUER, keys=keys))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(ledger=ledger, keys=keys, client=client, **secrets)
    ledger.close()


class InProcess(httpx.BaseTransport):
    """The app behind a TestClient as the transport of a ``tokenledger.client.Client`` of its
    own (``Client(ISSUER, auth, transport=InProcess(api.client))``), each request noted."""

    def __init__(self, client: TestClient) -> None:
        self.app = client._transport
        self.requests: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        answer = self.app.handle_request(request)
        answer.read()
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


#: An inactive token's introspection answer, byte for byte.
INACTIVE_BODY = re.compile(rb'\{"active":false,"log_position":[0-9]+\}')


def is_inactive_body(content: bytes) -> bool:
    return INACTIVE_BODY.fullmatch(content) is not None
