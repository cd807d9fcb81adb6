"""PKCE, Proof Key for Code Exchange (RFC 7636), with the ``S256`` method only.

Whoever starts an authorization code login keeps a random *code verifier* to itself and
sends only its hash, the *code challenge*, with the authorization request; the code is
then worth something only together with the verifier. A code that leaks on its way back
(a browser history, a log, another app registered for the same redirect) cannot be
exchanged by whoever found it.

``plain`` (the verifier sent as its own challenge) protects nothing once the
authorization request itself is seen, so it is not offered.

Everything in this module is pure: no I/O, no clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from tokenledger.errors import ValidationError

__all__ = [
    "CODE_CHALLENGE_METHOD",
    "VERIFIER_RULE",
    "code_challenge",
    "new_code_verifier",
    "verify_code_challenge",
]

CODE_CHALLENGE_METHOD = "S256"
VERIFIER_RULE = "43 to 128 characters of A-Z, a-z, 0-9, '-', '.', '_' and '~'"

#: RFC 7636 section 4.1: ``code-verifier = 43*128unreserved``.
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
#: 48 random bytes are 64 characters of base64url: 384 bits, past the RFC's 256.
_VERIFIER_BYTES = 48


def new_code_verifier() -> str:
    """A fresh verifier from :mod:`secrets` (64 characters of the unreserved set)."""
    return secrets.token_urlsafe(_VERIFIER_BYTES)


def code_challenge(verifier: str) -> str:
    """The ``S256`` challenge of ``verifier``: base64url of its SHA-256, without padding.

    A verifier outside the RFC's character set or length is refused (without repeating
    it: it is a secret) rather than hashed, since a conforming server would refuse it at
    the token endpoint, long after the login has started.
    """
    if not _VERIFIER.fullmatch(verifier):
        raise ValidationError(f"a PKCE code verifier is {VERIFIER_RULE}")
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify_code_challenge(verifier: str, challenge: str) -> bool:
    """Whether ``verifier`` is the one ``challenge`` was made from.

    A verifier of the wrong shape is simply not a match. The comparison takes the same
    time wherever the two differ.
    """
    if not _VERIFIER.fullmatch(verifier):
        return False
    return hmac.compare_digest(code_challenge(verifier).encode(), challenge.encode())
