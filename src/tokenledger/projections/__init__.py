"""Projections: plain tables holding the current state, rebuilt only from events.

Inline projections are updated in the same transaction as the append
(read-your-writes): a command appends its events, then hands the records and
events to :class:`Projector`, which folds them in with :func:`apply_event` and
moves its checkpoint. :class:`SqlLedgerView` reads the tables.
"""

from __future__ import annotations

from tokenledger.projections.handlers import apply_event
from tokenledger.projections.projector import Projector
from tokenledger.projections.view import SqlLedgerView

__all__ = ["Projector", "SqlLedgerView", "apply_event"]
