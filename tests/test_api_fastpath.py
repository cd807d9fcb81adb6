"""The introspection fast path answers exactly as the FastAPI route does, on SQLite and
PostgreSQL: same status, headers and body bytes, same metrics; and it hands every
unusual call to the route, body and all."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from api_helpers import ISSUER, Api, is_inactive_body, seed
from helpers import head_position
from tokenledger.api import ApiSettings, create_app
from tokenledger.api.fastpath import IntrospectionFastPath, bearer_and_form, token_field
from tokenledger.api.routes.oauth import INTROSPECT_PATH
from tokenledger.api.state import ApiState
from tokenledger.errors import StorageError
from tokenledger.service import Ledger
from tokenledger.service.keys import KeyStore
from tokenledger.store import open_event_store

FORM = "application/x-www-form-urlencoded"


class Spy:
    """Between the fast path and the FastAPI app: records which calls got through."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.reached: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.reached.append(scope["path"])
        await self.app(scope, receive, send)


@dataclass
class Both:
    """One ledger and one FastAPI app, reached with (``fast``) and without (``plain``) the
    fast path in front; ``spy`` tells whether a call went past the fast path."""

    api: Api
    plain: TestClient
    spy: Spy

    @property
    def fast(self) -> TestClient:
        return self.api.client

    def compare(self, method: str = "POST", path: str = INTROSPECT_PATH, **kwargs: Any) -> bool:
        """Send the same call both ways; assert identical answers; whether the fast path
        answered it itself."""
        self.spy.reached.clear()
        # Both answers name the position they reflect: the follower's, once it has applied
        # what this process wrote.
        assert self.api.ledger.answers.wait_for(head_position(self.api.ledger), 30)
        fast = self.fast.request(method, path, **kwargs)
        handled = path not in self.spy.reached
        plain = self.plain.request(method, path, **kwargs)
        assert fast.status_code == plain.status_code, (fast.text, plain.text)
        assert fast.headers.raw == plain.headers.raw
        assert fast.content == plain.content
        return handled


def served_app(ledger: Ledger, settings: ApiSettings) -> tuple[IntrospectionFastPath, Spy]:
    app = create_app(ledger, settings)
    spy = Spy(app)
    state: ApiState = app.state.tokenledger
    return IntrospectionFastPath(spy, state, INTROSPECT_PATH), spy


def both_ways(database_url: str, tmp_path: Path, staleness: float = 0.0) -> Iterator[Both]:
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    secrets = seed(ledger)
    keys = KeyStore(tmp_path / "keys.json")
    keys.rotate(datetime.now(UTC))
    settings = ApiSettings(issuer=ISSUER, keys=keys, cache_staleness=staleness)
    fast_app, spy = served_app(ledger, settings)
    with (
        TestClient(fast_app, raise_server_exceptions=False) as fast,
        TestClient(spy.app, raise_server_exceptions=False) as plain,
    ):
        api = Api(ledger=ledger, keys=keys, client=fast, **secrets)
        yield Both(api=api, plain=plain, spy=spy)
    ledger.close()


@pytest.fixture
def both(database_url: str, tmp_path: Path) -> Iterator[Both]:
    yield from both_ways(database_url, tmp_path)


def form(token: str, **extra: str) -> dict[str, Any]:
    return {"data": {"token": token, **extra}}


# -- answered by the fast path, exactly as the route answers -------------------------------------


def test_active_and_inactive_tokens_answer_like_the_route(both: Both) -> None:
    api = both.api
    jwt = api.access_token()
    _, client_secret = api.credential()
    admin = api.admin
    cases: list[dict[str, Any]] = [
        {**form(api.bob), "headers": admin},
        {**form(api.sa_token, token_type_hint="access_token"), "headers": admin},
        {**form(jwt), "headers": admin},  # an access token as the target
        {**form(api.bob), "headers": api.bearer(jwt)},  # an access token as the caller
        {**form(api.bob), "headers": {"Authorization": f"bearer {api.ann}"}},
        {**form("tlp_" + "A" * 32 + "0Bmp0y"), "headers": admin},  # unknown
        {**form("nonsense"), "headers": admin},  # malformed
        {**form("eyJ.e30.x"), "headers": admin},  # a malformed access token
        {**form(client_secret), "headers": admin},  # not a token
        {**form(api.bob), "headers": api.bearer("x.y.z")},  # the caller is refused: 401
        {**form(api.bob), "headers": api.bearer("tlp_" + "B" * 32 + "0Bmp0y")},
    ]
    for case in cases:
        assert both.compare(**case), case
    assert both.fast.post(INTROSPECT_PATH, **form(api.bob), headers=admin).json()["active"]


