"""``resources get PATH --at T`` (and ``GET /v2/resources/{path}?at=``): a resource as it
stood at a past moment, folded from its own events (found through the audit index) and
equal at every moment to the reference fold of the whole log's prefix
(``projections.history.state_at``), on SQLite and PostgreSQL. A moment the log cannot answer
for is refused as ``tokens list --at`` refuses it: one line, exit 2 (HTTP 400)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import msgspec
import pytest
from freezegun import freeze_time

from api_helpers import Api, make_api
from helpers import assert_one_line_error, cli_head, cli_json, cli_run
from tokenledger.domain.model import ResourceView
from tokenledger.projections.history import resource_at, state_at
from tokenledger.store import EventStore, open_event_store

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
PATHS = ("acme", "acme/alpha", "acme/alpha/raw", "acme/beta")


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


@dataclass
class History:
    url: str
    #: Moments worth asking about: before, at and between each change.
    moments: list[datetime]


def _run(url: str, *args: str) -> None:
    result = cli_run(url, *args)
    assert result.exit_code == 0, (result.output, result.exception)


@pytest.fixture
def history(database_url: str) -> Iterator[History]:
    """acme/alpha created, given a license and a data class, deleted (its child raw with
    it), created again with another license; acme/beta created and left alone; grants and
    tokens on the same paths in between (events about the path that do not change it)."""
    steps: list[tuple[float, tuple[str, ...]]] = [
        (0, ("db", "upgrade")),
        (0, ("orgs", "create", "acme")),
        (0, ("users", "create", "ann@acme.io")),
        (0, ("orgs", "add-member", "acme", "ann@acme.io")),
        (1, ("resources", "create", "acme/alpha")),
        (1, ("resources", "create", "acme/alpha/raw", "--license", "CC-BY-4.0")),
        (1.5, ("grants", "set", "ann@acme.io", "acme/alpha", "write")),
        (2, ("resources", "set", "acme/alpha", "--license", "MIT")),
        (2.5, ("tokens", "create", "--principal", "ann@acme.io", "--resource", "acme/alpha",
               "--level", "read")),
        (3, ("resources", "set", "acme/alpha", "--data-class", "confidential")),
        (3, ("resources", "create", "acme/beta")),
        (4, ("resources", "delete", "acme/alpha", "--recursive")),
        (5, ("resources", "create", "acme/alpha")),
        (6, ("resources", "set", "acme/alpha", "--license", "Apache-2.0")),
    ]  # fmt: skip
    with freeze_time(T0) as clock:
        for at, args in steps:
            clock.move_to(hours(at))
            _run(database_url, *args)
        clock.move_to(hours(7))
        moments = sorted({hours(at) for at, _ in steps} | {hours(at + 0.25) for at, _ in steps})
        yield History(url=database_url, moments=moments)


def _reference(store: EventStore, path: str, moment: datetime) -> ResourceView | None:
    return state_at(store, moment)[0].resource(path)


def test_each_moment_answers_as_the_fold_of_the_whole_prefix(history: History) -> None:
    store = open_event_store(history.url)
    try:
        for moment in history.moments:
            for path in PATHS:
                reference = _reference(store, path, moment)
                assert resource_at(store, path, moment) == reference, (path, moment)
    finally:
        store.engine.dispose()


def test_the_command_line_reads_only_the_resources_own_events(
    history: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log's prefix is never read: asking about a moment costs the resource's own
    events, however long the log."""
    store = open_event_store(history.url)
    expected = {
        (path, moment): _reference(store, path, moment)
        for moment in history.moments
        for path in PATHS
    }
    store.engine.dispose()

    def no_prefix(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("the log's prefix was read")

    monkeypatch.setattr(EventStore, "read_all", no_prefix)
    for (path, moment), reference in expected.items():
        result = cli_run(
            history.url, "resources", "get", path, "--at", moment.isoformat(), "--json"
        )
        if reference is None:
            assert_one_line_error(result, 3, f"no resource {path} at {moment.isoformat()}")
            continue
        assert result.exit_code == 0, result.output
        got = msgspec.json.decode(result.stdout)
        for key in ("path", "kind", "license", "data_class"):
            assert got[key] == getattr(reference, key), (path, moment, key)
        assert datetime.fromisoformat(got["created_at"]) == reference.created_at

    recreated = cli_json(
        history.url, "resources", "get", "acme/alpha", "--at", hours(5.5).isoformat()
    )
    assert (recreated["license"], recreated["data_class"]) == (None, None)
    before = cli_json(history.url, "resources", "get", "acme/alpha", "--at", hours(3.5).isoformat())
    assert (before["license"], before["data_class"]) == ("MIT", "confidential")


@pytest.mark.parametrize(
    ("moment", "fragment"),
    [
        ("2026-04-01T00:00:00Z", "is before the first event"),
        ("2099-01-01T00:00:00Z", "is after now"),
    ],
)
def test_a_moment_the_log_cannot_answer_for_is_refused_as_tokens_list_refuses_it(
    history: History, moment: str, fragment: str
) -> None:
    head = cli_head(history.url)
    resource = cli_run(history.url, "resources", "get", "acme/alpha", "--at", moment)
    tokens = cli_run(history.url, "tokens", "list", "--principal", "ann@acme.io", "--at", moment)
    assert_one_line_error(resource, 2, fragment)
    assert_one_line_error(tokens, 2, fragment)
    assert resource.stderr == tokens.stderr
    assert cli_head(history.url) == head


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def test_over_http_at_goes_the_same_way(api: Api) -> None:
    first = next(iter(api.ledger.store.read_all(until_position=1))).recorded_at
    now = api.ledger.now()
    answer = api.client.get(
        "/v2/resources/acme/alpha", params={"at": now.isoformat()}, headers=api.admin
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["path"] == "acme/alpha"
    at_start = api.client.get(
        "/v2/resources/acme/alpha", params={"at": first.isoformat()}, headers=api.admin
    )
    assert at_start.status_code == 404  # the org is the log's first event, alpha came later
    head = api.ledger.store.head().position
    for moment, fragment in (
        (first - timedelta(seconds=1), "is before the first event"),
        (now + timedelta(days=1), "is after now"),
    ):
        refused = api.client.get(
            "/v2/resources/acme/alpha", params={"at": moment.isoformat()}, headers=api.admin
        )
        assert refused.status_code == 400, refused.text
        assert fragment in refused.json()["error_description"]
    assert api.ledger.store.head().position == head
