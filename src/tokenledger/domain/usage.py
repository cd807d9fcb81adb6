"""Last use: the rules on recording a credential's uses and on when a token was last active
(which ``domain.token_filter``'s ``unused_for`` reads).

A successful verification, introspection or authentication of a credential is a use of
it; a use of an access token is a use of what obtained it (its session or client
credential). Uses are counted per interval bucket (``bucket_of``: buckets aligned to
multiples of the interval since the epoch) and recorded as ``TokenUsed`` at most once per
credential and bucket (``domain.decide_usage``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from tokenledger.domain.model import TokenView
from tokenledger.errors import ValidationError

__all__ = [
    "DEFAULT_USAGE_INTERVAL",
    "MAX_USAGE_INTERVAL",
    "MIN_USAGE_INTERVAL",
    "CredentialKind",
    "bucket_of",
    "check_usage_interval",
    "credential_kind",
    "last_active",
]

#: How often at most a credential's use is recorded, unless a ledger is told otherwise.
DEFAULT_USAGE_INTERVAL = timedelta(hours=1)
#: The shortest and longest intervals a ledger accepts: a shorter one grows the log for
#: little, and a longer one loses more uses to a crash (one open interval's).
MIN_USAGE_INTERVAL = timedelta(minutes=1)
MAX_USAGE_INTERVAL = timedelta(days=1)


class CredentialKind(StrEnum):
    """What a recorded use names: the field of ``TokenUsed`` that holds its id."""

    TOKEN = "token_id"
    CLIENT = "client_id"
    SESSION = "session_id"


_PREFIXES = {"tok_": CredentialKind.TOKEN, "cid_": CredentialKind.CLIENT}


def credential_kind(credential_id: str) -> CredentialKind | None:
    """A ledger token's (or role key's) ``tok_`` id, a client credential's ``cid_`` id or a
    session's ``ses_`` id; None for anything else (an issuer trust's use is not recorded)."""
    kind = _PREFIXES.get(credential_id[:4])
    if kind is None and credential_id.startswith("ses_"):
        return CredentialKind.SESSION
    return kind


def check_usage_interval(interval: timedelta) -> int:
    """The interval in whole seconds; a one-line ``ValidationError`` outside 1 minute to 1
    day (or not whole seconds)."""
    seconds = interval.total_seconds()
    if not MIN_USAGE_INTERVAL <= interval <= MAX_USAGE_INTERVAL or seconds != int(seconds):
        raise ValidationError("the usage interval must lie between 1 minute and 1 day (e.g. 1h)")
    return int(seconds)


def bucket_of(timestamp: float, seconds: int) -> int:
    """The bucket a moment (seconds since the epoch) falls in: its start is
    ``bucket * seconds`` since the epoch."""
    return int(timestamp // seconds)


def last_active(token: TokenView) -> datetime:
    """When a token was last used, or issued if it never was."""
    return token.last_used_at if token.last_used_at is not None else token.issued_at
