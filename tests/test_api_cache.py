"""The answer cache: reused while the log's head stands still, never past a token's expiry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api_helpers import ISSUER, Api, make_api, seed
from tokenledger.api import ApiSettings, create_asgi_app
from tokenledger.service import Ledger
from tokenledger.service.cache import HeadGatedCache
from tokenledger.service.keys import KeyStore
from tokenledger.store import open_event_store


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_answers_last_while_the_head_stands_still() -> None:
    head = [1]
    reads: list[int] = []

    def read_head() -> int:
        reads.append(head[0])
        return head[0]

    cache: HeadGatedCache[str] = HeadGatedCache(read_head, staleness=0.0)
    found, generation = cache.get("k", now_epoch=0)
    assert found is None
    cache.put("k", "answer", None, generation)
    assert cache.get("k", now_epoch=0)[0] == "answer"
    head[0] = 2
    assert cache.get("k", now_epoch=0)[0] is None
    assert len(reads) == 3  # staleness 0: the head is read on every lookup


def test_an_answer_computed_across_a_move_is_not_kept() -> None:
    head = [1]
    cache: HeadGatedCache[str] = HeadGatedCache(lambda: head[0], staleness=0.0)
    _, generation = cache.get("k", now_epoch=0)
    head[0] = 2
    cache.get("other", now_epoch=0)  # the cache moves on to head 2
    cache.put("k", "computed at head 1", None, generation)
    assert cache.get("k", now_epoch=0)[0] is None


def test_expired_answers_are_not_served() -> None:
    cache: HeadGatedCache[str] = HeadGatedCache(lambda: 1, staleness=0.0)
    _, generation = cache.get("k", now_epoch=0)
    cache.put("k", "active", 50, generation)
    assert cache.get("k", now_epoch=49)[0] == "active"
    assert cache.get("k", now_epoch=50)[0] is None


def test_staleness_bounds_how_long_the_head_goes_unread() -> None:
    head = [1]
    clock = Clock()
    cache: HeadGatedCache[str] = HeadGatedCache(lambda: head[0], staleness=0.05, monotonic=clock)
    assert cache.peek("k", 0) is None  # never read yet: peek does not read it
    _, generation = cache.get("k", now_epoch=0)
    cache.put("k", "answer", None, generation)
    head[0] = 2
    clock.now += 0.04
    assert cache.peek("k", 0) == "answer"  # within the bound: possibly stale, by design
    clock.now += 0.02
    assert cache.peek("k", 0) is None
    assert cache.get("k", now_epoch=0)[0] is None
    cache.invalidate()
    assert cache.peek("k", 0) is None


@pytest.fixture
def stale_api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    """The API with a 60 s staleness bound: only its own writes can clear its cache."""
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    secrets = seed(ledger)
    keys = KeyStore(tmp_path / "keys.json")
    keys.rotate(datetime.now(UTC))
    settings = ApiSettings(issuer=ISSUER, keys=keys, cache_staleness=60.0)
    with TestClient(create_asgi_app(ledger, settings), raise_server_exceptions=False) as client:
        yield Api(ledger=ledger, keys=keys, client=client, **secrets)
    ledger.close()


def test_writes_through_the_api_clear_its_cache(stale_api: Api) -> None:
    api = stale_api
    assert api.introspect(api.bob)["active"] is True
    assert api.introspect(api.bob)["active"] is True  # now from the cache
    response = api.client.post(
        "/oauth2/revoke", data={"token": api.bob}, headers=api.bearer(api.bob)
    )
    assert response.status_code == 200
    assert api.introspect(api.bob) == {"active": False}
    metrics = api.client.get("/metrics").text
    assert 'tokenledger_answer_cache_total{outcome="hit"}' in metrics


def test_a_write_elsewhere_is_seen_once_the_worker_follows_to_it(
    database_url: str, tmp_path: Path
) -> None:
    for api in make_api(database_url, tmp_path):
        assert api.introspect(api.bob)["active"] is True
        # Another process's write: this app's cache is not told, the log tells it.
        position = api.revoke_elsewhere(api.bob, database_url)
        assert api.ledger.answers.wait_for(position, 30)
        assert api.introspect(api.bob) == {"active": False}
        refused = api.client.get("/v2/orgs", headers=api.bearer(api.bob))
        assert refused.status_code == 401
