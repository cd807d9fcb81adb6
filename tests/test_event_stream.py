"""``GET /v2/events/stream``: the events a caller may see as Server-Sent Events, resumable
by position, over HTTP. Every read stops after the messages it needs (or fails after a few
keep-alives with nothing new), so no test waits on a stream that never ends."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api_helpers import OPERATOR, Api, make_api
from tokenledger.api.routes import events as event_routes
from tokenledger.domain import commands as c
from tokenledger.domain.permissions import Level

#: Keep-alives in a row after which a read gives up: nothing more is coming.
QUIET_LIMIT = 40

Message = dict[str, str]


@pytest.fixture(autouse=True)
def quick_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_routes, "HEARTBEAT", 0.05)


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def lines_of(response: httpx.Response) -> Iterator[str]:
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    return iter(response.iter_lines())


def read_messages(lines: Iterator[str], done: Callable[[list[Message]], bool]) -> list[Message]:
    """Messages (their fields) until ``done`` holds; fails once the stream falls quiet."""
    messages: list[Message] = []
    fields: Message = {}
    quiet = 0
    for line in lines:
        if line.startswith(":"):
            quiet += 1
            assert quiet < QUIET_LIMIT, f"the stream fell quiet after {messages}"
            continue
        if line == "":
            if fields:
                messages.append(fields)
                fields = {}
                quiet = 0
                if done(messages):
                    return messages
            continue
        name, _, value = line.partition(":")
        fields[name] = value.removeprefix(" ")
    raise AssertionError(f"the stream ended after {messages}")


def reaches(position: int) -> Callable[[list[Message]], bool]:
    return lambda messages: bool(messages) and int(messages[-1]["id"]) >= position


def stream(
    api: Api, secret: str, until: Callable[[list[Message]], bool], **options: Any
) -> list[Message]:
    headers = {**api.bearer(secret), **options.pop("headers", {})}
    with api.client.stream("GET", "/v2/events/stream", params=options, headers=headers) as response:
        return read_messages(lines_of(response), until)


def head(api: Api) -> int:
    return api.ledger.store.head().position


def events_of(messages: list[Message]) -> list[dict[str, Any]]:
    return [json.loads(m["data"]) for m in messages if m.get("event") != "position"]


def test_an_org_admin_sees_its_org_and_the_position_moves_past_the_rest(api: Api) -> None:
    end = head(api)
    messages = stream(api, api.ann, reaches(end))
    first = messages[0]
    assert first["event"] == "position"
    assert json.loads(first["data"]) == {"position": 0, "head": end}
    seen = events_of(messages)
    assert seen, "an admin of acme sees acme's events"
    for event in seen:
        assert event["specversion"] == "1.0"
        assert event["type"].startswith(f"io.tokenledger.{event['data']['type']}.v")
        assert "other" not in (event["data"].get("org"), event["subject"])
        assert "carol@other.io" not in json.dumps(event)
    assert {"org:acme", "org:other"} & {e["subject"] for e in seen} == {"org:acme"}
    # Each event's id is its position, in order, and the checkpoint reaches the head.
    ids = [int(m["id"]) for m in messages]
    assert ids == sorted(ids)
    assert [int(m["id"]) for m in messages if m["event"] != "position"] == [
        e["tlposition"] for e in seen
    ]
    assert int(messages[-1]["id"]) == end

    # Another org's commit: invisible to acme's admin, but its position still arrives.
    api.ledger.execute(c.CreateResource(path="other/secret"), OPERATOR)
    after = stream(api, api.ann, reaches(end + 1), after=end)
    assert after[-1] == {
        "id": str(end + 1),
        "event": "position",
        "data": json.dumps({"position": end + 1}, separators=(",", ":")),
    }
    assert events_of(after) == []
    # The other org's admin sees it.
    theirs = events_of(stream(api, api.carol, reaches(end + 1), after=end))
    assert [e["data"]["path"] for e in theirs] == ["other/secret"]


def test_after_and_last_event_id_resume_without_gap_or_duplicate(api: Api) -> None:
    start = head(api)
    for name in ("one", "two", "three"):
        api.ledger.execute(c.CreateResource(path=f"acme/{name}"), OPERATOR)
    end = head(api)
    whole = events_of(stream(api, api.ann, reaches(end), after=start))
    assert [e["tlposition"] for e in whole] == list(range(start + 1, end + 1))
    # Resume after the first: exactly the rest.
    middle = start + 1
    rest = events_of(stream(api, api.ann, reaches(end), after=middle))
    assert rest == whole[1:]
    # Last-Event-ID wins over after.
    resumed = stream(api, api.ann, reaches(end), after=0, headers={"Last-Event-ID": str(middle)})
    assert json.loads(resumed[0]["data"])["position"] == middle
    assert events_of(resumed) == whole[1:]


def test_new_commits_arrive_while_connected(api: Api) -> None:
    start = head(api)
    with api.client.stream(
        "GET", "/v2/events/stream", params={"after": start}, headers=api.admin
    ) as response:
        lines = lines_of(response)
        first = read_messages(lines, lambda m: len(m) == 1)
        assert json.loads(first[0]["data"])["position"] == start
        api.ledger.execute(
            c.SetGrant(principal="bob@acme.io", resource="acme/beta", level=Level.READ), OPERATOR
        )
        more = read_messages(lines, reaches(start + 1))
    assert [m["event"] for m in more] == ["GrantSet"]


def test_a_revoked_credential_ends_the_stream(api: Api) -> None:
    end = head(api)
    with api.client.stream("GET", "/v2/events/stream", headers=api.admin) as response:
        lines = lines_of(response)
        read_messages(lines, reaches(end))
        token_id = api.ledger.authenticate(api.ann).token_id
        assert token_id is not None
        api.ledger.execute(c.RevokeToken(token_id=token_id), OPERATOR)
        # The batch holding the revocation is not sent: the credential is judged first.
        rest = list(lines)
    assert not any(line.startswith("event: TokenRevoked") for line in rest)
    answer = api.client.get("/v2/events/stream", headers=api.admin)
    assert answer.status_code == 401


def test_unauthenticated_and_bad_positions_are_refused(api: Api) -> None:
    assert api.client.get("/v2/events/stream").status_code == 401
    bad = api.client.get("/v2/events/stream", headers={"Authorization": "Bearer tlp_nope"})
    assert bad.status_code == 401
    for after in ("-1", "x", "1.5", str(10**20), "%2B5", "1_0", "%D9%A1"):
        answer = api.client.get(f"/v2/events/stream?after={after}", headers=api.admin)
        assert answer.status_code == 400, after
        assert answer.json()["error"] == "invalid_request"
    for last in ("-1", "x", "9" * 20):
        answer = api.client.get("/v2/events/stream", headers={**api.admin, "Last-Event-ID": last})
        assert answer.status_code == 400, last
        assert "Last-Event-ID" in answer.json()["error_description"]

    beyond = head(api) + 1
    for options in ({"params": {"after": beyond}}, {"headers": {"Last-Event-ID": str(beyond)}}):
        headers = {**api.admin, **options.get("headers", {})}
        answer = api.client.get("/v2/events/stream", params=options.get("params"), headers=headers)
        assert answer.status_code == 425, options
        assert answer.json()["error"] == "position_not_reached"


def test_a_role_key_sees_its_own_events_not_its_siblings(api: Api) -> None:
    api.ledger.execute(c.CreateRole(org="acme", role="dev"), OPERATOR)
    keys = [
        api.ledger.execute(c.IssueRoleKey(org="acme", role="dev", name=name), OPERATOR)
        for name in ("mine", "sibling")
    ]
    mine, sibling = (key.outcome.issued for key in keys)
    assert mine is not None
    assert sibling is not None
    secret = keys[0].secret
    assert secret is not None
    seen = events_of(stream(api, secret, reaches(head(api))))
    tokens = {e["data"].get("token_id") for e in seen}
    assert mine.token_id in tokens
    assert sibling.token_id not in tokens
    audit = api.client.get(
        "/v2/audit", params={"subject": sibling.token_id}, headers=api.bearer(secret)
    )
    assert sibling.token_id not in audit.text


def test_a_credential_revoked_elsewhere_is_judged_before_its_batch_is_sent(
    api: Api, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    end = head(api)
    follower = api.ledger.answers._follower
    assert follower is not None
    with api.client.stream("GET", "/v2/events/stream", headers=api.admin) as response:
        lines = lines_of(response)
        read_messages(lines, reaches(end))
        # This worker's answer cache vouches for ann's token and never hears of the
        # revocation (its follower stands still): the stream must not go by it.
        monkeypatch.setattr(follower, "is_current", lambda: True)
        monkeypatch.setattr(follower, "_apply", lambda batch: None)
        revoked = api.revoke_elsewhere(api.ann, database_url)
        # The stream ends without sending the batch (nor moving the checkpoint to it).
        with pytest.raises(AssertionError, match="the stream ended"):
            read_messages(lines, reaches(revoked))
