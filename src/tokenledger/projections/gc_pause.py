"""Pausing Python's cyclic garbage collector around bulk work.

A rebuild's page or a cascade's thousands of events allocate hundreds of
thousands of small objects (records, events, rows) that all live until the work
ends and hold no reference cycles. The collector, started every 700
allocations, walks the survivors again at each run, a cost that grows with the
work (``docs/benchmarks.md`` has the figures). Paused for the block, it examines
them once, at the first allocation after it (reference counting still frees
everything as before).

Only for work that ends soon: while any block is open in the process, no cycle
is collected anywhere in it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]

_lock = threading.Lock()
_open_blocks = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic collector disabled; blocks may nest or overlap across
    threads: the collector is enabled again (if it was before the first) when the last ends.
    A ``gc.enable()`` or ``gc.disable()`` made elsewhere while a block is open is not kept."""
    global _open_blocks, _was_enabled
    counted = False
    try:
        with _lock:
            if _open_blocks == 0:
                _was_enabled = gc.isenabled()
            _open_blocks += 1
            counted = True
            gc.disable()
        yield
    finally:
        # Also reached when an interrupt lands while entering: undo only what was counted.
        if counted:
            with _lock:
                _open_blocks -= 1
                if _open_blocks == 0 and _was_enabled:
                    gc.enable()
