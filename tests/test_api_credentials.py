"""Client credentials as ledger facts: given these events, when this command, then these events."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from tokenledger.domain import commands as c
from tokenledger.domain import events as e
from tokenledger.domain.decide import Context, decide
from tokenledger.domain.model import Actor, ActorKind
from tokenledger.domain.permissions import Grant, Level
from tokenledger.domain.secrets import TokenKind
from tokenledger.domain.state import LedgerState, fold
from tokenledger.errors import Conflict, NotFound, PermissionDenied, ValidationError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OPERATOR = Actor.operator("root")
SA = "ci@acme.service.tokenledger"
_ids = itertools.count(1)


def mint(kind: TokenKind) -> tuple[str, str]:
    n = next(_ids)
    return f"tok_{n:016d}", f"{n:064x}"


def given(*events: e.Event) -> LedgerState:
    return fold((event, NOW) for event in events)


def when(state: LedgerState, command: c.Command, actor: Actor = OPERATOR) -> list[e.Event]:
    return decide(command, state, Context(actor=actor, now=NOW, mint=mint))


WORLD = (
    e.OrgCreated(org="acme"),
    e.ResourceCreated(path="acme/alpha", kind="project"),
    e.ResourceCreated(path="acme/beta", kind="project"),
    e.ServiceAccountCreated(
        account_id=SA, org="acme", name="ci", permission=Grant("acme/alpha", "write")
    ),
    e.TokenIssued(
        token_id="tok_sa00000000000001",
        principal=SA,
        kind="service",
        secret_hash="0" * 64,
        grants=(Grant("acme/alpha", "read"),),
        issued_at=NOW,
        expires_at=NOW + timedelta(days=1),
        issued_by=None,
    ),
)


def credential(client_id: str, expires_at: datetime | None = None) -> e.ClientCredentialIssued:
    return e.ClientCredentialIssued(
        client_id=client_id,
        account_id=SA,
        secret_hash=client_id.ljust(64, "0"),
        issued_at=NOW,
        expires_at=expires_at,
    )


def test_issuing_a_credential_records_its_hash_and_a_year() -> None:
    [issued] = when(given(*WORLD), c.IssueClientCredential(account_id=SA, name="deploy"))
    assert isinstance(issued, e.ClientCredentialIssued)
    assert issued.client_id.startswith("cid_")
    assert len(issued.client_id) == 20
    assert issued.account_id == SA
    assert len(issued.secret_hash) == 64
    assert issued.expires_at == NOW + timedelta(days=365)
    assert issued.stream_id == f"client:{issued.client_id}"


def test_only_an_admin_of_the_project_issues_credentials() -> None:
    own_token = Actor(kind=ActorKind.SERVICE_ACCOUNT, principal=SA, token_id="tok_sa00000000000001")
    with pytest.raises(
        PermissionDenied, match="a service account may not issue client credentials"
    ):
        when(given(*WORLD), c.IssueClientCredential(account_id=SA), own_token)


def test_no_expiry_is_refused_for_an_admin_account() -> None:
    admin = (
        *WORLD,
        e.ServiceAccountPermissionLevelChanged(
            account_id=SA,
            previous=Grant("acme/alpha", "write"),
            permission=Grant("acme/alpha", "admin"),
        ),
    )
    with pytest.raises(ValidationError, match="must expire"):
        when(given(*admin), c.IssueClientCredential(account_id=SA, no_expiry=True))
    [issued] = when(given(*WORLD), c.IssueClientCredential(account_id=SA, no_expiry=True))
    assert isinstance(issued, e.ClientCredentialIssued)
    assert issued.expires_at is None


def test_a_deleted_or_unknown_account_gets_no_credential() -> None:
    with pytest.raises(NotFound):
        when(given(*WORLD), c.IssueClientCredential(account_id="x@acme.service.tokenledger"))
    deleted = (*WORLD, e.ServiceAccountDeleted(account_id=SA))
    with pytest.raises(Conflict):
        when(given(*deleted), c.IssueClientCredential(account_id=SA))


def test_revoking_a_credential() -> None:
    state = given(*WORLD, credential("cid_0000000000000001"))
    [revoked] = when(state, c.RevokeClientCredential(client_id="cid_0000000000000001"))
    assert revoked == e.ClientCredentialRevoked(
        client_id="cid_0000000000000001", account_id=SA, reason="requested"
    )
    after = fold([(revoked, NOW)], state)
    with pytest.raises(Conflict, match="already revoked"):
        when(after, c.RevokeClientCredential(client_id="cid_0000000000000001"))
    with pytest.raises(NotFound):
        when(after, c.RevokeClientCredential(client_id="cid_0000000000000009"))


def test_moving_the_permission_revokes_live_credentials_too() -> None:
    state = given(
        *WORLD,
        credential("cid_0000000000000001"),
        credential("cid_0000000000000002", expires_at=NOW - timedelta(seconds=1)),
        credential("cid_0000000000000003"),
        e.ClientCredentialRevoked(client_id="cid_0000000000000003", account_id=SA, reason="x"),
    )
    events = when(
        state,
        c.SetServiceAccountPermission(account_id=SA, resource="acme/beta", level=Level.WRITE),
    )
    assert [type(ev).__name__ for ev in events] == [
        "ServiceAccountPermissionMoved",
        "TokenRevoked",
        "ClientCredentialRevoked",
    ]
    revoked = events[-1]
    assert isinstance(revoked, e.ClientCredentialRevoked)
    assert revoked.client_id == "cid_0000000000000001"
    assert revoked.reason == e.RevocationReason.SERVICE_ACCOUNT_MOVED


def test_changing_only_the_level_keeps_credentials() -> None:
    state = given(*WORLD, credential("cid_0000000000000001"))
    events = when(
        state,
        c.SetServiceAccountPermission(account_id=SA, resource="acme/alpha", level=Level.READ),
    )
    assert [type(ev).__name__ for ev in events] == ["ServiceAccountPermissionLevelChanged"]


def test_deleting_the_account_revokes_its_credentials() -> None:
    state = given(*WORLD, credential("cid_0000000000000001"))
    events = when(state, c.DeleteServiceAccount(account_id=SA))
    revoked = [ev for ev in events if isinstance(ev, e.ClientCredentialRevoked)]
    assert [r.reason for r in revoked] == [e.RevocationReason.SERVICE_ACCOUNT_DELETED]


def test_client_ids_are_checked_like_token_ids() -> None:
    with pytest.raises(ValidationError, match="invalid client id"):
        c.build(c.RevokeClientCredential, client_id="tlc_" + "A" * 38)
    with pytest.raises(ValidationError, match="at most one"):
        c.build(
            c.IssueClientCredential, account_id=SA, expires_in=timedelta(days=1), no_expiry=True
        )
