"""The console's cookies: who is logged in, a login under way, and the CSRF tokens of forms.

What the session cookie holds, and why
--------------------------------------
The server keeps nothing per browser: the cookie itself is the console session. It holds
the credential the browser logged in with -- the ledger token's secret, or, after a login
through the org's identity provider, the session's access token and refresh token -- sealed
with AES-256-GCM under a key derived from the server's signing key
(``KeyRing.derive_secret``). So:

* no secret is stored on the server, in clear or otherwise, and none reaches the log: each
  page authenticates the credential exactly as the API authenticates a bearer token, which
  reads the ledger and writes nothing (a credential's use is recorded at most once per
  usage interval, as for the API; a login session's refresh, once an access token has
  expired, is the session's own ``SessionRefreshed``);
* a revoked token or an ended session stops the console at its next page, since every page
  asks the ledger again;
* the cookie is useless outside this server and unreadable by the browser's scripts
  (``HttpOnly``), sent to the console's pages only (``Path=/console``), never from another
  site (``SameSite=Strict``) and only over TLS when the server is reached over https
  (``Secure``);
* any number of API processes serve the console, whichever a request reaches, since they
  share the signing key; rotating that key logs every console user out.

The sealed text carries its own end (``exp``): a console login lasts at most
``CONSOLE_LIFETIME``, whatever the browser does with the cookie.

CSRF
----
Every form carries a token that is the HMAC-SHA256, under another derived key, of a random
value sealed in the session cookie at login (on the login page, of the one sealed in the
login cookie): an attacker's page can make a browser post a form but can neither read nor
open either cookie, so it cannot make the token. The value outlives the cookie's renewals,
so a form left open in another tab stays good while the login lasts. It is compared in
constant time before the form is looked at.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tokenledger.service.keys import KeyRing

__all__ = [
    "CONSOLE_LIFETIME",
    "LOGIN_COOKIE",
    "LOGIN_LIFETIME",
    "SESSION_COOKIE",
    "ConsoleLogin",
    "Sealer",
    "SignedIn",
]

#: The cookie naming who is logged in.
SESSION_COOKIE = "tokenledger_console"
#: The cookie of a login under way: the PKCE verifier and state of an identity provider's
#: login, and the value the login form's CSRF token is made from.
LOGIN_COOKIE = "tokenledger_console_login"
#: How long a console login lasts at most.
CONSOLE_LIFETIME = timedelta(hours=12)
#: How long a login may take (the server's own login state lasts ten minutes).
LOGIN_LIFETIME = timedelta(minutes=10)

_NONCE_BYTES = 12


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who is logged in: a ledger token (``secret``) or a login session (``access_token``,
    ``refresh_token``, ``access_expires``); ``expires``: the console login's end."""

    expires: datetime
    #: Random, made at login and kept across renewals: what the session's CSRF tokens bind.
    nonce: str
    secret: str | None = None
    access_token: str | None = None
    refresh_token: str | None = None
    access_expires: datetime | None = None

    @property
    def bearer(self) -> str:
        """What the API would take as ``Authorization: Bearer``."""
        credential = self.secret or self.access_token
        assert credential is not None  # one of the two is always there
        return credential

    def to_dict(self) -> dict[str, Any]:
        return {
            "exp": self.expires.timestamp(),
            "nonce": self.nonce,
            "secret": self.secret,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "access_exp": self.access_expires.timestamp() if self.access_expires else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], tz: Any) -> SignedIn:
        access_exp = data.get("access_exp")
        return cls(
            expires=datetime.fromtimestamp(float(data["exp"]), tz),
            nonce=str(data["nonce"]),
            secret=data.get("secret"),
            access_token=data.get("access_token"),
            refresh_token=data.get("refresh_token"),
            access_expires=(
                datetime.fromtimestamp(float(access_exp), tz) if access_exp is not None else None
            ),
        )


@dataclass(frozen=True, slots=True)
class ConsoleLogin:
    """A login under way: ``nonce`` binds the login form's CSRF token; ``verifier``,
    ``state`` and ``org`` are those of a login through the identity provider once begun."""

    nonce: str
    expires: datetime
    verifier: str | None = None
    state: str | None = None

    @classmethod
    def new(cls, now: datetime) -> ConsoleLogin:
        return cls(nonce=secrets.token_urlsafe(24), expires=now + LOGIN_LIFETIME)

    def to_dict(self) -> dict[str, Any]:
        return {
            "nonce": self.nonce,
            "exp": self.expires.timestamp(),
            "verifier": self.verifier,
            "state": self.state,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], tz: Any) -> ConsoleLogin:
        return cls(
            nonce=str(data["nonce"]),
            expires=datetime.fromtimestamp(float(data["exp"]), tz),
            verifier=data.get("verifier"),
            state=data.get("state"),
        )


class Sealer:
    """Seals and opens the console's cookies and makes their forms' CSRF tokens, with keys
    derived from the server's signing key."""

    def __init__(self, keys: KeyRing) -> None:
        self._cipher = AESGCM(_derived(keys, "console cookie"))
        self._csrf_key = _derived(keys, "console csrf")

    def seal(self, purpose: str, data: dict[str, Any]) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._cipher.encrypt(nonce, json.dumps(data).encode(), purpose.encode())
        return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, purpose: str, value: str | None) -> dict[str, Any] | None:
        """What ``seal`` sealed for ``purpose``; None for anything else (another purpose,
        another server's key, a rotated key, a change of one bit)."""
        if not value or len(value) > 8000:
            return None
        try:
            raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            plain = self._cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], purpose.encode())
            data = json.loads(plain)
        except (ValueError, InvalidTag):
            return None
        return data if isinstance(data, dict) else None

    def csrf_token(self, binding: str) -> str:
        """The CSRF token of the forms of whoever holds the cookie value ``binding``."""
        digest = hmac.new(self._csrf_key, binding.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def csrf_valid(self, binding: str | None, token: str | None) -> bool:
        if not binding or not token:
            return False
        # Bytes: compare_digest refuses a str holding anything but ASCII.
        return hmac.compare_digest(self.csrf_token(binding).encode(), token.encode())


def _derived(keys: KeyRing, purpose: str) -> bytes:
    return hashlib.sha256(keys.derive_secret(purpose).encode()).digest()
