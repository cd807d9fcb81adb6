"""Every error the ledger raises on purpose.

The tree::

    LedgerError
    ├── ValidationError          bad input: a name, a path, a level, a duration, a file
    ├── NotFound                 an org, user, resource, account or token that does not exist
    ├── PermissionDenied         the acting principal may not do this
    ├── Conflict                 the request contradicts the ledger's current state
    │   ├── WrongExpectedVersion a stream moved on since the caller read it
    │   └── PositionNotReached   an answer was asked to reflect a position not yet in the log
    ├── IntegrityViolation       the log is not what it was written as
    │   └── CorruptEvent         a stored payload cannot be decoded
    └── StorageError             the database cannot be used as a ledger
        └── SchemaOutOfDate      the database needs ``tokenledger db upgrade``

Each error's ``str()`` is one line meant for people; the CLI prints it as is and
maps the class to an exit code, never a traceback.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "CorruptEvent",
    "IntegrityViolation",
    "InvalidGrant",
    "LedgerError",
    "NotFound",
    "PermissionDenied",
    "PositionNotReached",
    "SchemaOutOfDate",
    "StorageError",
    "ValidationError",
    "WrongExpectedVersion",
]


class LedgerError(Exception):
    """Base class of every error the ledger raises on purpose."""


class ValidationError(LedgerError):
    """The input does not follow a documented rule."""


class NotFound(LedgerError):
    """The named thing does not exist in the ledger."""


class PermissionDenied(LedgerError):
    """The acting principal lacks the permission the operation needs."""


class InvalidGrant(PermissionDenied):
    """A login code, refresh token or external ID token was refused (OAuth 2.0's
    ``invalid_grant``): expired, forged, spent, or not one this ledger accepts."""


class Conflict(LedgerError):
    """The operation contradicts the ledger's current state."""


class WrongExpectedVersion(Conflict):
    """Optimistic concurrency check failed: the stream is not at the expected version."""

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, not the expected {expected}"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class PositionNotReached(Conflict):
    """An answer was asked to reflect a log position beyond the log's head."""

    def __init__(self, wanted: int, head: int) -> None:
        super().__init__(f"log position {wanted} is not reached yet: the log's head is at {head}")
        self.wanted = wanted
        self.head = head


class IntegrityViolation(LedgerError):
    """The stored log does not match what was written."""


class CorruptEvent(IntegrityViolation):
    """A stored event's payload cannot be decoded."""

    def __init__(self, position: int, detail: str) -> None:
        super().__init__(f"event at position {position} has a corrupt payload: {detail}")
        self.position = position


class StorageError(LedgerError):
    """The database is unreachable or not usable as a ledger."""


class SchemaOutOfDate(StorageError):
    """The database schema is missing or older than this version of the code."""
