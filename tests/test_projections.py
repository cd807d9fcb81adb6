"""The inline SQL projections: what SqlLedgerView answers after events are folded in.

Every test runs on SQLite and PostgreSQL (the ``store`` fixture). Events go
through the real store (``tx.append``) and are projected in the same
transaction, as the ledger service does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from tokenledger.domain.events import (
    Event,
    GrantRemoved,
    GrantSet,
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    OrgCreated,
    ResourceCreated,
    ResourceDeleted,
    RevocationReason,
    RoleCreated,
    ServiceAccountCreated,
    ServiceAccountDeleted,
    ServiceAccountPermissionLevelChanged,
    ServiceAccountPermissionMoved,
    TokenIssued,
    TokenRevoked,
    UserCreated,
    UserDisabled,
    event_types,
)
from tokenledger.domain.model import (
    ResourceView,
    ServiceAccountView,
    UserView,
    predefined_role_grants,
    service_account_id,
)
from tokenledger.domain.permissions import Grant
from tokenledger.projections import Projector, SqlLedgerView, apply_event
from tokenledger.projections import schema as projection_schema
from tokenledger.projections.handlers import handled_event_types
from tokenledger.projections.writes import Writes
from tokenledger.store import EventStore, RecordedEvent
from tokenledger.store.mapper import decode_event, to_pending

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

PROJECTION_TABLES = (
    projection_schema.orgs,
    projection_schema.users,
    projection_schema.memberships,
    projection_schema.resources,
    projection_schema.roles,
    projection_schema.user_grants,
    projection_schema.service_accounts,
    projection_schema.tokens,
    projection_schema.token_grants,
    projection_schema.audit_index,
    projection_schema.checkpoints,
)

CI_BOT = service_account_id("ci", "acme")
OLD_BOT = service_account_id("old", "acme")

Pairs = list[tuple[RecordedEvent, Event]]


class SteppingClock:
    """A clock the test moves by hand, so recorded_at values are known."""

    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment

    def advance(self, minutes: int) -> datetime:
        self.moment += timedelta(minutes=minutes)
        return self.moment


def record(store: EventStore, *events: Event) -> Pairs:
    """Append ``events`` in one transaction and project them in it, as a command does."""
    with store.transaction(actor="operator:test") as tx:
        recorded = tx.append([to_pending(event) for event in events])
        pairs = list(zip(recorded, events, strict=True))
        Projector().apply(tx.connection, pairs)
    return pairs


def secret_hash(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def issued(
    token_id: str,
    principal: str,
    *grants: Grant,
    parent_id: str | None = None,
    expires_at: datetime | None = None,
) -> TokenIssued:
    return TokenIssued(
        token_id=token_id,
        principal=principal,
        kind="personal" if parent_id is None else "derived",
        secret_hash=secret_hash(token_id),
        grants=grants,
        name=f"{token_id} token",
        issued_at=T0,
        expires_at=expires_at,
        parent_id=parent_id,
        issued_by=None,
    )


class World:
    """The store after a small history, with the pairs it recorded and the clock."""

    def __init__(self, store: EventStore, clock: SteppingClock) -> None:
        self.store = store
        self.clock = clock
        self.pairs: Pairs = []

    def record(self, *events: Event) -> datetime:
        """Record one transaction, one minute after the previous; return its recorded_at."""
        at = self.clock.advance(1)
        self.pairs += record(self.store, *events)
        return at

    @property
    def last_position(self) -> int:
        return self.pairs[-1][0].position


@pytest.fixture
def world(store: EventStore) -> World:
    clock = SteppingClock(T0)
    store.clock = clock
    w = World(store, clock)
    w.record(OrgCreated(org="acme"), OrgCreated(org="globex"))
    w.record(
        UserCreated(email="alice@example.com", name="Alice"),
        UserCreated(email="bob@example.com"),
        UserCreated(email="carol@example.com", name="Carol"),
    )
    w.record(
        ResourceCreated(path="acme/alpha", kind="project"),
        ResourceCreated(path="acme/alpha/data", kind="collection"),
        ResourceCreated(path="acme/alpha2", kind="project"),
        ResourceCreated(path="acme/alph", kind="project"),
        ResourceCreated(path="acme/beta", kind="project"),
        ResourceCreated(path="globex/lab", kind="project"),
    )
    w.record(ResourceDeleted(path="acme/beta"))
    w.record(RoleCreated(org="acme", role="reader", grants=(Grant("acme/alpha", "read"),)))
    w.record(
        MemberAdded(org="acme", email="alice@example.com", role="admin"),
        MemberAdded(org="acme", email="bob@example.com", role="member"),
        MemberAdded(org="globex", email="bob@example.com", role="auditor"),
        MemberAdded(org="acme", email="carol@example.com", role="member"),
    )
    w.record(
        MemberRoleChanged(
            org="acme", email="bob@example.com", role="reader", previous_role="member"
        ),
        MemberRemoved(org="acme", email="carol@example.com"),
    )
    w.record(
        GrantSet(principal="bob@example.com", grant=Grant("acme/alpha", "write")),
        GrantSet(principal="bob@example.com", grant=Grant("acme/alpha2", "read")),
        GrantSet(principal="alice@example.com", grant=Grant("acme/alph", "admin")),
        GrantSet(principal="carol@example.com", grant=Grant("acme/alpha/data", "read")),
        GrantSet(principal="alice@example.com", grant=Grant("globex/lab", "read")),
    )
    w.record(
        GrantSet(principal="bob@example.com", grant=Grant("acme/alpha2", "none")),
        GrantSet(principal="bob@example.com", grant=Grant("acme/alpha", "append")),
        GrantRemoved(principal="carol@example.com", resource="acme/alpha/data", reason="requested"),
    )
    w.record(
        ServiceAccountCreated(
            account_id=CI_BOT, org="acme", name="ci", permission=Grant("acme/alpha", "write")
        ),
        ServiceAccountCreated(
            account_id=OLD_BOT, org="acme", name="old", permission=Grant("acme/alpha", "read")
        ),
    )
    w.record(
        ServiceAccountPermissionMoved(
            account_id=CI_BOT,
            previous=Grant("acme/alpha", "write"),
            permission=Grant("acme/alpha2", "write"),
        ),
        ServiceAccountPermissionLevelChanged(
            account_id=CI_BOT,
            previous=Grant("acme/alpha2", "write"),
            permission=Grant("acme/alpha2", "read"),
        ),
        ServiceAccountDeleted(account_id=OLD_BOT),
    )
    w.record(
        issued(
            "tok_alice",
            "alice@example.com",
            Grant("acme/alpha", "read"),
            Grant("acme/alph", "admin"),
            expires_at=T0 + timedelta(days=30),
        ),
        issued(
            "tok_child",
            "alice@example.com",
            Grant("acme/alpha/data", "read"),
            parent_id="tok_alice",
        ),
        issued("tok_org", "alice@example.com", Grant("acme", "read")),
        issued("tok_bob", "bob@example.com", Grant("acme/alpha", "append")),
        issued("tok_ci", CI_BOT, Grant("acme/alpha2", "read")),
    )
    return w


@contextmanager
def open_view(store: EventStore) -> Iterator[SqlLedgerView]:
    with store.engine.connect() as connection:
        yield SqlLedgerView(connection)


@pytest.fixture
def view(world: World) -> Iterator[SqlLedgerView]:
    with open_view(world.store) as ledger_view:
        yield ledger_view


# -- the handler table ---------------------------------------------------------------


def test_every_event_type_has_a_handler() -> None:
    assert handled_event_types() == set(event_types().values())


def test_an_event_without_a_handler_is_refused(store: EventStore) -> None:
    class Unknown(Event, frozen=True, kw_only=True, tag="Unknown"):
        @property
        def stream_id(self) -> str:
            return "unknown:1"

    with store.transaction(actor="operator:test") as tx:
        (recorded,) = tx.append([to_pending(Unknown())])
        with pytest.raises(TypeError, match="no projection handler for Unknown"):
            apply_event(Writes(tx.connection), recorded, Unknown())
        tx.connection.rollback()


# -- orgs, users, memberships ------------------------------------------------------


def test_orgs_and_their_root_resources(view: SqlLedgerView) -> None:
    assert view.list_orgs() == ["acme", "globex"]
    assert view.org_exists("acme")
    assert not view.org_exists("acm")
    assert view.resource("acme") == ResourceView(
        path="acme", kind="org", created_at=T0 + timedelta(minutes=1)
    )


def test_users(view: SqlLedgerView) -> None:
    assert view.user("alice@example.com") == UserView(
        email="alice@example.com",
        name="Alice",
        disabled=False,
        created_at=T0 + timedelta(minutes=2),
    )
    assert view.user("nobody@example.com") is None
    assert [u.email for u in view.list_users()] == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
    ]
    assert [u.email for u in view.list_users("acme")] == ["alice@example.com", "bob@example.com"]
    assert [u.email for u in view.list_users("globex")] == ["bob@example.com"]
    assert view.list_users("initech") == []


def test_disabling_a_user_keeps_the_first_time(world: World) -> None:
    first = world.record(UserDisabled(email="carol@example.com", reason="left"))
    world.record(UserDisabled(email="carol@example.com", reason="again"))
    with world.store.engine.connect() as connection:
        carol = SqlLedgerView(connection).user("carol@example.com")
        disabled_at = connection.execute(
            sa.select(projection_schema.users.c.disabled_at).where(
                projection_schema.users.c.email == "carol@example.com"
            )
        ).scalar_one()
    assert carol is not None
    assert carol.disabled
    assert disabled_at == first


def test_memberships(view: SqlLedgerView) -> None:
    assert view.memberships("bob@example.com") == {"acme": "reader", "globex": "auditor"}
    assert view.memberships("carol@example.com") == {}
    assert view.members("acme") == {"alice@example.com": "admin", "bob@example.com": "reader"}
    assert list(view.members("acme")) == sorted(view.members("acme"))


# -- resources -----------------------------------------------------------------------


def test_resources_under_a_path(view: SqlLedgerView) -> None:
    assert [r.path for r in view.resources_under("acme")] == [
        "acme/alph",
        "acme/alpha",
        "acme/alpha/data",
        "acme/alpha2",
    ]
    assert [r.path for r in view.resources_under("acme/alpha")] == ["acme/alpha/data"]
    assert view.resources_under("acme/alph") == []
    assert view.resources_under("acme/alpha/data") == []


def test_resource_rows_record_their_place_in_the_tree(world: World) -> None:
    with world.store.engine.connect() as connection:
        rows = connection.execute(
            sa.select(
                projection_schema.resources.c.path,
                projection_schema.resources.c.org,
                projection_schema.resources.c.parent,
                projection_schema.resources.c.depth,
            ).order_by(projection_schema.resources.c.path)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("acme", "acme", None, 1),
        ("acme/alph", "acme", "acme", 2),
        ("acme/alpha", "acme", "acme", 2),
        ("acme/alpha/data", "acme", "acme/alpha", 3),
        ("acme/alpha2", "acme", "acme", 2),
        ("globex", "globex", None, 1),
        ("globex/lab", "globex", "globex", 2),
    ]


def test_deleted_resources_are_gone(view: SqlLedgerView) -> None:
    assert view.resource("acme/beta") is None


def test_list_resources(view: SqlLedgerView) -> None:
    assert [r.path for r in view.list_resources()] == [
        "acme",
        "acme/alph",
        "acme/alpha",
        "acme/alpha/data",
        "acme/alpha2",
        "globex",
        "globex/lab",
    ]
    assert [r.path for r in view.list_resources("acme/alpha")] == [
        "acme/alpha",
        "acme/alpha/data",
    ]
    assert [r.kind for r in view.list_resources("globex")] == ["org", "project"]
    assert view.list_resources("initech") == []


# -- roles and grants ------------------------------------------------------------------


def test_predefined_and_custom_roles(view: SqlLedgerView) -> None:
    assert view.role("acme", "admin") == predefined_role_grants("acme", "admin")
    assert view.role("acme", "auditor") == (Grant("acme", "read"),)
    assert view.role("acme", "member") == ()
    assert view.role("acme", "reader") == (Grant("acme/alpha", "read"),)
    assert view.role("globex", "reader") is None
    assert view.role("acme", "nonesuch") is None
    assert view.role("initech", "admin") is None


def test_roles_of(view: SqlLedgerView) -> None:
    assert view.roles_of("acme") == {
        "admin": (Grant("acme", "admin"),),
        "auditor": (Grant("acme", "read"),),
        "member": (),
        "reader": (Grant("acme/alpha", "read"),),
    }
    assert list(view.roles_of("acme")) == ["admin", "auditor", "member", "reader"]
    assert set(view.roles_of("globex")) == {"admin", "auditor", "member"}
    assert view.roles_of("initech") == {}


def test_direct_grants(view: SqlLedgerView) -> None:
    # alpha2 was set to "none" (removed), alpha was set again (replaced).
    assert view.direct_grants("bob@example.com") == [Grant("acme/alpha", "append")]
    assert view.direct_grants("alice@example.com") == [
        Grant("acme/alph", "admin"),
        Grant("globex/lab", "read"),
    ]
    assert view.user_grants("alice@example.com") == view.direct_grants("alice@example.com")
    assert view.direct_grants("carol@example.com") == []


def test_direct_grants_under(view: SqlLedgerView) -> None:
    assert view.direct_grants_under("acme") == [
        ("alice@example.com", Grant("acme/alph", "admin")),
        ("bob@example.com", Grant("acme/alpha", "append")),
    ]
    assert view.direct_grants_under("acme/alpha") == [
        ("bob@example.com", Grant("acme/alpha", "append"))
    ]
    assert view.direct_grants_under("acme/alph") == [
        ("alice@example.com", Grant("acme/alph", "admin"))
    ]
    assert view.direct_grants_under("acme/alpha/data") == []


# -- service accounts ------------------------------------------------------------------


def test_service_accounts(view: SqlLedgerView) -> None:
    ci = view.service_account(CI_BOT)
    assert ci == ServiceAccountView(
        account_id=CI_BOT,
        org="acme",
        name="ci",
        permission=Grant("acme/alpha2", "read"),
        deleted=False,
        created_at=T0 + timedelta(minutes=10),
    )
    old = view.service_account(OLD_BOT)
    assert old is not None
    assert old.deleted
    assert old.permission == Grant("acme/alpha", "read")
    assert view.service_account("nobody@acme.service.tokenledger") is None


def test_service_accounts_under(view: SqlLedgerView) -> None:
    assert [sa_.account_id for sa_ in view.service_accounts_under("acme")] == [CI_BOT]
    assert [sa_.account_id for sa_ in view.service_accounts_under("acme/alpha2")] == [CI_BOT]
    # The moved account left alpha, and the deleted one is not listed.
    assert view.service_accounts_under("acme/alpha") == []
    assert view.service_accounts_under("globex") == []


def test_listing_service_accounts(view: SqlLedgerView) -> None:
    assert [a.account_id for a in view.service_accounts()] == [CI_BOT]
    assert [a.account_id for a in view.service_accounts(include_deleted=True)] == [
        CI_BOT,
        OLD_BOT,
    ]
    assert [a.account_id for a in view.service_accounts("acme", include_deleted=True)] == [
        CI_BOT,
        OLD_BOT,
    ]
    assert view.service_accounts("globex", include_deleted=True) == []


# -- tokens ------------------------------------------------------------------------------


def test_token(view: SqlLedgerView) -> None:
    token = view.token("tok_alice")
    assert token is not None
    assert token.principal == "alice@example.com"
    assert token.kind == "personal"
    assert token.name == "tok_alice token"
    assert token.grants == (Grant("acme/alpha", "read"), Grant("acme/alph", "admin"))
    assert token.issued_at == T0
    assert token.expires_at == T0 + timedelta(days=30)
    assert token.parent_id is None
    assert not token.revoked
    assert token.revoked_reason is None
    assert view.token("tok_missing") is None


def test_token_by_secret_hash(view: SqlLedgerView) -> None:
    assert view.token_by_secret_hash(secret_hash("tok_bob")) == view.token("tok_bob")
    assert view.token_by_secret_hash(secret_hash("tok_missing")) is None


def test_tokens_of_and_children(view: SqlLedgerView) -> None:
    assert [t.token_id for t in view.tokens_of("alice@example.com")] == [
        "tok_alice",
        "tok_child",
        "tok_org",
    ]
    assert [t.token_id for t in view.tokens_of(CI_BOT)] == ["tok_ci"]
    assert view.tokens_of("carol@example.com") == []
    assert [t.token_id for t in view.child_tokens(["tok_alice"])] == ["tok_child"]
    assert view.child_tokens(["tok_child"]) == []


def test_tokens_with_grant_under_match_whole_path_segments(view: SqlLedgerView) -> None:
    def under(path: str) -> list[str]:
        return [t.token_id for t in view.tokens_with_grant_under(path)]

    assert under("acme") == ["tok_alice", "tok_bob", "tok_child", "tok_ci", "tok_org"]
    assert under("acme/alpha") == ["tok_alice", "tok_bob", "tok_child"]
    assert under("acme/alpha/data") == ["tok_child"]
    # A grant on acme/alph is not under acme/alpha, and acme/alpha is not under acme/alph.
    assert under("acme/alph") == ["tok_alice"]
    assert under("acme/alpha2") == ["tok_ci"]
    # A grant on the org is above these paths, not under them.
    assert "tok_org" not in under("acme/alpha")
    # No wildcard semantics: "_" and "%" are plain characters.
    assert under("acme/alph_") == []
    assert under("acme/%") == []
    assert under("globex") == []


def test_revocation(world: World) -> None:
    first = world.record(
        TokenRevoked(
            token_id="tok_bob",
            principal="bob@example.com",
            reason=RevocationReason.REQUESTED,
            detail="laptop lost",
        )
    )
    world.record(
        TokenRevoked(
            token_id="tok_bob", principal="bob@example.com", reason=RevocationReason.USER_DISABLED
        )
    )
    with open_view(world.store) as view:
        bob = view.token("tok_bob")
        assert bob is not None
        assert bob.revoked
        assert bob.revoked_at == first
        assert bob.revoked_reason == RevocationReason.REQUESTED
        # Revoked tokens are still listed for their principal, but no longer "under" a path.
        assert [t.token_id for t in view.tokens_of("bob@example.com")] == ["tok_bob"]
        assert "tok_bob" not in [t.token_id for t in view.tokens_with_grant_under("acme")]


# -- checkpoint ------------------------------------------------------------------------


def test_checkpoint_is_the_last_projected_position(world: World) -> None:
    with world.store.engine.connect() as connection:
        assert Projector().checkpoint(connection) == world.last_position
        assert Projector().checkpoint(connection, "audit") == world.last_position
        assert Projector().checkpoint(connection, "other") == 0
    assert world.store.head().position == world.last_position


def test_checkpoint_starts_at_zero(store: EventStore) -> None:
    with store.engine.connect() as connection:
        assert Projector().checkpoint(connection) == 0


def test_reapplying_earlier_events_does_not_move_the_checkpoint_back(world: World) -> None:
    with world.store.transaction(actor="operator:test") as tx:
        Projector().apply(tx.connection, world.pairs[:3])
        assert Projector().checkpoint(tx.connection) == world.last_position


class Boom(Exception):
    pass


def project_then_fail(store: EventStore) -> None:
    with store.transaction(actor="operator:test") as tx:
        event = OrgCreated(org="acme")
        recorded = tx.append([to_pending(event)])
        Projector().apply(tx.connection, list(zip(recorded, [event], strict=True)))
        raise Boom


def test_projection_rolls_back_with_the_append(store: EventStore) -> None:
    with pytest.raises(Boom):
        project_then_fail(store)
    with open_view(store) as view:
        assert view.list_orgs() == []
        assert Projector().checkpoint(view.connection) == 0


# -- idempotency and rebuilding --------------------------------------------------------


def snapshot(connection: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection row, ordered by primary key."""
    return {
        table.name: [
            tuple(row)
            for row in connection.execute(sa.select(table).order_by(*table.primary_key.columns))
        ]
        for table in PROJECTION_TABLES
    }