def test_a_refused_caller_gets_the_bearer_challenge(both: Both) -> None:
    response = both.fast.post(
        INTROSPECT_PATH, **form(both.api.bob), headers={"Authorization": "Bearer x.y.z"}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="tokenledger", error=')
    assert "x.y.z" not in response.text


def test_a_revocation_through_the_app_is_seen_at_once(database_url: str, tmp_path: Path) -> None:
    # A minute's staleness: only the app's own write can make it forget the answer.
    for both in both_ways(database_url, tmp_path, staleness=60.0):
        api = both.api
        assert both.compare(**form(api.bob), headers=api.admin)
        assert both.compare(**form(api.bob), headers=api.admin)  # from the cache, inline
        # Revoked by its own principal, as /oauth2/revoke allows.
        revoked = api.client.post(
            "/oauth2/revoke", data={"token": api.bob}, headers=api.bearer(api.bob)
        )
        assert revoked.status_code == 200
        assert both.compare(**form(api.bob), headers=api.admin)
        answer = api.client.post(INTROSPECT_PATH, **form(api.bob), headers=api.admin)
        assert is_inactive_body(answer.content)
        # The revoked token cannot call either.
        assert both.compare(**form(api.ann), headers=api.bearer(api.bob))


def test_a_write_elsewhere_is_answered_at_its_position_both_ways(
    database_url: str, tmp_path: Path
) -> None:
    for both in both_ways(database_url, tmp_path, staleness=60.0):
        api = both.api
        assert api.introspect(api.bob)["active"] is True
        position = api.revoke_elsewhere(api.bob, database_url)
        at_least = {**form(api.bob, min_position=str(position)), "headers": api.admin}
        assert both.compare(**at_least)  # the fast path waits for its position as well
        assert api.introspect(api.bob) == {"active": False}


# -- handed to the route, which answers -----------------------------------------------------------


def test_unusual_calls_go_to_the_route_unchanged(both: Both) -> None:
    api = both.api
    client_id, client_secret = api.credential()
    admin = api.admin
    escaped = "token=" + quote(api.bob, safe="").replace("_", "%5F")
    cases: list[dict[str, Any]] = [
        form(api.bob),  # no caller: 401 with a bare Bearer challenge
        {**form(api.bob), "headers": {"Authorization": "Bearer "}},
        {**form(api.bob), "auth": (client_id, client_secret)},  # client credentials (Basic)
        {**form(api.bob), "auth": (client_id, "nope")},
        {"data": {"token_type_hint": "access_token"}, "headers": admin},  # no token field
        {**form(""), "headers": admin},
        {"json": {"token": api.bob}, "headers": admin},  # another content type
        {"files": {"token": (None, api.bob)}, "headers": admin},  # multipart/form-data
        {**form(api.bob, resource="acme/alpha", level="write"), "headers": admin},
        {**form(api.bob, level="write"), "headers": admin},
        {**form("A" * 20_000), "headers": admin},  # an oversized body
        {**form("A" * 10_001), "headers": admin},  # a token too long
        {**form(api.bob, token_type_hint="h" * 401), "headers": admin},
        {"content": escaped, "headers": {**admin, "Content-Type": FORM}},  # to be decoded
        {"content": f"token=nope&token={api.bob}", "headers": {**admin, "Content-Type": FORM}},
    ]
    for case in cases:
        assert not both.compare(**case), case
    assert not both.compare("GET", INTROSPECT_PATH, headers=admin)  # 405
    missing = both.fast.post(INTROSPECT_PATH, **form(api.bob))
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="tokenledger"'
    basic = both.fast.post(INTROSPECT_PATH, **form(api.bob), auth=(client_id, client_secret))
    assert basic.json()["sub"] == "bob@acme.io"
    multipart = both.fast.post(INTROSPECT_PATH, files={"token": (None, api.bob)}, headers=admin)
    assert multipart.json()["active"] is True  # the body reached FastAPI whole


def test_errors_answer_like_the_route_without_a_traceback(
    both: Both, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = both.api
    secret = api.bob

    def unreachable(*args: object, **kwargs: object) -> object:
        raise StorageError("the database is unreachable")

    monkeypatch.setattr(ApiState, "introspect", unreachable)
    monkeypatch.setattr(ApiState, "authenticate", unreachable)
    assert both.compare(**form(secret), headers=api.admin)
    down = api.client.post(INTROSPECT_PATH, **form(secret), headers=api.admin)
    assert down.status_code == 503
    assert down.json()["error"] == "temporarily_unavailable"

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError(f"unforeseen, near {secret}")

    monkeypatch.setattr(ApiState, "introspect", broken)
    monkeypatch.setattr(ApiState, "authenticate", broken)
    assert both.compare(**form(secret), headers=api.admin)
    failed = api.client.post(INTROSPECT_PATH, **form(secret), headers=api.admin)
    assert failed.status_code == 500
    assert failed.json() == {
        "error": "server_error",
        "error_description": "internal error (logged on the server)",
    }
    assert "Traceback" not in failed.text
    assert secret not in failed.text


# -- metrics --------------------------------------------------------------------------------------

_COUNTS = re.compile(
    r"^tokenledger_(http_requests_total|http_request_duration_seconds_count|introspections_total"
    r"|answer_cache_total|authentications_total)\b"
)


def counts(client: TestClient) -> list[str]:
    return [line for line in client.get("/metrics").text.splitlines() if _COUNTS.match(line)]


def wait_until_current(ledger: Ledger) -> None:
    """Until the app's follower hears of every commit: before, a lookup may read the head
    instead, and which requests do depends on when its listening connection comes up."""
    follower = ledger.answers._follower
    if follower is None:
        return
    deadline = time.monotonic() + 30
    while not follower.is_current():
        assert time.monotonic() < deadline, "the follower never caught up"
        time.sleep(0.01)


def test_the_same_calls_move_the_same_metrics(database_url: str, tmp_path: Path) -> None:
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    secrets = seed(ledger)
    keys = KeyStore(tmp_path / "keys.json")
    keys.rotate(datetime.now(UTC))
    settings = ApiSettings(issuer=ISSUER, keys=keys)
    with TestClient(create_app(ledger, settings)) as setup:
        api = Api(ledger=ledger, keys=keys, client=setup, **secrets)
        jwt = api.access_token()
        client_id, client_secret = api.credential()
    calls: list[dict[str, Any]] = [
        {**form(api.bob), "headers": api.admin},
        {**form(api.bob), "headers": api.admin},
        {**form(jwt), "headers": api.admin},
        {**form(api.ann), "headers": api.bearer(jwt)},
        {**form("nonsense"), "headers": api.admin},
        {**form(api.bob), "headers": api.bearer("x.y.z")},
        {**form(api.bob), "auth": (client_id, client_secret)},
        form(api.bob),
    ]
    seen = []
    # One app at a time: both would share the ledger's one answer cache, and each app
    # starts it afresh.
    for make_app in (lambda: served_app(ledger, settings)[0], lambda: create_app(ledger, settings)):
        with TestClient(make_app()) as client:
            wait_until_current(ledger)
            for call in calls:
                client.post(INTROSPECT_PATH, **call)
            seen.append(counts(client))
    ledger.close()
    assert seen[0] == seen[1]
    assert 'tokenledger_introspections_total{outcome="active"} 5' in seen[0]
    route = 'method="POST",route="/oauth2/introspect"'
    assert f'tokenledger_http_requests_total{{{route},status="200"}} 6' in seen[0]
    assert f'tokenledger_http_requests_total{{{route},status="401"}} 2' in seen[0]


def test_the_metrics_move_for_calls_answered_inline(both: Both) -> None:
    api = both.api
    for token in (api.bob, api.bob, "nonsense"):
        assert both.compare(**form(token), headers=api.admin)
    text = api.client.get("/metrics").text
    route = 'method="POST",route="/oauth2/introspect",status="200"'
    # Three calls each way, into one series: the fast path uses the route's label.
    assert f"tokenledger_http_requests_total{{{route}}} 6" in text
    assert f"tokenledger_http_request_duration_seconds_count{{{route}}} 6" in text
    assert 'tokenledger_introspections_total{outcome="active"} 4' in text
    assert 'tokenledger_introspections_total{outcome="malformed"} 2' in text


# -- the request's parts --------------------------------------------------------------------------


def test_only_the_plain_form_of_the_common_call_is_taken_apart() -> None:
    assert token_field(b"token=tlp_abc") == ("tlp_abc", None)
    plain = b"token=eyJ.e30.x-_~&token_type_hint=access_token"
    assert token_field(plain) == ("eyJ.e30.x-_~", None)
    assert token_field(b"token_type_hint=&token=a") == ("a", None)
    assert token_field(b"min_position=12&token=a") == ("a", "12")
    for body in (
        b"",
        b"token=",
        b"token",
        b"token=a&",
        b"token=a&token=b",
        b"token=a&resource=acme",
        b"token=a%5Fb",
        b"token=a+b",
        b"token=a;b",
        b"token=" + b"a" * 10_001,
        b"token=a&token_type_hint=" + b"h" * 401,
        b"token=a&min_position=",
        b"token=a&min_position=-1",
        b"token=a&min_position=x",
        b"token=a&min_position=1&min_position=2",
        b"token=a&min_position=" + b"9" * 20,
    ):
        assert token_field(body) is None, body
    form_type = (b"content-type", FORM.encode())
    assert bearer_and_form([(b"authorization", b"Bearer  tok "), form_type]) == ("tok", None)
    assert bearer_and_form([form_type, (b"authorization", b"bEaReR tok")]) == ("tok", None)
    at_least = (b"tokenledger-min-position", b"7")
    assert bearer_and_form([form_type, at_least, (b"authorization", b"Bearer t")]) == ("t", "7")
    for headers in (
        [form_type],
        [(b"authorization", b"Bearer tok")],
        [(b"authorization", b"Basic dG9rOg=="), form_type],
        [(b"authorization", b"Bearer"), form_type],
        [(b"authorization", b"Bearer tok"), (b"content-type", b"application/json")],
        [(b"authorization", b"Bearer tok"), (b"content-type", FORM.encode() + b"; x=1")],
        [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b"), form_type],
        [(b"authorization", b"Bearer tok"), form_type, form_type],
        [(b"authorization", b"Bearer tok"), form_type, at_least, at_least],
    ):
        assert bearer_and_form(headers) is None, headers


def test_a_passed_on_body_is_replayed_whole() -> None:
    chunks = [b"token=" + b"a" * 9000, b"a" * 9000, b""]
    inbox: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    received: list[Message] = []

    async def receive() -> Message:
        return inbox.pop(0)

    async def send(message: Message) -> None:
        raise AssertionError("the fast path answered a body it should pass on")

    async def downstream(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            received.append(message)
            if not message.get("more_body", False):
                return

    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": INTROSPECT_PATH,
        "headers": [(b"authorization", b"Bearer tok"), (b"content-type", FORM.encode())],
    }
    layer = IntrospectionFastPath(downstream, cast(ApiState, None), INTROSPECT_PATH)
    asyncio.run(layer(scope, receive, send))
    assert b"".join(m["body"] for m in received) == b"".join(chunks)
    assert received[-1]["more_body"] is False


def test_the_served_app_still_documents_the_endpoint(both: Both) -> None:
    spec = both.fast.get("/openapi.json").json()
    operation = spec["paths"][INTROSPECT_PATH]["post"]
    assert operation["responses"]["401"]
    assert both.spy.reached == ["/openapi.json"]
