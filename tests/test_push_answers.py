"""Workers that follow the log: each event drops exactly the cached answers it may change,
every answer says the log position it reflects, and a caller may ask for at least a
position (``min_position``). Every wait has a timeout; nothing waits for time to pass."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api_helpers import ISSUER, OPERATOR, SA, Api, make_api, seed
from helpers import head_position
from tokenledger.api import ApiSettings, create_asgi_app
from tokenledger.api.introspection import MIN_POSITION_HEADER
from tokenledger.domain import commands as c
from tokenledger.domain import events as e
from tokenledger.domain.affected import EVERY_ANSWER, NO_ANSWER, Affected, answers_affected
from tokenledger.domain.permissions import Grant, Level
from tokenledger.errors import LedgerError
from tokenledger.service import Ledger
from tokenledger.service.cache import FollowedCache
from tokenledger.service.keys import KeyStore
from tokenledger.store import open_event_store
from tokenledger.store.notify import LISTENER_APPLICATION_NAME, PostgresListener

WAIT = 30.0
INTROSPECT = "/oauth2/introspect"


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def introspect(api: Api, token: str, **extra: Any) -> Any:
    response = api.client.post(INTROSPECT, data={"token": token, **extra}, headers=api.admin)
    assert response.status_code == 200, response.text
    return response.json()


def caught_up(api: Api) -> int:
    head = head_position(api.ledger)
    assert api.ledger.answers.wait_for(head, WAIT)
    return head


# -- which answers an event changes ------------------------------------------------------------


def test_events_name_the_answers_they_change() -> None:
    assert answers_affected(e.TokenRevoked(token_id="t1", principal="p", reason="r")) == Affected(
        False, ("t1",)
    )
    assert answers_affected(e.UserDisabled(email="bob@acme.io")) == Affected(
        False, ("bob@acme.io",)
    )
    moved = e.ServiceAccountDeleted(account_id=SA)
    assert answers_affected(moved) == Affected(False, (SA,))
    assert answers_affected(e.OrgCreated(org="acme")) == EVERY_ANSWER
    grant = Grant(resource="acme/alpha", level=Level.READ)
    assert answers_affected(e.GrantSet(principal="bob@acme.io", grant=grant)) == EVERY_ANSWER
    issued = e.EndpointCreated(endpoint_id="e1", name="n", url="https://s3.example")
    assert answers_affected(issued) == NO_ANSWER


class StillFollower:
    """A follower that hears of every commit (or not), at a fixed position."""

    def __init__(self, current: bool = True, position: int = 10) -> None:
        self.current = current
        self.position = position

    def is_current(self) -> bool:
        return self.current


def test_an_event_drops_only_the_answers_filed_under_what_it_names() -> None:
    heads: list[int] = []
    cache: FollowedCache[str] = FollowedCache(
        StillFollower(),  # type: ignore[arg-type]
        lambda: heads.append(10) or 10,
    )
    for key, token, principal in (("a", "t1", "ann"), ("b", "t2", "bob"), ("b2", "t3", "bob")):
        cache.put(key, key.upper(), None, cache.generation(), (token, principal))
    cache.drop(Affected(False, ("t1",)))
    assert cache.lookup("a", 0) is None
    assert cache.lookup("b", 0) == "B"
    cache.drop(Affected(False, ("bob",)))
    assert cache.lookup("b", 0) is None
    assert cache.lookup("b2", 0) is None
    assert heads == []  # a current follower vouches: the head is never read
    cache.put("c", "C", None, cache.generation(), ("t4", "carol"))
    cache.drop(EVERY_ANSWER)
    assert cache.lookup("c", 0) is None


def test_an_answer_computed_across_a_drop_is_not_kept() -> None:
    cache: FollowedCache[str] = FollowedCache(StillFollower(), lambda: 10)  # type: ignore[arg-type]
    generation = cache.generation()
    cache.drop(Affected(False, ("someone-else",)))  # it may have been the answer's own event
    cache.put("a", "A", None, generation, ("t1", "ann"))
    assert cache.lookup("a", 0) is None


def test_a_follower_that_hears_nothing_vouches_only_for_the_head_it_applied() -> None:
    follower = StillFollower(current=False, position=10)
    head = [10]
    cache: FollowedCache[str] = FollowedCache(follower, lambda: head[0])  # type: ignore[arg-type]
    cache.put("a", "A", None, cache.generation(), ("t1", "ann"))
    assert cache.lookup("a", 0) == "A"  # the head is where the follower is
    assert cache.peek("a", 0) is None  # staleness 0: only a read of the head vouches
    head[0] = 11  # a commit the follower has not heard of
    assert cache.lookup("a", 0) is None


# -- through HTTP ----------------------------------------------------------------------------


def test_every_answer_says_the_position_it_reflects(api: Api) -> None:
    head = caught_up(api)
    for token in (api.bob, "tlp_" + "A" * 32 + "0Bmp0y", api.sa_token):
        for _ in range(2):  # computed, then from the cache
            assert introspect(api, token)["log_position"] == head
    verified = api.client.post("/v2/tokens/verify", json={"token": api.bob}, headers=api.admin)
    assert verified.json()["log_position"] == head


def test_a_revocation_elsewhere_is_answered_at_its_position(api: Api, database_url: str) -> None:
    assert introspect(api, api.bob)["active"] is True
    assert introspect(api, api.bob)["active"] is True  # kept
    position = api.revoke_elsewhere(api.bob, database_url)
    answer = introspect(api, api.bob, min_position=str(position))
    assert answer == {"active": False, "log_position": answer["log_position"]}
    assert answer["log_position"] >= position
    by_header = api.client.post(
        INTROSPECT,
        data={"token": api.bob},
        headers={**api.admin, MIN_POSITION_HEADER: str(position)},
    )
    assert by_header.json()["active"] is False
    verified = api.client.post(
        "/v2/tokens/verify", json={"token": api.bob, "min_position": position}, headers=api.admin
    )
    assert verified.json()["reason"] == "revoked"
    assert verified.json()["log_position"] >= position


def test_the_follower_drops_the_answer_without_being_asked(api: Api, database_url: str) -> None:
    assert introspect(api, api.bob)["active"] is True
    position = api.revoke_elsewhere(api.bob, database_url)
    assert api.ledger.answers.wait_for(position, WAIT)
    assert introspect(api, api.bob)["active"] is False


def test_a_call_answers_the_position_to_ask_for(api: Api) -> None:
    assert introspect(api, api.bob)["active"] is True
    revoked = api.client.delete(
        f"/v2/tokens/{api.ledger.authenticate(api.bob).token_id}", headers=api.bearer(api.bob)
    )
    assert revoked.status_code == 200, revoked.text
    position = revoked.json()["log_position"]
    assert position == head_position(api.ledger)
    assert introspect(api, api.bob, min_position=str(position))["active"] is False


def test_a_position_beyond_the_head_is_too_early(api: Api) -> None:
    before = head_position(api.ledger)
    wanted = before + 5
    for request in (
        {"data": {"token": api.bob, "min_position": str(wanted)}, "headers": api.admin},
        {"data": {"token": api.bob}, "headers": {**api.admin, MIN_POSITION_HEADER: str(wanted)}},
    ):
        response = api.client.post(INTROSPECT, **request)
        assert response.status_code == 425, response.text
        assert response.json()["error"] == "position_not_reached"
        assert f"{wanted}" in response.json()["error_description"]
        assert response.headers["retry-after"] == "1"
    verified = api.client.post(
        "/v2/tokens/verify", json={"token": api.bob, "min_position": wanted}, headers=api.admin
    )
    assert verified.status_code == 425
    assert head_position(api.ledger) == before


@pytest.mark.parametrize("given", ["abc", "-1", "1.5", "", " 1 2", "9" * 30])
def test_a_min_position_that_is_no_position_is_refused(api: Api, given: str) -> None:
    before = head_position(api.ledger)
    as_field = api.client.post(
        INTROSPECT, data={"token": api.bob, "min_position": given}, headers=api.admin
    )
    assert as_field.status_code in (400, 200), as_field.text
    if given:  # an empty form field is an absent one
        assert as_field.status_code == 400
        assert as_field.json()["error"] == "invalid_request"
    as_header = api.client.post(
        INTROSPECT, data={"token": api.bob}, headers={**api.admin, MIN_POSITION_HEADER: given}
    )
    if given.strip():
        assert as_header.status_code == 400, as_header.text
    assert head_position(api.ledger) == before


class Statements:
    """Counts the statements run on an engine."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.count = 0

    def __call__(self, *_: Any) -> None:
        self.count += 1

    def __enter__(self) -> Statements:
        sa.event.listen(self.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self)


