"""The collector pause around bulk work: never left paused, whatever the blocks do."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor
from tokenledger.errors import NotFound
from tokenledger.projections import gc_pause
from tokenledger.projections.gc_pause import gc_paused
from tokenledger.projections.rebuild import rebuild
from tokenledger.service import Ledger
from tokenledger.store import open_event_store


@pytest.fixture(autouse=True)
def collector_enabled() -> Iterator[None]:
    gc.enable()
    yield
    assert gc_pause._open_blocks == 0  # every block ended
    gc.enable()


def test_a_block_pauses_the_collector_and_the_last_to_end_resumes_it() -> None:
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block is still open
    assert gc.isenabled()


def test_a_block_that_raises_resumes_the_collector() -> None:
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_disabled_before_stays_disabled() -> None:
    gc.disable()
    with gc_paused():
        pass
    assert not gc.isenabled()


def test_blocks_overlapping_across_threads_resume_it_once_all_have_ended() -> None:
    entered, release = threading.Event(), threading.Event()

    def other() -> None:
        with gc_paused():
            entered.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    assert entered.wait(5)
    with gc_paused():
        pass
    assert not gc.isenabled()  # the other thread's block is still open
    release.set()
    thread.join(5)
    assert gc.isenabled()


def test_commands_and_rebuilds_leave_the_collector_running(database_url: str) -> None:
    """Whether a command is accepted or refused, and after a rebuild of many pages, the
    collector runs again (the pause is for their duration only)."""
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    try:
        for org in ("acme", "initech", "globex"):
            ledger.execute(c.CreateOrg(org=org), Actor.operator("alice"))
        assert gc.isenabled()
        with pytest.raises(NotFound):
            ledger.execute(c.CreateResource(path="nowhere/a"), Actor.operator("alice"))
        assert gc.isenabled()
        rebuild(ledger.store, batch_size=2)
        assert gc.isenabled()
    finally:
        ledger.close()
