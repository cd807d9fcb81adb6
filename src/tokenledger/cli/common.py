"""Option parsing shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tokenledger.clock import checked_utc
from tokenledger.domain.names import shown
from tokenledger.errors import ValidationError

__all__ = ["checked", "parse_timestamp"]


def checked(check: Callable[[str], str], value: str) -> str:
    """An argument checked by the rule its command field uses (``domain.names``), so that the
    command line refuses it in the same words without building the command."""
    try:
        return check(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def parse_timestamp(text: str, option: str) -> datetime:
    """An ISO 8601 timestamp (a value without a zone is UTC), as an aware UTC datetime.

    Every time option goes through here, so a time the ledger cannot hold (one whose UTC
    equivalent falls outside the ledger's span) is refused in one line like a malformed one.
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(
            f"invalid {option} {shown(text)}: expected an ISO 8601 timestamp such as "
            "2030-01-31T12:00:00Z (without a zone: UTC)"
        ) from None
    return checked_utc(moment, option)
