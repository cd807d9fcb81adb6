"""The application service by capability; ``Ledger`` is the facade over it."""

from __future__ import annotations

from tokenledger.domain.authority import Verification
from tokenledger.service.answers import DEFAULT_VERIFY_STALENESS
from tokenledger.service.commands import CommandPreview, CommandResult
from tokenledger.service.ledger import Ledger
from tokenledger.service.oauth import DEFAULT_ACCESS_TOKEN_LIFETIME
from tokenledger.service.queries import GrantSource

__all__ = [
    "DEFAULT_ACCESS_TOKEN_LIFETIME",
    "DEFAULT_VERIFY_STALENESS",
    "CommandPreview",
    "CommandResult",
    "GrantSource",
    "Ledger",
    "Verification",
]
