"""What an access token says about itself: a JWT's claims, read without checking its signature.

The client reads its own access token to know when it expires and whom it names; it is not
what decides anything (the server checks every token it is given), so nothing here verifies
a signature. A resource server that must trust a token verifies it with the published keys
(``/.well-known/jwks.json``) or by introspection.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import msgspec

from tokenledger.errors import ValidationError

__all__ = ["expiry_of", "is_jwt", "unverified_claims"]


def is_jwt(token: str) -> bool:
    """Three dot-separated base64url parts (a ledger secret, ``tl?_...``, has no dot)."""
    return token.count(".") == 2 and not token.startswith("tl")


def unverified_claims(token: str) -> dict[str, Any]:
    """The JWT's payload; a ``ValidationError`` (never repeating the token) when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValidationError("not a JWT: expected three dot-separated parts")
    payload = parts[1]
    try:
        decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = msgspec.json.decode(decoded)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ValidationError("not a JWT: its payload is not base64url-encoded JSON") from None
    if not isinstance(claims, dict):
        raise ValidationError("not a JWT: its payload is not a JSON object")
    return claims


def expiry_of(claims: dict[str, Any]) -> datetime | None:
    """The ``exp`` claim as a time (None without one)."""
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        try:
            return datetime.fromtimestamp(exp, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return None
