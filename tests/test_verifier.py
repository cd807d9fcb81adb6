"""``tokenledger.client.Verifier``: in-process token answers that are exactly the ledger's.

A database-fed verifier is compared with ``Ledger.verify`` over random histories (every
command a token's answer can turn on, and others it must ignore), at the same log position
and the same moment; a server-fed one follows a real server's event stream over a socket.
Time is a clock the ledger and the verifier share; nothing sleeps."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_helpers import ISSUER, OPERATOR, seed
from test_state_machine import WORLD as STATE_MACHINE_WORLD
from tokenledger.api import ApiSettings, create_asgi_app
from tokenledger.api.routes import events as event_routes
from tokenledger.client import Verifier
from tokenledger.domain import commands as c
from tokenledger.domain.authority import Verification
from tokenledger.domain.permissions import Level
from tokenledger.domain.state import TOKEN_ANSWER_EVENTS
from tokenledger.errors import LedgerError, ValidationError
from tokenledger.service import Ledger
from tokenledger.service.keys import KeyStore
from tokenledger.store import open_event_store

#: Generous: only a failure ever waits this long.
WAIT = 30.0
START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class SteppedClock:
    """The time the ledger and the verifier both read; a test moves it."""

    def __init__(self) -> None:
        self.moment = START

    def now(self) -> datetime:
        return self.moment


#: The state machine's starting world, with one user of beta also reading in acme.
WORLD: list[c.Command] = [
    *STATE_MACHINE_WORLD,
    c.AddMember(org="acme", email="carol@beta.io", role="reader"),
]

USERS = ["alice@acme.io", "bob@acme.io", "carol@beta.io"]
ACCOUNTS = ["ci@acme.service.tokenledger", "etl@beta.service.tokenledger"]
PATHS = ["acme", "acme/alpha", "acme/alpha/raw", "acme/beta", "beta", "beta/gamma"]
LEVELS = ["read", "append", "write", "admin"]
ROLES = ["member", "admin", "auditor", "reader"]
#: What every secret is asked: nothing, then a few resources and levels.
QUESTIONS: list[tuple[str | None, Level | None]] = [
    (None, None),
    ("acme/alpha", Level.WRITE),
    ("acme", None),
    ("acme/alpha/raw", Level.ADMIN),
    ("beta/gamma", Level.READ),
    ("urn:tokenledger:acme:beta", Level.APPEND),
]

#: Tokens every history starts with, so that each change has a live token to show in.
STARTING_TOKENS: list[tuple[Any, ...]] = [
    ("issue", "alice@acme.io", [("acme", "admin")], None),
    ("issue", "bob@acme.io", [("acme/alpha", "write")], None),
    ("issue", "carol@beta.io", [("acme", "read"), ("beta/gamma", "read")], None),
    ("issue", "ci@acme.service.tokenledger", [("acme/alpha", "write")], None),
    ("issue", "etl@beta.service.tokenledger", [("beta/gamma", "read")], timedelta(hours=1)),
    ("role_key",),
]

users = st.sampled_from(USERS)
paths = st.sampled_from(PATHS)
levels = st.sampled_from(LEVELS)
steps = st.one_of(
    st.tuples(
        st.just("issue"),
        st.sampled_from(USERS + ACCOUNTS),
        st.lists(st.tuples(paths, levels), min_size=1, max_size=2),
        st.sampled_from([None, timedelta(hours=1), timedelta(days=2)]),
    ),
    st.tuples(st.just("role_key")),
    st.tuples(st.just("revoke"), st.integers(0, 31)),
    st.tuples(st.sampled_from(["disable_token", "enable_token"]), st.integers(0, 31)),
    st.tuples(st.sampled_from(["disable_sa", "enable_sa"]), st.sampled_from(ACCOUNTS)),
    st.tuples(
        st.just("rotate"),
        st.integers(0, 31),
        st.sampled_from([timedelta(0), timedelta(minutes=30)]),
    ),
    st.tuples(st.just("grant"), users, paths, st.sampled_from([*LEVELS, "none"])),
    st.tuples(st.just("member"), st.sampled_from(["acme", "beta"]), users, st.sampled_from(ROLES)),
    st.tuples(st.just("remove_member"), st.sampled_from(["acme", "beta"]), users),
    st.tuples(st.just("disable"), users),
    st.tuples(
        st.just("sa_permission"),
        st.sampled_from(ACCOUNTS),
        st.sampled_from(["acme/alpha", "beta/gamma", *PATHS]),  # mostly its own project
        levels,
    ),
    st.tuples(st.just("delete_sa"), st.sampled_from(ACCOUNTS)),
    st.tuples(st.just("delete_resource"), st.sampled_from(["acme/alpha/raw", "acme/beta"])),
    st.tuples(st.just("role_policy"), st.sampled_from(["acme/alpha", "acme/beta"]), levels),
    st.tuples(st.just("role_unpolicy"), st.sampled_from(["acme", "acme/alpha"])),
    st.tuples(st.just("delete_role")),
    st.tuples(st.just("create_resource"), st.sampled_from(["acme/gamma", "beta/delta"])),
    st.tuples(st.just("time"), st.sampled_from([timedelta(minutes=30), timedelta(days=3)])),
)


@dataclass
class History:
    """A ledger, the clock it reads, and every secret issued in it."""

    ledger: Ledger
    clock: SteppedClock
    secrets: list[str]

    def run(self, command: Callable[[], c.Command]) -> None:
        try:
            result = self.ledger.execute(command(), OPERATOR)
        except LedgerError:
            return  # refused (or invalid): nothing was appended
        if result.secret is not None:
            self.secrets.append(result.secret)

    def step(self, step: tuple[Any, ...]) -> None:
        kind, *args = step
        run = self.run
        if kind == "issue":
            principal, grants, lifetime = args
            grants = [{"resource": r, "level": level} for r, level in grants]
            expiry = {"expires_in": lifetime} if lifetime else {"no_expiry": True}
            run(lambda: c.build(c.IssueToken, principal=principal, grants=grants, **expiry))
        elif kind == "role_key":
            run(lambda: c.IssueRoleKey(org="acme", role="reader"))
        elif kind == "revoke":
            if self.secrets:
                secret = self.secrets[args[0] % len(self.secrets)]
                answer = self.ledger.verify(secret)
                if answer.token_id is not None:
                    token_id = answer.token_id
                    run(lambda: c.RevokeToken(token_id=token_id))
        elif kind in ("disable_token", "enable_token"):
            if self.secrets:
                token_id = self.ledger.verify(self.secrets[args[0] % len(self.secrets)]).token_id
                suspend = c.DisableToken if kind == "disable_token" else c.EnableToken
                if token_id is not None:
                    run(lambda: suspend(token_id=token_id))
        elif kind in ("disable_sa", "enable_sa"):
            account = c.DisableServiceAccount if kind == "disable_sa" else c.EnableServiceAccount
            run(lambda: account(account_id=args[0]))
        elif kind == "rotate":
            # The old token's expiry comes forward (its derived tokens' too): answers change.
            if self.secrets:
                secret = self.secrets[args[0] % len(self.secrets)]
                answer = self.ledger.verify(secret)
                if answer.token_id is not None:
                    rotated_id, overlap = answer.token_id, args[1]
                    run(lambda: c.RotateToken(token_id=rotated_id, overlap=overlap))
        elif kind == "grant":
            principal, path, level = args
            run(lambda: c.build(c.SetGrant, principal=principal, resource=path, level=level))
        elif kind == "member":
            org, email, role = args
            run(lambda: c.AddMember(org=org, email=email, role=role))
        elif kind == "remove_member":
            org, email = args
            run(lambda: c.RemoveMember(org=org, email=email))
        elif kind == "disable":
            run(lambda: c.DisableUser(email=args[0]))
        elif kind == "sa_permission":
            account, path, level = args
            run(
                lambda: c.build(
                    c.SetServiceAccountPermission, account_id=account, resource=path, level=level
                )
            )
        elif kind == "delete_sa":
            run(lambda: c.DeleteServiceAccount(account_id=args[0]))
        elif kind == "delete_resource":
            run(lambda: c.DeleteResource(path=args[0], recursive=True))
        elif kind == "role_policy":
            path, level = args
            run(
                lambda: c.build(
                    c.AddRolePolicy, org="acme", role="reader", resource=path, level=level
                )
            )
        elif kind == "role_unpolicy":
            run(lambda: c.RemoveRolePolicy(org="acme", role="reader", resource=args[0]))
        elif kind == "delete_role":
            run(lambda: c.DeleteRole(org="acme", role="reader"))
        elif kind == "create_resource":
            run(lambda: c.CreateResource(path=args[0]))
        elif kind == "time":
            self.clock.moment += args[0]
        else:  # pragma: no cover
            raise AssertionError(kind)


def alter(secret: str) -> str:
    """A secret of the same shape that no token has."""
    last = "A" if secret[-1] != "A" else "B"
    return secret[:-1] + last


def assert_same_answers(verifier: Verifier, history: History) -> None:
    ledger = history.ledger
    assert verifier.wait_for(ledger.store.head().position, WAIT)
    secrets = [*history.secrets, "not-a-secret", *(alter(s) for s in history.secrets[:1])]
    for secret in secrets:
        for resource, level in QUESTIONS:
            expected = ledger.verify(secret, resource=resource, level=level)
            assert verifier.verify(secret, resource, level) == expected, (secret, resource)
            # Asked again: the kept answer, still the same.
            assert verifier.verify(secret, resource, level) == expected


@pytest.fixture
def new_url(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Callable[[], str]:
    """Fresh, empty databases on the backend ``database_url`` stands for."""
    if database_url.startswith("sqlite"):
        counter = itertools.count()
        return lambda: f"sqlite:///{tmp_path / f'ledger-{next(counter)}.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.fresh_schema  # type: ignore[no-any-return]


@pytest.fixture
def history_of(new_url: Callable[[], str]) -> Iterator[Callable[[], tuple[History, str]]]:
    opened: list[Ledger] = []

    def make() -> tuple[History, str]:
        url = new_url()
        clock = SteppedClock()
        ledger = Ledger(open_event_store(url, auto_upgrade=True, clock=clock))
        opened.append(ledger)
        history = History(ledger, clock, [])
        for command in WORLD:
            history.run(lambda command=command: command)  # type: ignore[misc]
        return history, url

    yield make
    for ledger in opened:
        ledger.close()


def test_a_database_verifier_answers_exactly_as_the_ledger(
    history_of: Callable[[], tuple[History, str]],
) -> None:
    @settings(
        max_examples=25,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(st.lists(steps, min_size=8, max_size=20))
    def check(plan: list[tuple[Any, ...]]) -> None:
        history, url = history_of()
        for step in STARTING_TOKENS:
            history.step(step)
        with Verifier(database=url, clock=history.clock) as verifier:
            assert verifier.wait_ready(WAIT)
            for number, step in enumerate(plan, start=1):
                history.step(step)
                if number % 4 == 0:
                    assert_same_answers(verifier, history)
            assert_same_answers(verifier, history)
            assert verifier.ready
            assert verifier.error is None

    check()


def test_the_folded_event_types_are_those_the_answer_reads() -> None:
    """Dropping any type from the fold changes some answer of a history that uses it (the
    property test above checks that nothing more is needed)."""
    names = {kind.__struct_config__.tag for kind in TOKEN_ANSWER_EVENTS}
    assert names == {
        "OrgCreated", "UserCreated", "UserDisabled", "MemberAdded", "MemberRoleChanged",
        "MemberRemoved", "GrantSet", "GrantRemoved", "RoleCreated", "RolePolicyAdded",
        "RolePolicyRemoved", "RoleDeleted", "ServiceAccountCreated",
        "ServiceAccountPermissionMoved", "ServiceAccountPermissionLevelChanged",
        "ServiceAccountDeleted", "TokenIssued", "TokenRevoked", "TokenDisabled", "TokenEnabled",
        "ServiceAccountDisabled", "ServiceAccountEnabled",
        "TokenRotated",
        "TokenExpiryShortened",
    }  # fmt: skip


def test_a_database_verifier_follows_new_commits_and_refuses_what_the_ledger_refuses(
    history_of: Callable[[], tuple[History, str]],
) -> None:
    history, url = history_of()
    history.step(("issue", "bob@acme.io", [("acme/alpha", "write")], timedelta(hours=1)))
    (secret,) = history.secrets
    with Verifier(database=url, clock=history.clock) as verifier:
        assert verifier.wait_ready(WAIT)
        first = verifier.verify(secret, "acme/alpha", Level.WRITE)
        assert first.active
        assert first.allowed
        assert verifier.verify(secret, "acme/alpha", Level.WRITE) is first  # kept
        # Lowering bob's grant narrows the token at once; the kept answer is dropped.
        history.step(("grant", "bob@acme.io", "acme/alpha", "read"))
        assert verifier.wait_for(history.ledger.store.head().position, WAIT)
        narrowed = verifier.verify(secret, "acme/alpha", Level.WRITE)
        assert narrowed.active
        assert not narrowed.allowed
        # A kept active answer is never served past its expiry.
        history.clock.moment += timedelta(hours=2)
        assert verifier.verify(secret, "acme/alpha", Level.WRITE) == Verification(
            active=False, allowed=False, reason="expired", token_id=first.token_id
        )
        with pytest.raises(ValidationError):
            verifier.verify(secret, "Acme//x")
        with pytest.raises(ValidationError):
            history.ledger.verify(secret, resource="Acme//x")
        assert verifier.position == history.ledger.store.head().position
        assert not verifier.wait_for(verifier.position + 1, timeout=0.01)


def test_a_verifier_needs_one_source() -> None:
    with pytest.raises(ValidationError):
        Verifier()
    with pytest.raises(ValidationError):
        Verifier(database="sqlite://", server="http://127.0.0.1:1", token="x")
    with pytest.raises(ValidationError):
        Verifier(server="http://127.0.0.1:1")


# -- following a server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    """The API over ``ledger`` on uvicorn in a thread, on a loopback port: Server-Sent Events
    over a real socket. ``stop`` and ``start`` again on the same port, as a restart would."""

    def __init__(self, ledger: Ledger, keys: KeyStore, secrets: dict[str, str]) -> None:
        self.ledger = ledger
        self.secrets = secrets
        self.app = create_asgi_app(ledger, ApiSettings(issuer=ISSUER, keys=keys))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
        self.server = server = uvicorn.Server(config)
        self.thread = thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + WAIT
        while not server.started:  # a thread, not a process: polled, never long
            assert thread.is_alive(), "the server did not start"
            assert time.monotonic() < deadline, "the server did not start in time"
            time.sleep(0.01)

    def stop(self) -> None:
        assert self.server is not None
        assert self.thread is not None
        self.server.should_exit = True
        self.thread.join(WAIT)
        assert not self.thread.is_alive()


@pytest.fixture
def live_server(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LiveServer]:
    monkeypatch.setattr(event_routes, "HEARTBEAT", 0.2)
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    secrets = seed(ledger)
    keys = KeyStore(tmp_path / "keys.json")
    keys.rotate(datetime.now(UTC))
    server = LiveServer(ledger, keys, secrets)
    server.start()
    yield server
    server.stop()
    ledger.close()


def test_a_server_verifier_answers_as_the_server_and_sees_revocations(
    live_server: LiveServer,
) -> None:
    ledger, secrets = live_server.ledger, live_server.secrets
    bob, carol = secrets["bob"], secrets["carol"]
    with Verifier(server=live_server.base, token=secrets["ann"]) as verifier:
        assert verifier.wait_ready(WAIT)
        assert verifier.position == ledger.store.head().position
        for secret in (bob, carol, secrets["sa_token"], "not-a-secret", alter(bob)):
            for resource, level in QUESTIONS:
                expected = ledger.verify(secret, resource=resource, level=level)
                assert verifier.verify(secret, resource, level) == expected

        # Bob revokes his token through the API: the verifier hears of it, answers inactive.
        token_id = ledger.authenticate(bob).token_id
        with httpx.Client(base_url=live_server.base, timeout=WAIT) as http:
            revoked = http.delete(
                f"/v2/tokens/{token_id}", headers={"Authorization": f"Bearer {bob}"}
            )
        assert revoked.status_code == 200, revoked.text
        position = max(event["position"] for event in revoked.json()["events"])
        assert verifier.wait_for(position, WAIT)
        answer = verifier.verify(bob, "acme/alpha", Level.WRITE)
        assert answer == ledger.verify(bob, resource="acme/alpha", level=Level.WRITE)
        assert answer.reason == "revoked"
        assert not answer.active

        # A change in another org, which ann may not see: the position still moves, and the
        # answer kept for carol's token is not served past it.
        assert verifier.verify(carol).active
        carol_id = ledger.authenticate(carol).token_id
        assert carol_id is not None
        result = ledger.execute(c.RevokeToken(token_id=carol_id), OPERATOR)
        assert verifier.wait_for(result.records[-1].position, WAIT)
        assert verifier.verify(carol) == ledger.verify(carol)
        assert not verifier.verify(carol).active
        assert verifier.error is None


def test_a_server_verifier_with_a_refused_credential_stops(live_server: LiveServer) -> None:
    with Verifier(server=live_server.base, token="tlp_not_a_token") as verifier:
        assert not verifier.wait_ready(WAIT)
        assert verifier.error is not None
        assert "not valid" in str(verifier.error)


def test_a_server_verifier_resumes_after_the_server_restarts(live_server: LiveServer) -> None:
    ledger, secrets = live_server.ledger, live_server.secrets
    bob = secrets["bob"]
    with Verifier(server=live_server.base, token=secrets["ann"]) as verifier:
        assert verifier.wait_ready(WAIT)
        assert verifier.verify(bob).active
        live_server.stop()  # the stream is cut; reconnecting fails until it is back
        token_id = ledger.authenticate(bob).token_id
        assert token_id is not None
        result = ledger.execute(c.RevokeToken(token_id=token_id), OPERATOR)
        position = result.records[-1].position
        assert not verifier.wait_for(position, timeout=0.05)
        live_server.start()
        assert verifier.wait_for(position, WAIT)  # resumed from where it was, with Last-Event-ID
        assert verifier.verify(bob) == ledger.verify(bob)
        assert verifier.verify(bob).reason == "revoked"
        assert verifier.error is None
