"""Given these events, when this command, then these events: decisions without a database."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from tokenledger.domain import commands as c
from tokenledger.domain import events as e
from tokenledger.domain.decide import Context, decide
from tokenledger.domain.model import Actor, ActorKind
from tokenledger.domain.outcome import PermissionChange, outcome_of
from tokenledger.domain.permissions import Grant
from tokenledger.domain.secrets import TokenKind
from tokenledger.domain.state import LedgerState, fold
from tokenledger.errors import Conflict, NotFound, PermissionDenied, ValidationError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
OPERATOR = Actor.operator("alice")
SA = "ci@acme.service.tokenledger"
_ids = itertools.count(1)


def mint(kind: TokenKind) -> tuple[str, str]:
    n = next(_ids)
    return f"tok_{n:016d}", f"{n:064x}"


def given(*events: e.Event) -> LedgerState:
    return fold((event, NOW) for event in events)


def when(
    state: LedgerState, command: c.Command, actor: Actor = OPERATOR, now: datetime = NOW
) -> list[e.Event]:
    return decide(command, state, Context(actor=actor, now=now, mint=mint))


def then_state(state: LedgerState, events: Sequence[e.Event]) -> LedgerState:
    return fold(((event, NOW) for event in events), state)


def token(
    token_id: str,
    principal: str,
    *grants: Grant,
    parent: str | None = None,
    expires_at: datetime | None = NOW + timedelta(days=30),
    kind: str = "personal",
) -> e.TokenIssued:
    return e.TokenIssued(
        token_id=token_id,
        principal=principal,
        kind=kind,
        secret_hash="0" * 64,
        grants=grants,
        issued_at=NOW,
        expires_at=expires_at,
        parent_id=parent,
        issued_by=None,
    )


ACME = (
    e.OrgCreated(org="acme"),
    e.ResourceCreated(path="acme/alpha", kind="project"),
    e.ResourceCreated(path="acme/alpha/raw", kind="collection"),
    e.ResourceCreated(path="acme/beta", kind="project"),
    e.UserCreated(email="bob@acme.io"),
    e.MemberAdded(org="acme", email="bob@acme.io", role="member"),
    e.GrantSet(principal="bob@acme.io", grant=Grant("acme/alpha", "write")),
)
WITH_SA = (
    *ACME,
    e.ServiceAccountCreated(
        account_id=SA, org="acme", name="ci", permission=Grant("acme/alpha", "write")
    ),
    token("tok_sa00000000000001", SA, Grant("acme/alpha", "write"), kind="service"),
    token("tok_sa00000000000002", SA, Grant("acme/alpha/raw", "read"), kind="service"),
)


def acting(principal: str, token_id: str) -> Actor:
    kind = ActorKind.SERVICE_ACCOUNT if principal == SA else ActorKind.USER
    return Actor(kind=kind, principal=principal, token_id=token_id)


# -- orgs, users, members ---------------------------------------------------------


def test_create_org() -> None:
    assert when(given(), c.CreateOrg(org="acme")) == [e.OrgCreated(org="acme")]
    with pytest.raises(Conflict, match="already exists"):
        when(given(e.OrgCreated(org="acme")), c.CreateOrg(org="acme"))


def test_only_an_operator_creates_orgs() -> None:
    state = given(*ACME, token("tok_b000000000000001", "bob@acme.io", Grant("acme", "read")))
    with pytest.raises(PermissionDenied, match="operator"):
        when(state, c.CreateOrg(org="other"), acting("bob@acme.io", "tok_b000000000000001"))


def test_add_member_and_change_role() -> None:
    state = given(e.OrgCreated(org="acme"), e.UserCreated(email="eve@acme.io"))
    added = when(state, c.AddMember(org="acme", email="eve@acme.io", role="auditor"))
    assert added == [e.MemberAdded(org="acme", email="eve@acme.io", role="auditor")]
    state = then_state(state, added)
    assert when(state, c.AddMember(org="acme", email="eve@acme.io", role="admin")) == [
        e.MemberRoleChanged(org="acme", email="eve@acme.io", role="admin", previous_role="auditor")
    ]
    with pytest.raises(NotFound, match="no role boss"):
        when(state, c.AddMember(org="acme", email="eve@acme.io", role="boss"))


def test_disabling_a_user_revokes_all_their_live_tokens() -> None:
    state = given(
        *ACME,
        token("tok_b000000000000001", "bob@acme.io", Grant("acme/alpha", "read")),
        token(
            "tok_b000000000000002",
            "bob@acme.io",
            Grant("acme/alpha", "read"),
            expires_at=NOW - timedelta(days=1),
        ),
    )
    events = when(state, c.DisableUser(email="bob@acme.io"))
    assert events[0] == e.UserDisabled(email="bob@acme.io")
    assert [(r.token_id, r.reason) for r in events[1:]] == [
        ("tok_b000000000000001", "user_disabled")
    ]


def test_removing_a_member_removes_their_grants_and_tokens_in_that_org() -> None:
    state = given(
        *ACME,
        e.OrgCreated(org="other"),
        e.MemberAdded(org="other", email="bob@acme.io", role="admin"),
        token("tok_b000000000000001", "bob@acme.io", Grant("acme/alpha", "read")),
        token("tok_b000000000000002", "bob@acme.io", Grant("other", "read")),
    )
    events = when(state, c.RemoveMember(org="acme", email="bob@acme.io"))
    assert events == [
        e.MemberRemoved(org="acme", email="bob@acme.io"),
        e.GrantRemoved(principal="bob@acme.io", resource="acme/alpha", reason="member_removed"),
        e.TokenRevoked(
            token_id="tok_b000000000000001",
            principal="bob@acme.io",
            reason="member_removed",
            detail="bob@acme.io removed from org acme by operator:alice",
            orgs=("acme",),
        ),
    ]


# -- resources and grants -------------------------------------------------------------


def test_create_resource_needs_its_parent_and_defaults_the_kind() -> None:
    state = given(*ACME)
    assert when(state, c.CreateResource(path="acme/alpha/raw/d1")) == [
        e.ResourceCreated(path="acme/alpha/raw/d1", kind="dataset")
    ]
    with pytest.raises(NotFound, match="no resource acme/gamma"):
        when(state, c.CreateResource(path="acme/gamma/x"))
    with pytest.raises(ValidationError, match="orgs create"):
        when(state, c.CreateResource(path="newco"))


def test_delete_non_empty_resource_needs_recursive() -> None:
    state = given(*ACME)
    with pytest.raises(Conflict, match="--recursive"):
        when(state, c.DeleteResource(path="acme/alpha"))


def test_recursive_delete_removes_grants_and_revokes_every_token_with_a_grant_there() -> None:
    state = given(
        *ACME,
        token("tok_b000000000000001", "bob@acme.io", Grant("acme/alpha/raw", "read")),
        token(
            "tok_b000000000000002",
            "bob@acme.io",
            Grant("acme/alpha", "read"),
            Grant("acme/beta", "read"),
        ),
        token(
            "tok_b000000000000003",
            "bob@acme.io",
            Grant("acme/alpha", "read"),
            parent="tok_b000000000000002",
        ),
    )
    events = when(state, c.DeleteResource(path="acme/alpha", recursive=True))
    assert events[:2] == [
        e.ResourceDeleted(path="acme/alpha/raw"),
        e.ResourceDeleted(path="acme/alpha"),
    ]
    assert events[2] == e.GrantRemoved(
        principal="bob@acme.io", resource="acme/alpha", reason="resource_deleted"
    )
    revoked = [(r.token_id, r.reason) for r in events if isinstance(r, e.TokenRevoked)]
    # tok 2 also reaches acme/beta, but its grant on acme/alpha must not come back if the
    # path is created again: it goes too.
    assert revoked == [
        ("tok_b000000000000001", "resource_deleted"),
        ("tok_b000000000000002", "resource_deleted"),
        ("tok_b000000000000003", "resource_deleted"),
    ]


def test_a_resource_holding_a_service_account_cannot_be_deleted() -> None:
    with pytest.raises(Conflict, match="move or delete it first"):
        when(given(*WITH_SA), c.DeleteResource(path="acme/alpha", recursive=True))


def test_grants_need_membership_and_admin() -> None:
    state = given(*ACME, e.UserCreated(email="eve@acme.io"))
    with pytest.raises(Conflict, match="not a member"):
        when(state, c.SetGrant(principal="eve@acme.io", resource="acme/alpha", level="read"))
    bob = acting("bob@acme.io", "tok_b000000000000001")
    state = given(*ACME, token("tok_b000000000000001", "bob@acme.io", Grant("acme/alpha", "write")))
    with pytest.raises(PermissionDenied, match="needs admin on acme/alpha"):
        when(state, c.SetGrant(principal="bob@acme.io", resource="acme/alpha", level="admin"), bob)


def test_grant_to_none_removes_it() -> None:
    events = when(
        given(*ACME), c.SetGrant(principal="bob@acme.io", resource="acme/alpha", level="none")
    )
    assert events == [
        e.GrantRemoved(principal="bob@acme.io", resource="acme/alpha", reason="requested")
    ]


# -- service accounts ----------------------------------------------------------------------


def test_service_account_permission_must_be_on_a_project() -> None:
    state = given(*ACME)
    with pytest.raises(ValidationError, match="lies on a project"):
        when(
            state,
            c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha/raw", level="read"),
        )
    assert when(
        state, c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level="read")
    ) == [
        e.ServiceAccountCreated(
            account_id=SA, org="acme", name="ci", permission=Grant("acme/alpha", "read")
        )
    ]


def test_moving_a_service_account_revokes_all_its_tokens() -> None:
    events = when(
        given(*WITH_SA),
        c.SetServiceAccountPermission(account_id=SA, resource="acme/beta", level="write"),
    )
    assert events[0] == e.ServiceAccountPermissionMoved(
        account_id=SA, previous=Grant("acme/alpha", "write"), permission=Grant("acme/beta", "write")
    )
    assert [(r.token_id, r.reason) for r in events[1:]] == [
        ("tok_sa00000000000001", "service_account_moved"),
        ("tok_sa00000000000002", "service_account_moved"),
    ]
    assert all("moved from acme/alpha to acme/beta" in (r.detail or "") for r in events[1:])
    outcome = outcome_of(events)
    assert outcome.permission_change == PermissionChange(
        account_id=SA,
        previous=Grant("acme/alpha", "write"),
        permission=Grant("acme/beta", "write"),
        moved=True,
    )
    assert outcome.revoked == ("tok_sa00000000000001", "tok_sa00000000000002")


def test_changing_only_the_level_revokes_nothing() -> None:
    events = when(
        given(*WITH_SA),
        c.SetServiceAccountPermission(account_id=SA, resource="acme/alpha", level="read"),
    )
    assert events == [
        e.ServiceAccountPermissionLevelChanged(
            account_id=SA,
            previous=Grant("acme/alpha", "write"),
            permission=Grant("acme/alpha", "read"),
        )
    ]
    change = outcome_of(events).permission_change
    assert change is not None
    assert not change.moved
    assert outcome_of(events).revoked == ()


def test_deleting_a_service_account_revokes_its_tokens() -> None:
    events = when(given(*WITH_SA), c.DeleteServiceAccount(account_id=SA))
    assert events[0] == e.ServiceAccountDeleted(account_id=SA)
    assert {r.reason for r in events[1:]} == {"service_account_deleted"}
    assert len(events) == 3


def test_a_service_account_manages_no_users_accounts_or_members() -> None:
    actor = acting(SA, "tok_sa00000000000001")
    state = given(*WITH_SA)
    for command in (
        c.CreateUser(email="x@acme.io"),
        c.AddMember(org="acme", email="bob@acme.io", role="admin"),
        c.CreateServiceAccount(name="x", org="acme", resource="acme/alpha", level="read"),
        c.SetGrant(principal="bob@acme.io", resource="acme/alpha", level="read"),
    ):
        with pytest.raises(PermissionDenied, match=r"service accounts? may not"):
            when(state, command, actor)


# -- tokens ----------------------------------------------------------------------------------


def issue(state: LedgerState, actor: Actor = OPERATOR, **fields: object) -> e.TokenIssued:
    [event] = when(state, c.IssueToken(**fields), actor)  # type: ignore[arg-type]
    assert isinstance(event, e.TokenIssued)
    return event


def test_service_account_token_defaults_to_its_permission_and_a_year() -> None:
    event = issue(given(*WITH_SA), principal=SA)
    assert event.kind == "service"
    assert event.grants == (Grant("acme/alpha", "write"),)
    assert event.expires_at == NOW + timedelta(days=365)


def test_user_token_defaults_to_thirty_days_and_needs_grants() -> None:
    state = given(*ACME)
    event = issue(
        state, principal="bob@acme.io", grants=[{"resource": "acme/alpha/raw", "level": "read"}]
    )
    assert event.expires_at == NOW + timedelta(days=30)
    with pytest.raises(ValidationError, match="needs grants"):
        issue(state, principal="bob@acme.io")


def test_grants_above_the_principal_are_refused() -> None:
    with pytest.raises(PermissionDenied, match=r"exceeds bob@acme\.io's permission"):
        issue(
            given(*ACME),
            principal="bob@acme.io",
            grants=[{"resource": "acme/alpha", "level": "admin"}],
        )


def test_service_account_grants_stay_in_its_project() -> None:
    with pytest.raises(ValidationError, match="outside"):
        issue(given(*WITH_SA), principal=SA, grants=[{"resource": "acme/beta", "level": "read"}])


def test_long_lived_admin_tokens_are_refused() -> None:
    state = given(
        *ACME,
        e.MemberRoleChanged(org="acme", email="bob@acme.io", role="admin", previous_role="member"),
    )
    with pytest.raises(ValidationError, match="must expire"):
        issue(
            state,
            principal="bob@acme.io",
            grants=[{"resource": "acme", "level": "admin"}],
            no_expiry=True,
        )
    event = issue(
        state,
        principal="bob@acme.io",
        grants=[{"resource": "acme", "level": "read"}],
        no_expiry=True,
    )
    assert event.expires_at is None


def test_expiry_in_the_past_is_refused() -> None:
    with pytest.raises(ValidationError, match="past"):
        issue(given(*WITH_SA), principal=SA, expires_at=NOW - timedelta(seconds=1))


def test_roles_resolve_in_the_principal_org() -> None:
    state = given(
        *ACME,
        e.RoleCreated(org="acme", role="reader", grants=(Grant("acme/beta", "read"),)),
        e.MemberRoleChanged(org="acme", email="bob@acme.io", role="reader", previous_role="member"),
    )
    event = issue(state, principal="bob@acme.io", role="reader")
    assert event.grants == (Grant("acme/beta", "read"),)


def test_derived_tokens_are_short_lived_and_within_their_parent() -> None:
    state = given(*ACME, token("tok_b000000000000001", "bob@acme.io", Grant("acme/alpha", "read")))
    child = issue(
        state,
        parent_id="tok_b000000000000001",
        grants=[{"resource": "acme/alpha/raw", "level": "read"}],
    )
    assert child.kind == "derived"
    assert child.principal == "bob@acme.io"
    assert child.expires_at == NOW + timedelta(hours=1)
    with pytest.raises(PermissionDenied, match="parent token"):
        issue(
            state,
            parent_id="tok_b000000000000001",
            grants=[{"resource": "acme/alpha/raw", "level": "write"}],
        )


def test_a_user_token_cannot_issue_beyond_itself() -> None:
    state = given(*ACME, token("tok_b000000000000001", "bob@acme.io", Grant("acme/alpha", "read")))
    bob = acting("bob@acme.io", "tok_b000000000000001")
    with pytest.raises(PermissionDenied, match="exceeds the acting token"):
        issue(
            state,
            bob,
            principal="bob@acme.io",
            grants=[{"resource": "acme/alpha", "level": "write"}],
        )


def test_revoking_a_token_revokes_its_descendants() -> None:
    state = given(
        *ACME,
        token("tok_b000000000000001", "bob@acme.io", Grant("acme/alpha", "write")),
        token(
            "tok_b000000000000002",
            "bob@acme.io",
            Grant("acme/alpha", "read"),
            parent="tok_b000000000000001",
        ),
        token(
            "tok_b000000000000003",
            "bob@acme.io",
            Grant("acme/alpha", "read"),
            parent="tok_b000000000000002",
        ),
    )
    events = when(state, c.RevokeToken(token_id="tok_b000000000000001", reason="leaked"))
    assert [(r.token_id, r.reason) for r in events] == [
        ("tok_b000000000000001", "requested"),
        ("tok_b000000000000002", "parent_revoked"),
        ("tok_b000000000000003", "parent_revoked"),
    ]
    state = then_state(state, events)
    with pytest.raises(Conflict, match="already revoked"):
        when(state, c.RevokeToken(token_id="tok_b000000000000001"))


def test_others_may_not_revoke_a_users_token() -> None:
    state = given(
        *WITH_SA,
        token("tok_b000000000000001", "bob@acme.io", Grant("acme/alpha", "write")),
    )
    with pytest.raises(PermissionDenied):
        when(
            state,
            c.RevokeToken(token_id="tok_b000000000000001"),
            acting(SA, "tok_sa00000000000001"),
        )


def test_a_service_account_issues_no_client_credentials() -> None:
    admin_sa = (
        *ACME,
        e.ServiceAccountCreated(
            account_id=SA, org="acme", name="ci", permission=Grant("acme/alpha", "admin")
        ),
        token("tok_sa00000000000001", SA, Grant("acme/alpha", "admin"), kind="service"),
        e.ServiceAccountCreated(
            account_id="other@acme.service.tokenledger",
            org="acme",
            name="other",
            permission=Grant("acme/alpha", "read"),
        ),
    )
    with pytest.raises(PermissionDenied, match="service account may not"):
        when(
            given(*admin_sa),
            c.IssueClientCredential(account_id="other@acme.service.tokenledger"),
            acting(SA, "tok_sa00000000000001"),
        )


@pytest.mark.parametrize(
    "command",
    [
        c.IssueToken(principal="ci@acme.service.tokenledger"),
        c.IssueClientCredential(account_id="ci@acme.service.tokenledger"),
    ],
)
def test_a_default_expiry_past_the_ledgers_last_day_is_refused(command: c.Command) -> None:
    """At the end of the time the ledger holds, a default lifetime would overflow: one line."""
    late = datetime(9999, 6, 1, tzinfo=UTC)
    with pytest.raises(ValidationError, match="invalid expiry: too long"):
        when(given(*WITH_SA), command, now=late)
