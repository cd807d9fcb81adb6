"""Least privilege on SQLite and PostgreSQL: what a principal may do through a token.

* A service-account token manages no users, service accounts (not even the tokens of another
  account on its own project), memberships, grants or roles, and issues nothing beyond its
  scope.
* A user token never grants or issues above its own effective level.
* A derived token never exceeds its parent, and a token minted *through* another token of
  the same principal is that token's child: it never outlives it and is revoked with it.
* Decisions re-check the acting token under the write lock: a token revoked after it was
  authenticated acts no more.
* Denied attempts are not recorded: the log is a record of changes, so a denial appends
  nothing (see docs/security.md for the reasons).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import assert_one_line_error, cli_head, cli_run
from tokenledger.domain import commands as c
from tokenledger.domain.authority import principal_grants
from tokenledger.domain.decide import Context, decide
from tokenledger.domain.events import TokenIssued
from tokenledger.domain.model import Actor, ActorKind
from tokenledger.domain.permissions import Level, level_at
from tokenledger.domain.secrets import TokenKind
from tokenledger.domain.state import LedgerState
from tokenledger.errors import (
    Conflict,
    LedgerError,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from tokenledger.service import CommandResult, Ledger
from tokenledger.store import open_event_store

OPERATOR = Actor.operator("root")
ALICE = "alice@acme.io"  # admin of acme
BOB = "bob@acme.io"  # member, write on acme/alpha
CAROL = "carol@acme.io"  # member, nothing else
CI = "ci@acme.service.tokenledger"  # admin on acme/alpha
ETL = "etl@acme.service.tokenledger"  # write on acme/alpha: another account, same project
OPS = "ops@acme.service.tokenledger"  # write on acme/beta


@dataclass
class World:
    url: str
    ledger: Ledger
    secrets: dict[str, str]  # name -> secret
    ids: dict[str, str]  # name -> token id

    def actor(self, name: str) -> Actor:
        return self.ledger.authenticate(self.secrets[name])


def grants(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"resource": r, "level": lvl} for r, lvl in pairs]


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    for command in (
        c.CreateOrg(org="acme"),
        c.CreateOrg(org="other"),
        c.CreateResource(path="acme/alpha"),
        c.CreateResource(path="acme/alpha/raw"),
        c.CreateResource(path="acme/beta"),
        c.CreateUser(email=ALICE),
        c.AddMember(org="acme", email=ALICE, role="admin"),
        c.CreateUser(email=BOB),
        c.AddMember(org="acme", email=BOB),
        c.SetGrant(principal=BOB, resource="acme/alpha", level=Level.WRITE),
        c.CreateUser(email=CAROL),
        c.AddMember(org="acme", email=CAROL),
        c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level=Level.ADMIN),
        c.CreateServiceAccount(name="etl", org="acme", resource="acme/alpha", level=Level.WRITE),
        c.CreateServiceAccount(name="ops", org="acme", resource="acme/beta", level=Level.WRITE),
    ):
        ledger.execute(command, OPERATOR)
    secrets, ids = {}, {}
    for name, command in {
        "ci": c.IssueToken(principal=CI),
        "ci-read": c.build(c.IssueToken, principal=CI, grants=grants(("acme/alpha", "read"))),
        "etl": c.IssueToken(principal=ETL),
        "bob": c.build(c.IssueToken, principal=BOB, grants=grants(("acme/alpha", "write"))),
        "alice-admin": c.build(
            c.IssueToken,
            principal=ALICE,
            grants=grants(("acme", "admin")),
            expires_in=timedelta(hours=1),
        ),
        "alice-alpha-admin": c.build(
            c.IssueToken,
            principal=ALICE,
            grants=grants(("acme/alpha", "admin")),
            expires_in=timedelta(hours=2),
        ),
        "alice-write": c.build(
            c.IssueToken, principal=ALICE, grants=grants(("acme/alpha", "write"))
        ),
    }.items():
        result = ledger.execute(command, OPERATOR)
        assert result.issued is not None
        assert result.secret is not None
        secrets[name], ids[name] = result.secret, result.issued.token_id
    yield World(url=database_url, ledger=ledger, secrets=secrets, ids=ids)
    ledger.close()


def refused(
    world: World, actor: Actor, command: Callable[[], c.Command], error: type[LedgerError]
) -> LedgerError:
    """The command is refused with ``error`` and the log is left exactly as it was."""
    before = world.ledger.store.head()
    with pytest.raises(error) as caught:
        world.ledger.execute(command(), actor)
    assert world.ledger.store.head() == before, "a denied attempt was recorded"
    return caught.value


def accepted(world: World, actor: Actor, command: c.Command) -> CommandResult:
    result = world.ledger.execute(command, actor)
    assert result.records
    assert {r.actor for r in result.records} == {actor.label}
    return result


# -- service accounts ---------------------------------------------------------------------------


def test_a_service_account_token_manages_no_principals_grants_or_roles(world: World) -> None:
    """Even with admin on its project, a service account creates no users, accounts,
    memberships, grants or roles, and touches no other account."""
    ci = world.actor("ci")
    assert ci.kind is ActorKind.SERVICE_ACCOUNT
    forbidden: list[Callable[[], c.Command]] = [
        lambda: c.CreateOrg(org="mine"),
        lambda: c.CreateUser(email="mallory@acme.io"),
        lambda: c.DisableUser(email=BOB),
        lambda: c.AddMember(org="acme", email=CAROL, role="admin"),
        lambda: c.RemoveMember(org="acme", email=BOB),
        lambda: c.SetGrant(principal=CAROL, resource="acme/alpha", level=Level.READ),
        lambda: c.build(c.CreateRole, org="acme", role="x", grants=grants(("acme/alpha", "read"))),
        lambda: c.CreateServiceAccount(
            name="twin", org="acme", resource="acme/alpha", level=Level.READ
        ),
        lambda: c.SetServiceAccountPermission(
            account_id=ETL, resource="acme/alpha", level=Level.ADMIN
        ),
        lambda: c.SetServiceAccountPermission(
            account_id=CI, resource="acme/alpha", level=Level.READ
        ),
        lambda: c.DeleteServiceAccount(account_id=ETL),
        lambda: c.DeleteServiceAccount(account_id=CI),
        # Another account's tokens, though that account's permission lies on ci's project:
        lambda: c.IssueToken(principal=ETL),
        lambda: c.build(c.IssueToken, principal=ETL, grants=grants(("acme/alpha/raw", "read"))),
        lambda: c.RevokeToken(token_id=world.ids["etl"]),
        lambda: c.RevokeAllTokens(principal=ETL),
        # A person's tokens:
        lambda: c.build(c.IssueToken, principal=BOB, grants=grants(("acme/alpha", "read"))),
        lambda: c.RevokeToken(token_id=world.ids["bob"]),
        lambda: c.RevokeAllTokens(principal=BOB),
    ]
    for command in forbidden:
        refused(world, ci, command, PermissionDenied)
    assert world.ledger.verify(world.secrets["etl"]).active


def test_a_service_account_token_stays_inside_its_scope(world: World) -> None:
    ci = world.actor("ci")
    # Beyond its project: refused whatever the form.
    refused(world, ci, lambda: c.CreateResource(path="acme/beta/x"), PermissionDenied)
    refused(world, ci, lambda: c.DeleteResource(path="acme/beta"), PermissionDenied)
    refused(
        world,
        ci,
        lambda: c.build(c.IssueToken, principal=CI, grants=grants(("acme/beta", "read"))),
        ValidationError,
    )
    refused(
        world,
        ci,
        lambda: c.build(c.IssueToken, principal=CI, grants=grants(("acme", "read"))),
        ValidationError,
    )
    # Within it: allowed, and recorded as its own doing.
    accepted(world, ci, c.CreateResource(path="acme/alpha/made-by-ci"))
    own = accepted(
        world, ci, c.build(c.IssueToken, principal=CI, grants=grants(("acme/alpha/raw", "read")))
    )
    assert own.issued is not None
    assert own.issued.parent_id == world.ids["ci"]
    # A narrower token of the account cannot widen itself.
    narrow = world.actor("ci-read")
    refused(world, narrow, lambda: c.IssueToken(principal=CI), PermissionDenied)
    refused(world, narrow, lambda: c.CreateResource(path="acme/alpha/x"), PermissionDenied)
    refused(
        world, narrow, lambda: c.IssueToken(parent_id=world.ids["ci"]), PermissionDenied
    )  # deriving from its broader sibling


# -- users -----------------------------------------------------------------------------------------


def test_a_user_token_cannot_grant_above_its_own_level(world: World) -> None:
    write = world.actor("alice-write")  # alice is org admin, this token only writes on alpha
    for command in (
        lambda: c.SetGrant(principal=CAROL, resource="acme/alpha", level=Level.READ),
        lambda: c.SetGrant(principal=BOB, resource="acme/alpha", level=Level.ADMIN),
        lambda: c.AddMember(org="acme", email=CAROL, role="admin"),
        lambda: c.build(c.CreateRole, org="acme", role="x", grants=grants(("acme/alpha", "read"))),
        lambda: c.CreateServiceAccount(name="x", org="acme", resource="acme/alpha", level="read"),
        lambda: c.DeleteResource(path="acme/alpha/raw"),
        lambda: c.build(c.IssueToken, principal=ALICE, grants=grants(("acme/alpha", "admin"))),
        lambda: c.build(c.IssueToken, principal=ALICE, grants=grants(("acme/beta", "read"))),
        lambda: c.IssueToken(principal=CI),
    ):
        refused(world, write, command, PermissionDenied)

    alpha_admin = world.actor("alice-alpha-admin")
    # Equal to its own level on alpha: allowed. Anything on acme itself or beta: refused.
    accepted(world, alpha_admin, c.SetGrant(principal=CAROL, resource="acme/alpha", level="admin"))
    for command in (
        lambda: c.SetGrant(principal=CAROL, resource="acme", level=Level.READ),
        lambda: c.SetGrant(principal=CAROL, resource="acme/beta", level=Level.READ),
        lambda: c.AddMember(org="acme", email=CAROL, role="admin"),
        lambda: c.build(c.CreateRole, org="acme", role="y", grants=grants(("acme/alpha", "read"))),
        lambda: c.SetServiceAccountPermission(
            account_id=ETL, resource="acme/beta", level=Level.READ
        ),  # needs admin on both projects
        lambda: c.CreateUser(email="dave@acme.io"),  # needs admin of an org
    ):
        refused(world, alpha_admin, command, PermissionDenied)

    # A token's power is its grants cut to the principal's current permission: once alice is
    # no longer an admin, her admin token grants nothing it did.
    admin = world.actor("alice-admin")
    accepted(world, admin, c.SetGrant(principal=CAROL, resource="acme/beta", level="read"))
    world.ledger.execute(c.AddMember(org="acme", email=ALICE, role="member"), OPERATOR)
    refused(
        world,
        admin,
        lambda: c.SetGrant(principal=CAROL, resource="acme/beta", level=Level.WRITE),
        PermissionDenied,
    )
    refused(world, admin, lambda: c.CreateResource(path="acme/beta/x"), PermissionDenied)


def test_a_user_token_cannot_issue_for_others(world: World) -> None:
    bob = world.actor("bob")
    for command in (
        lambda: c.build(c.IssueToken, principal=CAROL, grants=grants(("acme/alpha", "read"))),
        lambda: c.IssueToken(principal=ETL),  # bob has no admin on its project
        lambda: c.RevokeToken(token_id=world.ids["alice-write"]),
        lambda: c.RevokeAllTokens(principal=ALICE),
        lambda: c.RevokeToken(token_id=world.ids["etl"]),
    ):
        refused(world, bob, command, PermissionDenied)


# -- derived tokens ---------------------------------------------------------------------------


def test_a_derived_token_never_exceeds_its_parent(world: World) -> None:
    parent = world.ids["bob"]  # write on acme/alpha, 30 days
    child = accepted(
        world,
        OPERATOR,
        c.build(c.IssueToken, parent_id=parent, grants=grants(("acme/alpha/raw", "read"))),
    )
    assert child.issued is not None
    assert child.issued.kind == "derived"
    for command, error in (
        (
            lambda: c.build(c.IssueToken, parent_id=parent, grants=grants(("acme/alpha", "admin"))),
            PermissionDenied,
        ),
        (
            lambda: c.build(c.IssueToken, parent_id=parent, grants=grants(("acme/beta", "read"))),
            PermissionDenied,
        ),
        (
            lambda: c.build(c.IssueToken, parent_id=parent, expires_in=timedelta(days=60)),
            ValidationError,
        ),
        (lambda: c.build(c.IssueToken, parent_id=parent, no_expiry=True), ValidationError),
        (
            lambda: c.build(c.IssueToken, principal=ALICE, parent_id=parent),
            ValidationError,
        ),  # a derived token belongs to its parent's principal
    ):
        refused(world, OPERATOR, command, error)
    # Acting through the narrow child: not even from its broader parent.
    narrow = world.ledger.authenticate(child.secret or "")
    refused(
        world,
        narrow,
        lambda: c.build(c.IssueToken, parent_id=parent, grants=grants(("acme/alpha", "write"))),
        PermissionDenied,
    )
    world.ledger.execute(c.RevokeToken(token_id=parent), OPERATOR)
    assert world.ledger.verify(child.secret or "").reason == "revoked"
    refused(world, OPERATOR, lambda: c.IssueToken(parent_id=parent), Conflict)


def test_a_token_minted_through_a_token_never_outlives_or_escapes_it(world: World) -> None:
    """Acting through a short-lived derived token, a principal asks for a long-lived personal
    token: it is bounded by the token it was minted through and dies with it, so a stolen
    token cannot mint a successor that survives its revocation."""
    derived = accepted(
        world,
        OPERATOR,
        c.build(
            c.IssueToken, parent_id=world.ids["bob"], grants=grants(("acme/alpha/raw", "read"))
        ),
    )
    assert derived.issued is not None
    assert derived.issued.expires_at is not None
    through = world.ledger.authenticate(derived.secret or "")
    minted = accepted(
        world,
        through,
        c.build(c.IssueToken, principal=BOB, grants=grants(("acme/alpha/raw", "read"))),
    )
    event = minted.issued
    assert event is not None
    assert event.kind == "personal"
    assert event.parent_id == derived.issued.token_id
    assert event.expires_at is not None
    assert event.expires_at <= derived.issued.expires_at
    for command in (
        lambda: c.build(
            c.IssueToken,
            principal=BOB,
            grants=grants(("acme/alpha/raw", "read")),
            expires_in=timedelta(days=30),
        ),
        lambda: c.build(
            c.IssueToken, principal=BOB, grants=grants(("acme/alpha/raw", "read")), no_expiry=True
        ),
    ):
        refused(world, through, command, ValidationError)

    revoked = world.ledger.execute(c.RevokeToken(token_id=world.ids["bob"]), OPERATOR).revoked
    assert revoked == [world.ids["bob"], derived.issued.token_id, event.token_id]
    assert world.ledger.verify(minted.secret or "").reason == "revoked"


# -- re-checking the acting token -----------------------------------------------------------------


def test_a_token_revoked_after_authentication_acts_no_more(world: World) -> None:
    """The actor was authenticated, then its token was revoked (or its principal disabled)
    before the command ran: the decision, under the write lock, refuses it."""
    stale = world.actor("alice-admin")
    world.ledger.execute(c.RevokeToken(token_id=world.ids["alice-admin"]), OPERATOR)
    for command in (
        lambda: c.RevokeToken(token_id=world.ids["alice-write"]),  # her own token
        lambda: c.RevokeAllTokens(principal=ALICE),
        lambda: c.build(c.IssueToken, principal=ALICE, grants=grants(("acme/alpha", "read"))),
        lambda: c.SetGrant(principal=CAROL, resource="acme/alpha", level=Level.READ),
        lambda: c.CreateUser(email="dave@acme.io"),
    ):
        refused(world, stale, command, PermissionDenied)

    ci = world.actor("ci")
    world.ledger.execute(
        c.SetServiceAccountPermission(account_id=CI, resource="acme/beta", level=Level.WRITE),
        OPERATOR,
    )
    refused(world, ci, lambda: c.RevokeToken(token_id=world.ids["ci-read"]), PermissionDenied)
    refused(world, ci, lambda: c.CreateResource(path="acme/alpha/x"), PermissionDenied)
    # An actor that names no token at all is nobody.
    nobody = Actor(kind=ActorKind.USER, principal=BOB)
    refused(world, nobody, lambda: c.RevokeToken(token_id=world.ids["bob"]), PermissionDenied)


# -- denials are not recorded ------------------------------------------------------------------


def test_denied_attempts_append_nothing(world: World) -> None:
    """The ledger records changes, not attempts: after many denials the log is as it was
    (docs/security.md says why; the denial goes to the caller and the application log)."""
    before = world.ledger.store.head()
    for name in ("ci", "bob", "alice-write"):
        actor = world.actor(name)
        for command in (
            c.CreateOrg(org="evil"),
            c.DisableUser(email=ALICE),
            c.AddMember(org="other", email=CAROL, role="admin"),
        ):
            with pytest.raises((PermissionDenied, NotFound)):
                world.ledger.execute(command, actor)
    assert world.ledger.store.head() == before
    types = {r.event_type for r in world.ledger.store.read_all()}
    assert not any("Denied" in t or "Refused" in t for t in types)


def test_denials_through_the_cli_are_one_line_and_append_nothing(world: World) -> None:
    url = world.url
    before = cli_head(url)
    for args, token in (
        (["users", "create", "mallory@acme.io"], "ci"),
        (["orgs", "add-member", "acme", CAROL, "--role", "admin"], "ci"),
        (["grants", "set", CAROL, "acme/alpha", "read"], "ci"),
        (["roles", "create", "acme", "x", "--grant", "acme/alpha=read"], "ci"),
        (["service-accounts", "delete", ETL], "ci"),
        (["tokens", "create", "--principal", ETL], "ci"),
        (["tokens", "revoke", world.ids["etl"]], "ci"),
        (["grants", "set", BOB, "acme/alpha", "admin"], "alice-write"),
        (["tokens", "create", "--principal", ALICE, "--resource", "acme", "--level", "admin"],
         "alice-write"),
        (["tokens", "create", "--parent", world.ids["bob"], "--resource", "acme/alpha",
          "--level", "admin"], "bob"),
    ):  # fmt: skip
        result = cli_run(url, *args, token=world.secrets[token])
        assert_one_line_error(result, 4)
        assert world.secrets[token] not in result.output
    assert cli_head(url) == before


# -- the rule as a property, on the pure decision ------------------------------------------------

_RESOURCES = ["acme", "acme/alpha", "acme/alpha/raw", "acme/beta"]
_LEVELS = [Level.READ, Level.APPEND, Level.WRITE, Level.ADMIN]


@settings(max_examples=300, deadline=None)
@given(
    token_grants=st.lists(
        st.tuples(st.sampled_from(_RESOURCES), st.sampled_from(_LEVELS)), min_size=1, max_size=3
    ),
    role=st.sampled_from(["admin", "auditor", "member"]),
    resource=st.sampled_from(_RESOURCES),
    level=st.sampled_from(_LEVELS),
)
def test_nothing_issued_or_granted_through_a_token_exceeds_it(
    token_grants: list[tuple[str, Level]], role: str, resource: str, level: Level
) -> None:
    """Whatever alice's role and her token's grants: an accepted SetGrant needs admin through
    the token there, and an accepted IssueToken lies within the token and her permission."""
    from tokenledger.domain import events as e
    from tokenledger.domain.permissions import Grant
    from tokenledger.domain.state import fold

    now = datetime(2026, 1, 1, tzinfo=UTC)
    token_fields = {
        "token_id": "tok_A000000000000001",
        "principal": ALICE,
        "kind": "personal",
        "secret_hash": "0" * 64,
        "grants": tuple(sorted({Grant(r, lvl.label) for r, lvl in token_grants})),
        "issued_at": now,
        "expires_at": now + timedelta(days=1),
    }
    if "issued_by" in TokenIssued.__struct_fields__:
        token_fields["issued_by"] = None
    history: list[e.Event] = [
        e.OrgCreated(org="acme"),
        *(e.ResourceCreated(path=p, kind="project") for p in _RESOURCES[1:]),
        e.UserCreated(email=ALICE),
        e.MemberAdded(org="acme", email=ALICE, role=role),
        e.UserCreated(email=CAROL),
        e.MemberAdded(org="acme", email=CAROL, role="member"),
        TokenIssued(**token_fields),  # type: ignore[arg-type]
    ]
    state: LedgerState = fold((event, now) for event in history)
    actor = Actor(kind=ActorKind.USER, principal=ALICE, token_id="tok_A000000000000001")
    token = state.tokens["tok_A000000000000001"]
    through = min(
        level_at(token.grants, resource), level_at(principal_grants(state, ALICE), resource)
    )

    def mint(kind: TokenKind) -> tuple[str, str]:
        return "tok_B000000000000001", "1" * 64

    context = Context(actor=actor, now=now, mint=mint)
    try:
        decide(c.SetGrant(principal=CAROL, resource=resource, level=level), state, context)
    except LedgerError:
        pass
    else:
        assert through >= Level.ADMIN
    try:
        [issued] = decide(
            c.build(c.IssueToken, principal=ALICE, grants=[{"resource": resource, "level": level}]),
            state,
            context,
        )
    except LedgerError:
        assert through < level
    else:
        assert isinstance(issued, TokenIssued)
        assert level <= through
        assert issued.parent_id == "tok_A000000000000001"