def table_snapshot(store: EventStore) -> dict[str, list[tuple[Any, ...]]]:
    with store.engine.connect() as connection:
        return snapshot(connection)


def revoke_and_disable(world: World) -> None:
    """Add the first-time facts, so idempotency covers them too."""
    world.record(
        UserDisabled(email="carol@example.com"),
        TokenRevoked(
            token_id="tok_child", principal="alice@example.com", reason=RevocationReason.REQUESTED
        ),
    )


def test_reapplying_the_same_events_changes_nothing(world: World) -> None:
    revoke_and_disable(world)
    before = table_snapshot(world.store)
    assert all(before.values())
    world.clock.advance(60)
    with world.store.transaction(actor="operator:test") as tx:
        Projector().apply(tx.connection, world.pairs)
    assert table_snapshot(world.store) == before


def test_reapplying_events_read_back_from_the_log_changes_nothing(world: World) -> None:
    revoke_and_disable(world)
    before = table_snapshot(world.store)
    logged = [(r, decode_event(r)) for r in world.store.read_all()]
    assert [e for _, e in logged] == [e for _, e in world.pairs]
    with world.store.transaction(actor="operator:test") as tx:
        Projector().apply(tx.connection, logged)
    assert table_snapshot(world.store) == before


def test_rebuilding_from_the_log_gives_the_same_rows(world: World) -> None:
    revoke_and_disable(world)
    before = table_snapshot(world.store)
    with world.store.transaction(actor="operator:test") as tx:
        for table in PROJECTION_TABLES:
            tx.connection.execute(sa.delete(table))
        assert not any(snapshot(tx.connection).values())
        Projector().apply(tx.connection, [(r, decode_event(r)) for r in world.store.read_all()])
    assert table_snapshot(world.store) == before


# -- the migration ------------------------------------------------------------------------


def test_migration_matches_the_declared_tables(store: EventStore) -> None:
    """Revision 0002 (written by hand) creates exactly what projections.schema declares."""
    names = {table.name for table in PROJECTION_TABLES}

    def ours(item: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        # Tables by name; columns, indexes and constraints by the table they belong to.
        table = name if type_ == "table" else getattr(getattr(item, "table", None), "name", None)
        return table in names

    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": ours}
        )
        diffs = compare_metadata(context, projection_schema.metadata)
    assert diffs == []


def test_identifier_columns_compare_bytewise_on_postgresql(store: EventStore) -> None:
    """Under a linguistic collation the "under a path" ranges would be wrong."""
    if store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite compares text bytewise (BINARY) by default")
    with store.engine.connect() as connection:
        collations: dict[str, str] = dict(
            connection.execute(
                sa.text(
                    "SELECT table_name || '.' || column_name, collation_name"
                    " FROM information_schema.columns"
                    " WHERE table_schema = current_schema()"
                    " AND column_name IN ('path', 'resource', 'email', 'token_id')"
                )
            ).all()
        )
    assert collations
    assert set(collations.values()) == {"C"}