def test_kept_answers_need_no_query_at_all(api: Api) -> None:
    for token in (api.bob, api.sa_token):
        introspect(api, token)
    caught_up(api)
    with Statements(api.ledger.store.engine) as statements:
        for _ in range(20):
            for token in (api.bob, api.sa_token):
                assert introspect(api, token)["active"] is True
    assert statements.count == 0


def test_while_the_follower_hears_nothing_answers_are_read_through(
    api: Api, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert introspect(api, api.bob)["active"] is True
    follower = api.ledger.answers._follower
    assert follower is not None
    # Deaf: it is told of no commit and applies nothing.
    monkeypatch.setattr(follower, "is_current", lambda: False)
    monkeypatch.setattr(follower, "_apply", lambda batch: None)
    api.revoke_elsewhere(api.bob, database_url)
    assert introspect(api, api.bob)["active"] is False


def test_a_lost_listening_connection_never_serves_a_stale_answer(
    postgres_server: Any, database_url: str, api: Api
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's LISTEN connection")
    assert introspect(api, api.bob)["active"] is True
    with psycopg.connect(postgres_server.conninfo(), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND datname = current_database()",
            (LISTENER_APPLICATION_NAME,),
        )
    position = api.revoke_elsewhere(api.bob, database_url)
    # Whether or not the worker has noticed the loss: asked for the revocation's position,
    # it reads through until the follower is back and has caught up.
    assert introspect(api, api.bob, min_position=str(position))["active"] is False
    assert api.ledger.answers.wait_for(position, WAIT)
    assert introspect(api, api.bob)["active"] is False
    other = api.revoke_elsewhere(api.ann, database_url)
    assert api.ledger.answers.wait_for(other, WAIT)  # following again


# -- exactness: the cache after each event agrees with a fresh read -----------------------------


def changes() -> list[tuple[c.Command, str]]:
    """Commands that change answers, each with a label: those that only change what a token
    allows first, then those whose cascades revoke tokens."""
    return [
        (c.SetGrant(principal="bob@acme.io", resource="acme/alpha", level=Level.READ), "lower"),
        (c.SetGrant(principal="bob@acme.io", resource="acme/alpha", level=Level.WRITE), "raise"),
        (
            c.SetServiceAccountPermission(account_id=SA, resource="acme/alpha", level=Level.READ),
            "sa level",
        ),
        (
            c.SetServiceAccountPermission(account_id=SA, resource="acme/beta", level=Level.READ),
            "sa moved",
        ),
        (c.DeleteResource(path="acme/alpha"), "alpha deleted"),
        (c.DisableUser(email="ann@acme.io"), "ann disabled"),
        (c.RemoveMember(org="acme", email="bob@acme.io"), "bob out"),
    ]


def test_answers_kept_across_events_equal_fresh_ones(database_url: str, tmp_path: Path) -> None:
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    secrets = seed(ledger)
    keys = KeyStore(tmp_path / "keys.json")
    keys.rotate(datetime.now(UTC))
    app = create_asgi_app(ledger, ApiSettings(issuer=ISSUER, keys=keys, cache_staleness=60.0))
    writer = Ledger(open_event_store(database_url), verify_staleness=None)
    asked = [
        (secret, resource, level)
        for secret in secrets.values()
        for resource, level in ((None, None), ("acme/alpha", "write"), ("acme/beta", "read"))
    ]
    steps = changes()
    with TestClient(app, raise_server_exceptions=False) as client:
        admin = {"Authorization": f"Bearer {secrets['carol']}"}

        def served(secret: str, resource: str | None, level: str | None) -> dict[str, Any]:
            form = {"token": secret}
            if resource is not None:
                form |= {"resource": resource, "level": level or "read"}
            answer: dict[str, Any] = client.post(INTROSPECT, data=form, headers=admin).json()
            answer.pop("log_position")
            return answer

        for command, label in steps:
            for query in asked:
                served(*query)  # kept in the cache
            try:
                result = writer.execute(command, OPERATOR)
            except LedgerError as refused:
                pytest.fail(f"{label}: {refused}")
            assert ledger.answers.wait_for(result.records[-1].position, WAIT)
            for secret, resource, level in asked:
                fresh = writer.introspect(
                    secret,
                    keys.ring(),
                    issuer=ISSUER,
                    resource=resource,
                    level=Level.parse(level) if level else None,
                )
                expected = {"active": False} if not fresh.active else None
                got = served(secret, resource, level)
                if expected is not None:
                    assert got == expected, (label, secret[:8], resource)
                else:
                    assert got["active"] is True, (label, secret[:8], resource)
                    assert got.get("allowed") == fresh.allowed, (label, secret[:8], resource)
                    assert got["scope"] == fresh.scope, (label, secret[:8], resource)
    writer.close()
    ledger.close()


def test_while_deaf_a_read_of_the_head_vouches_for_the_staleness_bound() -> None:
    follower = StillFollower(current=False, position=10)
    reads: list[int] = []
    now = [0.0]

    def read_head() -> int:
        reads.append(1)
        return 10

    cache: FollowedCache[str] = FollowedCache(
        follower,  # type: ignore[arg-type]
        read_head,
        staleness=0.05,
        monotonic=lambda: now[0],
    )
    cache.put("a", "A", None, cache.generation(), ("t1", "ann"))
    assert cache.past_bound()
    assert cache.lookup("a", 0) == "A"
    assert cache.lookup("a", 0) == "A"
    assert cache.peek("a", 0) == "A"  # a fresh read of the head vouches, on the event loop too
    assert len(reads) == 1
    now[0] = 0.06
    assert cache.past_bound()
    assert cache.peek("a", 0) is None
    assert cache.lookup("a", 0) == "A"
    assert len(reads) == 2


def test_without_following_every_answer_reads_the_head(database_url: str, tmp_path: Path) -> None:
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    secrets = seed(ledger)
    keys = KeyStore(tmp_path / "keys.json")
    keys.rotate(datetime.now(UTC))
    settings = ApiSettings(issuer=ISSUER, keys=keys, follow_log=False)
    with TestClient(create_asgi_app(ledger, settings)) as client:
        api = Api(ledger=ledger, keys=keys, client=client, **secrets)
        assert not ledger.answers.following
        assert introspect(api, api.bob)["active"] is True
        position = api.revoke_elsewhere(api.bob, database_url)
        answer = introspect(api, api.bob)  # at once: the head was read
        assert answer == {"active": False, "log_position": position}
    ledger.close()


def test_answers_kept_before_the_follower_started_are_dropped_when_it_does(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tokenledger.service import follower as follower_module

    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    secrets = seed(ledger)
    real_read_head = follower_module.read_head
    unreachable = [True]

    def read_head(connection: Any) -> Any:
        if unreachable[0]:
            raise OSError("the database is unreachable")
        return real_read_head(connection)

    monkeypatch.setattr(follower_module, "read_head", read_head)
    ledger.answers.follow()
    assert ledger.answers.followed_position() is None  # not started yet
    assert ledger.verify(secrets["bob"]).active  # kept before the follower knows its start
    token_id = ledger.authenticate(secrets["bob"]).token_id
    other = Ledger(open_event_store(database_url))
    revoked = other.execute(c.RevokeToken(token_id=token_id), OPERATOR).records[-1].position
    other.close()
    unreachable[0] = False  # the follower starts after the revocation: it never applies it
    assert ledger.answers.wait_for(revoked, WAIT)
    assert ledger.verify(secrets["bob"]).reason == "revoked"
    ledger.close()


def test_a_listener_that_has_not_proved_itself_lately_does_not_vouch(
    database_url: str, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's LISTEN connection")
    from tokenledger.store import notify

    listener = next(w for w in notify._watchers.values() if isinstance(w, PostgresListener))
    assert listener.watching.wait(WAIT)
    caught_up(api)
    follower = api.ledger.answers._follower
    assert follower is not None
    # Its own notification comes back: proven again with nothing committed, no reader woken.
    monkeypatch.setattr(notify, "PROOF_INTERVAL", 0.0)
    before, woken = listener._proven_at, listener.signal.generation
    deadline = time.monotonic() + WAIT
    while listener._proven_at == before and time.monotonic() < deadline:
        listener.signal.wait(woken, 0.05, lambda: False)
    assert listener._proven_at > before
    assert listener.signal.generation == woken
    assert follower.is_current()
    # A connection silent for longer than the bound (a half-open one, a pooler that never
    # delivers) is not trusted, whatever it says.
    monkeypatch.setattr(notify, "PROOF_INTERVAL", 3600.0)
    monkeypatch.setattr(listener, "_proven_at", time.monotonic() - notify.PROOF_BOUND - 1)
    assert not listener.hears_every_commit()
    assert not follower.is_current()


def test_a_dropped_answer_is_unfiled_from_every_id_it_was_filed_under() -> None:
    cache: FollowedCache[str] = FollowedCache(StillFollower(), lambda: 10)  # type: ignore[arg-type]
    cache.put("a", "A", None, cache.generation(), ("t1", "ann"))
    cache.put("a2", "A2", None, cache.generation(), ("t2", "ann"))
    cache.drop(Affected(False, ("t1",)))
    assert cache._filed == {"ann": {"a2"}, "t2": {"a2"}}
    cache.drop(Affected(False, ("ann",)))
    assert cache._filed == {}
    assert len(cache) == 0


def test_a_head_behind_what_was_applied_vouches_for_nothing() -> None:
    """A log restored to an earlier point: its new events reuse applied positions."""
    follower = StillFollower(current=False, position=10)
    cache: FollowedCache[str] = FollowedCache(follower, lambda: 9)  # type: ignore[arg-type]
    cache.put("a", "A", None, cache.generation(), ("t1", "ann"))
    assert cache.lookup("a", 0) is None


@pytest.mark.parametrize("given", ["5", True, 1.0, -1, 2**63])
def test_verify_takes_min_position_as_a_whole_number_only(api: Api, given: object) -> None:
    before = head_position(api.ledger)
    answer = api.client.post(
        "/v2/tokens/verify", json={"token": api.bob, "min_position": given}, headers=api.admin
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_request"
    assert head_position(api.ledger) == before
