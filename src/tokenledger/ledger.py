"""The application service (moved to ``tokenledger.service``)."""

from tokenledger.service import (
    DEFAULT_ACCESS_TOKEN_LIFETIME,
    DEFAULT_VERIFY_STALENESS,
    CommandResult,
    GrantSource,
    Ledger,
    Verification,
)
from tokenledger.service.answers import CACHED_INACTIVE

__all__ = [
    "CACHED_INACTIVE",
    "DEFAULT_ACCESS_TOKEN_LIFETIME",
    "DEFAULT_VERIFY_STALENESS",
    "CommandResult",
    "GrantSource",
    "Ledger",
    "Verification",
]
