"""The ledger the browser tests look at through the web console.

Org ``acme`` (projects alpha, beta, gamma) with its admin ``ann``, a member ``bob``, an
auditor ``dora`` and a custom role ``analyst``; logins through the org's OpenID provider.

Two service accounts:

* ``ingest`` was moved from ``acme/alpha`` to ``acme/beta``: its token ``nightly`` was
  revoked by that move, and ``nightly-child`` (derived from ``nightly``) by the revocation
  of its parent. That is the cascade the tests follow from token to token. Its token
  ``after-move`` is live.
* ``deploy`` holds write on ``acme/alpha`` with the live tokens ``deploy-main`` and
  ``deploy-canary``: the tests move it in the browser.

Everything is done as the operator, through the same commands the CLI runs, at moments
in the past: the org is made two hours before ``now``, the move an hour later, so that
who-can has a moment before the move to answer about.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from freezegun import freeze_time

from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.domain.permissions import Level
from tokenledger.service import Ledger
from tokenledger.service.keys import KeyStore

OPERATOR = Actor.operator("root")
ORG = "acme"
ADMIN = "ann@acme.io"
MEMBER = "bob@acme.io"
AUDITOR = "dora@acme.io"
INGEST = "ingest@acme.service.tokenledger"
DEPLOY = "deploy@acme.service.tokenledger"
#: The ledger's client id at the test provider (the provider accepts any).
OIDC_CLIENT = "tokenledger-console-test"


@dataclass
class SeededLedger:
    """What the tests need to know of the seeded ledger: secrets (shown once, so kept here)
    and the ids of the tokens by name."""

    admin_secret: str
    moved_at: datetime
    """When ``ingest`` was moved (the org and its tokens are older, by an hour)."""
    token_ids: dict[str, str] = field(default_factory=dict)
    cascade_revoked: tuple[str, ...] = ()
    """The token ids the move of ``ingest`` revoked: ``nightly`` and ``nightly-child``."""


def seed_console_ledger(
    ledger: Ledger, keys: KeyStore, provider_issuer: str, now: datetime
) -> SeededLedger:
    with freeze_time(now - timedelta(hours=2)) as clock:
        return _seed(ledger, keys, provider_issuer, lambda: clock.tick(timedelta(hours=1)))


def _seed(
    ledger: Ledger, keys: KeyStore, provider_issuer: str, an_hour_later: Callable[[], object]
) -> SeededLedger:
    def run(command: c.Command) -> None:
        ledger.execute(command, OPERATOR)

    for command in (
        c.CreateOrg(org=ORG),
        c.CreateResource(path="acme/alpha"),
        c.CreateResource(path="acme/beta"),
        c.CreateResource(path="acme/gamma"),
        c.CreateUser(email=ADMIN, name="Ann"),
        c.CreateUser(email=MEMBER, name="Bob"),
        c.CreateUser(email=AUDITOR, name="Dora"),
        c.AddMember(org=ORG, email=ADMIN, role="admin"),
        c.AddMember(org=ORG, email=MEMBER),
        c.AddMember(org=ORG, email=AUDITOR, role="auditor"),
        c.SetGrant(principal=MEMBER, resource="acme/alpha", level=Level.WRITE),
        c.build(
            c.CreateRole, org=ORG, role="analyst", grants=[{"resource": "acme", "level": "read"}]
        ),
        c.CreateServiceAccount(name="ingest", org=ORG, resource="acme/alpha", level=Level.WRITE),
        c.CreateServiceAccount(name="deploy", org=ORG, resource="acme/alpha", level=Level.WRITE),
    ):
        run(command)
    keys.set_provider_secret(ORG, "provider-secret-of-acme")
    run(
        c.build(
            c.SetIdentityProvider,
            org=ORG,
            issuer=provider_issuer,
            oidc_client_id=OIDC_CLIENT,
            client_secret=True,
        )
    )

    token_ids: dict[str, str] = {}

    def issue(
        name: str, principal: str, resource: str, parent: str | None = None, level: str = "write"
    ) -> str:
        grants = [{"resource": resource, "level": level}]
        command = c.build(
            c.IssueToken,
            principal=principal,
            grants=grants,
            name=name,
            parent_id=token_ids[parent] if parent else None,
            # A derived token lives an hour by default: longer, to be live at the move.
            expires_in=timedelta(days=30),
        )
        result = ledger.execute(command, OPERATOR)
        assert result.issued is not None
        assert result.secret is not None
        token_ids[name] = result.issued.token_id
        return result.secret

    admin_secret = issue("ann-console", ADMIN, "acme", level="admin")
    issue("bob-laptop", MEMBER, "acme/alpha")
    issue("nightly", INGEST, "acme/alpha")
    issue("nightly-child", INGEST, "acme/alpha", parent="nightly")
    an_hour_later()
    moved_at = ledger.now()
    moved = ledger.execute(
        c.SetServiceAccountPermission(account_id=INGEST, resource="acme/beta", level=Level.WRITE),
        OPERATOR,
    )
    issue("after-move", INGEST, "acme/beta")
    issue("deploy-main", DEPLOY, "acme/alpha")
    issue("deploy-canary", DEPLOY, "acme/alpha")
    run(c.IssueClientCredential(account_id=DEPLOY, name="ci-runner"))
    return SeededLedger(
        admin_secret=admin_secret,
        token_ids=token_ids,
        moved_at=moved_at,
        cascade_revoked=tuple(moved.revoked),
    )
