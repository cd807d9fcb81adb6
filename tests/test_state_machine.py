"""A hypothesis state machine drives the ledger through random sequences of every command,
valid and invalid (unknown names, bad levels, grants above the principal, moves, deletes,
revokes, derived tokens, commands acting through tokens), while freezegun moves time forward
so tokens expire. After every step:

* the live projections equal a fresh fold of the whole log (``domain.state.fold``);
* no revoked, expired or disabled-principal token verifies, and every other one does;
* every token's effective grants are exactly its grants lowered to its principal's current
  permission (so they lie within both), a derived token lies within its parent and dies
  with it, and a live service-account token stays inside its account's current project;
* a refused command appended nothing (checked right after each command);
* the hash chain verifies.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from freezegun import freeze_time
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from helpers import assert_projections_match_log, fold_log
from tokenledger.domain import commands as c
from tokenledger.domain.authority import account_suspended, principal_grants, standing
from tokenledger.domain.events import TokenIssued, TokenRevoked
from tokenledger.domain.model import Actor, ActorKind, is_service_account_id
from tokenledger.domain.permissions import Grant, Level, is_within, level_at
from tokenledger.domain.state import LedgerState
from tokenledger.errors import LedgerError
from tokenledger.service import CommandResult, Ledger
from tokenledger.store import open_event_store

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
OPERATOR = Actor.operator("fuzzer")
UNKNOWN_TOKEN = "tok_0000000000000000"
UNKNOWN_ACCOUNT_ID = "0123456789abcdef0123456789abcdef"

# Pools of values: valid ones (weighted eight to one), then invalid ones: bad names,
# look-alikes (a Cyrillic a, U+0430), paths that climb or go too deep, unknown names.
VALID_ORGS = ["acme", "beta", "gamma"]
BAD_ORGS = ["Acme", "acme/x", "\u0430cme", "a" * 64, ""]
VALID_EMAILS = ["alice@acme.io", "bob@acme.io", "carol@beta.io", "dave@acme.io"]
BAD_EMAILS = ["not-an-email", "x@acme.service.tokenledger", "bob@acme.io'--"]
VALID_PATHS = [
    "acme", "acme/alpha", "acme/alpha/raw", "acme/beta", "beta", "beta/gamma", "beta/gamma/x",
    "gamma/delta",
]  # fmt: skip
BAD_PATHS = ["acme/../etc", "Acme/alpha", "nope/x", "acme/alpha/raw/d/o/too-deep", "acme//x"]
VALID_LEVELS = ["read", "append", "write", "admin"]
BAD_LEVELS = ["none", "root", "ADMIN ", ""]
VALID_ROLES = ["member", "admin", "auditor", "reader"]
BAD_ROLES = ["ghost", "Bad Role"]
VALID_ACCOUNT_NAMES = ["ci", "etl"]
BAD_ACCOUNT_NAMES = ["Bad!", "ci@acme"]
VALID_ACCOUNTS = [
    "ci@acme.service.tokenledger", "etl@beta.service.tokenledger", "ci@beta.service.tokenledger",
    "etl@acme.service.tokenledger",
]  # fmt: skip
BAD_ACCOUNTS = ["ghost@acme.service.tokenledger", "ci@@acme.service.tokenledger"]


def weighted(valid: list[str], invalid: list[str]) -> st.SearchStrategy[str]:
    return st.sampled_from(valid * 8 + invalid)


orgs = weighted(VALID_ORGS, BAD_ORGS)
emails = weighted(VALID_EMAILS, BAD_EMAILS)
#: Dyff's accounts: NAME is an email (``acme`` is refused), often one no user has yet.
account_emails = weighted([*VALID_EMAILS, "frank@beta.io"], [*BAD_EMAILS, "acme"])
paths = weighted(VALID_PATHS, BAD_PATHS)
levels = weighted(VALID_LEVELS, BAD_LEVELS)
roles = weighted(VALID_ROLES, BAD_ROLES)
accounts = weighted(VALID_ACCOUNTS, BAD_ACCOUNTS)
principals = weighted(VALID_EMAILS + VALID_ACCOUNTS, BAD_EMAILS + BAD_ACCOUNTS)
grant_lists = st.lists(st.tuples(paths, levels), max_size=3)
#: A resource's license and data class (None: left as it is).
licenses = st.one_of(st.none(), weighted(["MIT", "CC-BY-4.0"], ["bad license"]))
data_classes = st.one_of(
    st.none(), weighted(["public", "DATA_CLASS_PRIVATE", "confidential"], ["secret"])
)
#: None: the operator; a number: act through one of the secrets issued so far (an even
#: number picks among the live ones, an odd one among all, revoked and expired included).
actors = st.one_of(st.none(), st.integers(min_value=0, max_value=63))
#: A token issued so far (by index), or an id that names no token.
_known = st.integers(min_value=0, max_value=63)
token_refs = st.one_of(_known, _known, _known, st.just(UNKNOWN_TOKEN))
expiries = st.one_of(
    st.none(),
    st.builds(
        lambda d: {"expires_in": d},
        st.sampled_from([timedelta(hours=1), timedelta(days=2), timedelta(days=40)]),
    ),
    st.builds(
        lambda d: {"expires_at_in": d}, st.sampled_from([timedelta(hours=3), -timedelta(hours=1)])
    ),
    st.just({"no_expiry": True}),
)
time_steps = st.sampled_from(
    [
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(days=3),
        timedelta(days=31),
        timedelta(days=400),
    ]
)

#: Destructive commands (disable, remove, delete) run on one draw in four, so that a run
#: does not spend most of its steps in a world that is already gone.
destroy = st.integers(min_value=0, max_value=3).map(lambda n: n == 0)

#: The world every run starts from; the random steps change it from there.
WORLD: list[c.Command] = [
    c.CreateOrg(org="acme"),
    c.CreateOrg(org="beta"),
    c.CreateResource(path="acme/alpha"),
    c.CreateResource(path="acme/alpha/raw"),
    c.CreateResource(path="acme/beta"),
    c.CreateResource(path="beta/gamma"),
    c.CreateUser(email="alice@acme.io"),
    c.AddMember(org="acme", email="alice@acme.io", role="admin"),
    c.CreateUser(email="bob@acme.io"),
    c.AddMember(org="acme", email="bob@acme.io"),
    c.SetGrant(principal="bob@acme.io", resource="acme/alpha", level=Level.WRITE),
    c.CreateUser(email="carol@beta.io"),
    c.AddMember(org="beta", email="carol@beta.io", role="auditor"),
    c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level=Level.ADMIN),
    c.CreateServiceAccount(name="etl", org="beta", resource="beta/gamma", level=Level.READ),
    c.build(
        c.CreateRole, org="acme", role="reader", grants=[{"resource": "acme", "level": "read"}]
    ),
    c.CreateAccount(email="erin@acme.io"),
    c.AddMember(org="acme", email="erin@acme.io", role="reader"),
    c.SetGrant(principal="erin@acme.io", resource="acme/beta", level=Level.WRITE),
]

#: Tokens the world starts with (and one derived from the first of them).
TOKENS: list[c.Command] = [
    c.build(
        c.IssueToken,
        principal="alice@acme.io",
        grants=[{"resource": "acme", "level": "admin"}],
        expires_in=timedelta(days=2),
    ),
    c.build(
        c.IssueToken, principal="bob@acme.io", grants=[{"resource": "acme/alpha", "level": "write"}]
    ),
    c.IssueToken(principal="ci@acme.service.tokenledger"),
    c.build(
        c.IssueToken, principal="carol@beta.io", grants=[{"resource": "beta", "level": "read"}]
    ),
]


class LedgerMachine(RuleBasedStateMachine):
    """The ledger under random commands; ``new_url`` gives each run an empty database."""

    new_url: Callable[[], str]

    def __init__(self) -> None:
        super().__init__()
        self.freezer = freeze_time(START, ignore=["hypothesis"])
        self.clock = self.freezer.start()
        try:
            self.ledger = Ledger(open_event_store(type(self).new_url(), auto_upgrade=True))
        except BaseException:
            self.freezer.stop()
            raise
        self.secrets: dict[str, str] = {}
        self._folded: tuple[int, LedgerState] | None = None

    def state(self) -> LedgerState:
        """The fold of the log, cached until the log's head moves."""
        head = self.ledger.store.head().position
        if self._folded is None or self._folded[0] != head:
            self._folded = (head, fold_log(self.ledger))
        return self._folded[1]

    def teardown(self) -> None:
        self.ledger.close()
        self.freezer.stop()

    # -- running a command -----------------------------------------------------------------

    def _actor(self, choice: int | None) -> Actor:
        if choice is None or not self.secrets:
            return OPERATOR
        candidates = list(self.secrets)  # issue order: deterministic, unlike the ids
        if choice % 2 == 0:
            state, now = self.state(), self.ledger.now()
            live = [
                t
                for t in candidates
                if state.tokens[t].live(now)
                and standing(state, state.tokens[t].principal) is not None
            ]
            candidates = live or candidates
        token_id = candidates[(choice // 2) % len(candidates)]
        return self.ledger.authenticate(self.secrets[token_id])  # may refuse: a rejection

    def _token_id(self, ref: int | str) -> str:
        """A token issued so far: an even ``ref`` picks among the live ones (when there are
        any), an odd one among all; a string names no token at all."""
        if isinstance(ref, str) or not self.secrets:
            return UNKNOWN_TOKEN
        candidates = list(self.secrets)  # issue order: deterministic, unlike the ids
        if ref % 2 == 0:
            state, now = self.state(), self.ledger.now()
            candidates = [t for t in candidates if state.tokens[t].live(now)] or candidates
        return candidates[(ref // 2) % len(candidates)]

    def _run(
        self, build: Callable[[], c.Command], actor_choice: int | None
    ) -> tuple[CommandResult, Actor] | None:
        """Build the command (validation at the edge), authenticate, execute. A refusal must
        leave the log exactly as it was; a success appends positions right after the head."""
        before = self.ledger.store.head()
        try:
            actor = self._actor(actor_choice)
            command = build()
            result = self.ledger.execute(command, actor)
        except LedgerError as exc:
            event(f"refused: {type(exc).__name__}")
            assert self.ledger.store.head() == before, "a refused command appended events"
            return None
        via = "operator" if actor.kind is ActorKind.OPERATOR else "token"
        event(f"accepted: {type(command).__name__} via {via}")
        if result.revoked:
            event("a cascade revoked tokens")
        positions = [r.position for r in result.records]
        assert positions == list(range(before.position + 1, before.position + 1 + len(positions)))
        if result.secret is not None:
            assert result.issued is not None
            self.secrets[result.issued.token_id] = result.secret
        return result, actor

    # -- a starting world, sometimes ---------------------------------------------------------

    @initialize()
    def start(self) -> None:
        for command in WORLD:
            self.ledger.execute(command, OPERATOR)
        for command in TOKENS:
            result = self.ledger.execute(command, OPERATOR)
            assert result.issued is not None
            assert result.secret is not None
            self.secrets[result.issued.token_id] = result.secret
        first = next(iter(self.secrets))
        child = self.ledger.execute(c.IssueToken(parent_id=first), OPERATOR)
        assert child.issued is not None
        assert child.secret is not None
        self.secrets[child.issued.token_id] = child.secret

    # -- the commands ---------------------------------------------------------------------

    @rule(org=orgs, actor=actors)
    def create_org(self, org: str, actor: int | None) -> None:
        self._run(lambda: c.build(c.CreateOrg, org=org), actor)

    @rule(email=emails, actor=actors)
    def create_user(self, email: str, actor: int | None) -> None:
        self._run(lambda: c.build(c.CreateUser, email=email, name="Name O'Brien"), actor)

    @rule(email=account_emails, actor=actors)
    def create_account(self, email: str, actor: int | None) -> None:
        """Dyff's ``accounts create``: a user with an account id."""
        self._run(lambda: c.build(c.CreateAccount, email=email), actor)

    @rule(
        data=st.data(),
        role=st.sampled_from([None, "Admin", "AuditDeveloper"]),
        expiry=expiries,
        actor=actors,
    )
    def issue_token_for_account(
        self,
        data: st.DataObject,
        role: str | None,
        expiry: dict[str, Any] | None,
        actor: int | None,
    ) -> None:
        """A token whose principal is named by a Dyff account id (or an id naming nobody),
        with Dyff's built-in roles or (some of) what the account's user may have."""
        state = self.state()
        # By email: the ids are random, and a replayed run must draw the same account.
        by_email = sorted(state.emails_by_account_id, key=state.emails_by_account_id.__getitem__)
        ids = [*by_email, UNKNOWN_ACCOUNT_ID]
        account_id = data.draw(st.sampled_from(ids))
        email = state.emails_by_account_id.get(account_id, "")
        grants = [] if role else self._some_of(data, principal_grants(state, email))
        self._issue(account_id, grants, role, expiry, None, actor)

    @rule(email=emails, actor=actors, really=destroy)
    def disable_user(self, email: str, actor: int | None, really: bool) -> None:
        if not really:
            return
        self._run(lambda: c.build(c.DisableUser, email=email, reason="left"), actor)

    @rule(org=orgs, email=emails, role=roles, actor=actors)
    def add_member(self, org: str, email: str, role: str, actor: int | None) -> None:
        self._run(lambda: c.build(c.AddMember, org=org, email=email, role=role), actor)

    @rule(org=orgs, email=emails, actor=actors, really=destroy)
    def remove_member(self, org: str, email: str, actor: int | None, really: bool) -> None:
        if not really:
            return
        self._run(lambda: c.build(c.RemoveMember, org=org, email=email), actor)

    @rule(path=paths, actor=actors)
    def create_resource(self, path: str, actor: int | None) -> None:
        self._run(lambda: c.build(c.CreateResource, path=path), actor)

    @rule(path=paths, recursive=st.booleans(), actor=actors, really=destroy)
    def delete_resource(self, path: str, recursive: bool, actor: int | None, really: bool) -> None:
        if not really:
            return
        self._run(lambda: c.build(c.DeleteResource, path=path, recursive=recursive), actor)

    @rule(path=paths, license=licenses, data_class=data_classes, actor=actors)
    def set_resource_attributes(
        self, path: str, license: str | None, data_class: str | None, actor: int | None
    ) -> None:
        self._run(
            lambda: c.build(
                c.SetResourceAttributes, path=path, license=license, data_class=data_class
            ),
            actor,
        )

    @rule(principal=principals, path=paths, level=levels, actor=actors)
    def set_grant(self, principal: str, path: str, level: str, actor: int | None) -> None:
        self._run(
            lambda: c.build(c.SetGrant, principal=principal, resource=path, level=level), actor
        )

    @rule(org=orgs, role=roles, grants=grant_lists, actor=actors)
    def create_role(
        self, org: str, role: str, grants: list[tuple[str, str]], actor: int | None
    ) -> None:
        specs = [{"resource": r, "level": lvl} for r, lvl in grants]
        self._run(lambda: c.build(c.CreateRole, org=org, role=role, grants=specs), actor)

    @rule(
        name=weighted(VALID_ACCOUNT_NAMES, BAD_ACCOUNT_NAMES),
        org=orgs,
        path=paths,
        level=levels,
        actor=actors,
    )
    def create_service_account(
        self, name: str, org: str, path: str, level: str, actor: int | None
    ) -> None:
        self._run(
            lambda: c.build(c.CreateServiceAccount, name=name, org=org, resource=path, level=level),
            actor,
        )

    @rule(account=accounts, path=paths, level=levels, actor=actors)
    def set_service_account_permission(
        self, account: str, path: str, level: str, actor: int | None
    ) -> None:
        self._run(
            lambda: c.build(
                c.SetServiceAccountPermission, account_id=account, resource=path, level=level
            ),
            actor,
        )

    @rule(data=st.data(), level=levels, actor=actors)
    def move_service_account(self, data: st.DataObject, level: str, actor: int | None) -> None:
        """An existing account to a project of its org (often another one: a cascade)."""
        state = self.state()
        names = sorted(state.accounts)
        if not names:
            return
        account = state.accounts[data.draw(st.sampled_from(names))]
        projects = sorted(
            p for p in state.resources if p.count("/") == 1 and p.startswith(account.org + "/")
        )
        target = data.draw(st.sampled_from(projects or [account.permission.resource]))
        self._run(
            lambda: c.build(
                c.SetServiceAccountPermission,
                account_id=account.account_id,
                resource=target,
                level=level,
            ),
            actor,
        )

    @rule(account=accounts, actor=actors, really=destroy)
    def delete_service_account(self, account: str, actor: int | None, really: bool) -> None:
        if not really:
            return
        self._run(lambda: c.build(c.DeleteServiceAccount, account_id=account), actor)

    @rule(
        principal=st.one_of(principals, principals, st.none()),
        grants=grant_lists,
        role=st.one_of(st.none(), roles, st.just("acme:admin")),
        expiry=expiries,
        parent=st.one_of(st.none(), st.none(), token_refs),
        actor=actors,
    )
    def issue_token(
        self,
        principal: str | None,
        grants: list[tuple[str, str]],
        role: str | None,
        expiry: dict[str, Any] | None,
        parent: int | str | None,
        actor: int | None,
    ) -> None:
        """Anything goes: unknown principals, bad levels, grants above the principal."""
        parent_id = None if parent is None else self._token_id(parent)
        self._issue(principal, grants, role, expiry, parent_id, actor)

    @rule(data=st.data(), expiry=expiries, actor=actors)
    def issue_token_within(
        self, data: st.DataObject, expiry: dict[str, Any] | None, actor: int | None
    ) -> None:
        """A principal that exists, asking for (some of) what it may have, often lowered."""
        state = self.state()
        names = sorted(state.users) + sorted(state.accounts)
        if not names:
            return
        principal = data.draw(st.sampled_from(names))
        grants = self._some_of(data, principal_grants(state, principal))
        if is_service_account_id(principal) and data.draw(st.booleans()):
            grants = []  # the account's default: its whole permission
        self._issue(principal, grants, None, expiry, None, actor)

    @rule(
        data=st.data(), parent=st.integers(min_value=0, max_value=63), expiry=expiries, actor=actors
    )
    def derive_token(
        self,
        data: st.DataObject,
        parent: int | str,
        expiry: dict[str, Any] | None,
        actor: int | None,
    ) -> None:
        """A token derived from one issued earlier (in whatever state it is now), or from an
        unknown id."""
        parent_id = self._token_id(parent)
        token = self.state().tokens.get(parent_id)
        grants = self._some_of(data, token.grants if token is not None else ())
        self._issue(None, grants, None, expiry, parent_id, actor)

    @staticmethod
    def _some_of(data: st.DataObject, limit: Sequence[Grant]) -> list[tuple[str, str]]:
        """A few of ``limit``'s grants, each at its level or lower, sometimes one level higher."""
        if not limit:
            return []
        chosen = data.draw(
            st.lists(st.sampled_from(list(limit)), min_size=1, max_size=2, unique=True)
        )
        picked = []
        for grant in chosen:
            rank = grant.rank + data.draw(st.sampled_from([0, 0, -1, -2, 1]))
            level = Level(min(max(rank, Level.READ), Level.ADMIN))
            picked.append((grant.resource, level.label))
        return picked

    def _issue(
        self,
        principal: str | None,
        grants: list[tuple[str, str]],
        role: str | None,
        expiry: dict[str, Any] | None,
        parent_id: str | None,
        actor: int | None,
    ) -> None:
        fields: dict[str, Any] = {
            "principal": principal,
            "grants": [{"resource": r, "level": lvl} for r, lvl in grants],
            "role": role,
            "parent_id": parent_id,
        }
        if expiry is not None:
            expiry = dict(expiry)
            if "expires_at_in" in expiry:
                expiry["expires_at"] = self.ledger.now() + expiry.pop("expires_at_in")
            fields.update(expiry)
        before = self.state()
        outcome = self._run(lambda: c.build(c.IssueToken, **fields), actor)
        if outcome is None:
            return
        result, acting = outcome
        issued = result.issued
        assert isinstance(issued, TokenIssued)
        assert [type(e) for e in result.events] == [TokenIssued]
        if principal is not None and principal in before.emails_by_account_id:
            assert issued.principal == before.emails_by_account_id[principal]
        # At issue time: within the principal's permission, the parent and the acting token.
        limits = [principal_grants(before, issued.principal)]
        if issued.parent_id is not None:
            limits.append(before.tokens[issued.parent_id].grants)
        if acting.kind is not ActorKind.OPERATOR:
            assert acting.token_id is not None
            acting_token = before.tokens[acting.token_id]
            limits.append(acting_token.grants)
            limits.append(principal_grants(before, acting_token.principal))
            if parent_id is None and acting.principal == issued.principal:
                # Minted through a token of its own principal: that token's child.
                assert issued.parent_id == acting.token_id
        for limit in limits:
            for grant in issued.grants:
                assert level_at(limit, grant.resource) >= grant.rank, (grant, limit)

    @rule(token=token_refs, actor=actors)
    def revoke_token(self, token: int | str, actor: int | None) -> None:
        token_id = self._token_id(token)
        self._run(lambda: c.build(c.RevokeToken, token_id=token_id, reason="fuzz"), actor)

    @rule(data=st.data(), actor=actors)
    def revoke_a_parent(self, data: st.DataObject, actor: int | None) -> None:
        """Revoke a live token that has a live derived token: a cascade to check."""
        state, now = self.state(), self.ledger.now()
        parents = [
            t.parent_id
            for t in state.tokens.values()
            if t.parent_id is not None and t.live(now) and state.tokens[t.parent_id].live(now)
        ]
        if not parents:
            return
        token_id = data.draw(st.sampled_from(sorted(set(parents), key=list(state.tokens).index)))
        self._run(lambda: c.build(c.RevokeToken, token_id=token_id), actor)

    @rule(
        token=token_refs,
        overlap=st.sampled_from([timedelta(0), timedelta(minutes=30), timedelta(days=1)]),
        actor=actors,
    )
    def rotate_token(self, token: int | str, overlap: timedelta, actor: int | None) -> None:
        """Rotate a token in whatever state it is: its successor is issued as issuing would,
        and the old one's expiry only ever comes forward."""
        token_id = self._token_id(token)
        before = self.state().tokens.get(token_id)
        outcome = self._run(
            lambda: c.build(c.RotateToken, token_id=token_id, overlap=overlap), actor
        )
        if outcome is None or before is None:
            return
        after = self.state().tokens[token_id]
        assert after.expires_at is not None
        assert before.expires_at is None or after.expires_at <= before.expires_at
        assert after.expires_at <= self.ledger.now() + overlap

    @rule(
        org=orgs,
        lifetime=st.one_of(st.none(), st.sampled_from([timedelta(hours=1), timedelta(days=40)])),
        require_expiry=st.booleans(),
        max_live_tokens=st.one_of(st.none(), st.integers(min_value=1, max_value=4)),
        existing=st.sampled_from([None, "cap", "leave"]),
        actor=actors,
    )
    def set_org_policy(
        self,
        org: str,
        lifetime: timedelta | None,
        require_expiry: bool,
        max_live_tokens: int | None,
        existing: str | None,
        actor: int | None,
    ) -> None:
        """A policy, sometimes breaking live tokens: capping only ever brings expiries
        forward."""
        fields: dict[str, Any] = {
            "org": org,
            "require_expiry": require_expiry,
            "max_live_tokens": max_live_tokens,
            "existing": existing,
        }
        if lifetime is not None:
            fields["max_lifetime"] = {"service": lifetime, "personal": lifetime}
        self._run(lambda: c.build(c.SetOrgPolicy, **fields), actor)

    @rule(principal=principals, actor=actors)
    def revoke_all_tokens(self, principal: str, actor: int | None) -> None:
        self._run(lambda: c.build(c.RevokeAllTokens, principal=principal), actor)

    @rule(token=token_refs, actor=actors, enable=st.booleans())
    def suspend_token(self, token: int | str, actor: int | None, enable: bool) -> None:
        token_id = self._token_id(token)
        kind = c.EnableToken if enable else c.DisableToken
        self._run(lambda: c.build(kind, token_id=token_id), actor)

    @rule(account=accounts, actor=actors, enable=st.booleans())
    def suspend_service_account(self, account: str, actor: int | None, enable: bool) -> None:
        kind = c.EnableServiceAccount if enable else c.DisableServiceAccount
        self._run(lambda: c.build(kind, account_id=account), actor)

    @rule(
        principal=st.none() | principals,
        org=st.none() | orgs,
        path=st.none() | paths,
        issued_before=st.sampled_from([None, START, START + timedelta(days=3)]),
        actor=actors,
    )
    def revoke_tokens_where(
        self,
        principal: str | None,
        org: str | None,
        path: str | None,
        issued_before: datetime | None,
        actor: int | None,
    ) -> None:
        """What a filter revokes is exactly what the reference fold's tokens match, by the
        one rule (``TokenFilter.matches``): the projections' pre-selection loses none."""
        where = {"principal": principal, "org": org, "resource": path}
        where["issued_before"] = issued_before  # type: ignore[assignment]

        def build() -> c.Command:
            return c.build(c.RevokeTokensWhere, where=where)

        state, now = self.state(), self.ledger.now()
        done = self._run(build, actor)
        if done is None:
            return
        command = build()
        assert isinstance(command, c.RevokeTokensWhere)
        selected = command.where.token_filter()
        expected = {t.token_id for t in state.tokens.values() if selected.matches(t, now)}
        roots = {
            e.token_id
            for e in done[0].events
            if isinstance(e, TokenRevoked) and e.reason == "requested"
        }
        assert roots == expected

    @rule(org=orgs, actor=actors)
    def create_webhook(self, org: str, actor: int | None) -> None:
        self._run(
            lambda: c.build(
                c.CreateWebhook,
                org=org,
                url="https://hooks.example/in",
                events=("token.revoked", "token.expiring"),
            ),
            actor,
        )

    @rule(data=st.data(), actor=actors, really=destroy)
    def delete_webhook(self, data: st.DataObject, actor: int | None, really: bool) -> None:
        if not really:
            return
        known = sorted(self.state().webhooks) or ["wh_" + "0" * 24]
        webhook_id = data.draw(st.sampled_from(known))
        self._run(lambda: c.build(c.DeleteWebhook, webhook_id=webhook_id), actor)

    @rule(data=st.data(), actor=actors)
    def rotate_webhook_secret(self, data: st.DataObject, actor: int | None) -> None:
        known = sorted(self.state().webhooks) or ["wh_" + "0" * 24]
        webhook_id = data.draw(st.sampled_from(known))
        self._run(lambda: c.build(c.RotateWebhookSecret, webhook_id=webhook_id), actor)

    @rule(step=time_steps)
    def time_passes(self, step: timedelta) -> None:
        self.clock.tick(step)

    # -- after every step -----------------------------------------------------------------

    @invariant()
    def the_ledger_agrees_with_its_log(self) -> None:
        report = self.ledger.store.verify_chain()
        assert report.ok, report.problem
        state = assert_projections_match_log(self.ledger)
        self._folded = (self.ledger.store.head().position, state)
        now = self.ledger.now()
        for token_id, secret in self.secrets.items():
            token = state.tokens[token_id]
            answer = self.ledger.verify(secret)
            if token.revoked:
                expected_reason: str | None = "revoked"
            elif token.expired(now):
                expected_reason = "expired"
            elif token.disabled or account_suspended(state, token.principal):
                expected_reason = "disabled"
            elif standing(state, token.principal) is None:
                expected_reason = "principal_disabled"
            else:
                expected_reason = None
            assert answer.active == (expected_reason is None), (token, answer)
            assert answer.reason == expected_reason or answer.active
            if token.parent_id is not None:
                parent = state.tokens[token.parent_id]
                assert parent.principal == token.principal
                for grant in token.grants:
                    assert level_at(parent.grants, grant.resource) >= grant.rank
                if parent.expires_at is not None:
                    assert token.expires_at is not None
                    assert token.expires_at <= parent.expires_at
                if parent.revoked:
                    assert not answer.active, "a derived token outlived its parent's revocation"
                if parent.disabled:
                    assert not answer.active, "a derived token was usable below a disabled one"
            if not answer.active:
                continue
            current = principal_grants(state, token.principal)
            expected = []
            for grant in token.grants:
                level = min(grant.rank, level_at(current, grant.resource))
                if level is not Level.NONE:
                    expected.append(Grant(grant.resource, level.label))
            assert answer.grants == tuple(expected)
            for grant in answer.grants:
                assert level_at(current, grant.resource) >= grant.rank
                assert level_at(token.grants, grant.resource) >= grant.rank
            if is_service_account_id(token.principal):
                project = state.accounts[token.principal].permission.resource
                assert all(is_within(g.resource, project) for g in token.grants)


def run_machine(new_url: Callable[[], str], examples: int, steps: int) -> None:
    """Run the machine with its own settings (the file's total stays near a minute)."""
    machine = type("Machine", (LedgerMachine,), {"new_url": staticmethod(new_url)})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_state_machine_on_sqlite(tmp_path: Path) -> None:
    counter = itertools.count()
    run_machine(lambda: f"sqlite:///{tmp_path / f'ledger-{next(counter)}.db'}", 40, 40)


def test_state_machine_on_postgresql(postgres_server: Any) -> None:
    run_machine(postgres_server.fresh_schema, 20, 30)
