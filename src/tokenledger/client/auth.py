"""``Auth``: a valid access token for a TokenLedger server, whichever way the caller holds one.

Where the credentials come from, first found first (as Descartes Labs' client does):

1. the parameters: ``token=``, or ``client_id=`` and ``client_secret=``;
2. the environment: ``TOKENLEDGER_TOKEN``, or ``TOKENLEDGER_CLIENT_ID`` and
   ``TOKENLEDGER_CLIENT_SECRET``;
3. the credentials file written by ``tokenledger auth login`` (its session).

The server is ``server=``, else ``TOKENLEDGER_SERVER``, else the credentials file's.

Three ways to hold a token:

* a fixed token (a ledger token's secret ``tl?_...``, or a JWT): used as it is;
* client credentials: an access token from ``POST /oauth2/token`` (client credentials grant),
  kept in memory and in a 0600 file per client (``token_cache``) and asked for again when its
  expiry falls within ``leeway`` seconds;
* a login session: its access token, refreshed through the refresh token under the same rule
  (``sessions``).

``repr(auth)`` and every error leave secrets out.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from tokenledger.client.claims import expiry_of, is_jwt, unverified_claims
from tokenledger.client.credentials import AccessToken, load_credentials
from tokenledger.client.credentials import credentials_path as default_credentials_path
from tokenledger.client.http import DEFAULT_TIMEOUT, Http
from tokenledger.client.oauth import client_credentials_grant
from tokenledger.client.sessions import fresh_session, login_hint
from tokenledger.client.token_cache import AccessTokenCache
from tokenledger.client.urls import SERVER_ENV, server_url
from tokenledger.domain.identity import acl_subjects, namespace_of
from tokenledger.domain.secrets import parse_secret
from tokenledger.errors import PermissionDenied, ValidationError

__all__ = [
    "CLIENT_ID_ENV",
    "CLIENT_SECRET_ENV",
    "DEFAULT_LEEWAY",
    "TOKEN_ENV",
    "Auth",
]

TOKEN_ENV = "TOKENLEDGER_TOKEN"
CLIENT_ID_ENV = "TOKENLEDGER_CLIENT_ID"
CLIENT_SECRET_ENV = "TOKENLEDGER_CLIENT_SECRET"

#: Seconds before its expiry that an access token is renewed (Descartes Labs' default).
DEFAULT_LEEWAY = 500

#: The modes, as ``Auth.mode`` names them.
FIXED, CLIENT_CREDENTIALS, SESSION = "token", "client_credentials", "session"


#: What an ``Authorization`` header can carry: visible ASCII, no space.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")


def _presentable(token: str) -> str:
    """A fixed token that can travel in a header; one that cannot is refused in the words the
    ledger uses for a malformed token (the server judges every other one)."""
    if _HEADER_SAFE.fullmatch(token):
        return token
    try:
        parse_secret(token)
    except ValidationError as exc:
        raise PermissionDenied(f"the presented token is not valid ({exc})") from None
    raise PermissionDenied("the presented token is not valid (malformed)")


def _env(name: str) -> str | None:
    return os.environ.get(name, "").strip() or None


class Auth:
    """A valid access token on demand (``.token``) and what it says about its holder."""

    def __init__(
        self,
        server: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        token: str | None = None,
        credentials_path: str | os.PathLike[str] | None = None,
        leeway: float = DEFAULT_LEEWAY,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if token is not None and (client_id is not None or client_secret is not None):
            raise ValidationError("give a token or client credentials, not both")
        if leeway < 0:
            raise ValidationError("the leeway is a number of seconds, at least 0")
        self.leeway = leeway
        self.timeout = timeout
        self.credentials_path = (
            Path(credentials_path).expanduser()
            if credentials_path is not None
            else default_credentials_path()
        )
        self._fixed: str | None = None
        self.client_id: str | None = None
        self._client_secret: str | None = None
        if token is not None:
            self._fixed = token.strip()
        elif client_id is not None or client_secret is not None:
            self.client_id = client_id or _env(CLIENT_ID_ENV)
            self._client_secret = client_secret or _env(CLIENT_SECRET_ENV)
        elif _env(TOKEN_ENV) is not None:
            self._fixed = _env(TOKEN_ENV)
        elif _env(CLIENT_ID_ENV) is not None or _env(CLIENT_SECRET_ENV) is not None:
            self.client_id, self._client_secret = _env(CLIENT_ID_ENV), _env(CLIENT_SECRET_ENV)
        if self._fixed is not None:
            self.mode = FIXED
        elif self.client_id is not None or self._client_secret is not None:
            if not self.client_id or not self._client_secret:
                raise ValidationError(
                    "client credentials need both a client id and a client secret "
                    f"(client_id=, client_secret= or {CLIENT_ID_ENV}, {CLIENT_SECRET_ENV})"
                )
            self.mode = CLIENT_CREDENTIALS
        else:
            self.mode = SESSION
        given = server or _env(SERVER_ENV)
        self._server: str | None = server_url(given) if given is not None else None
        self._server_read = given is not None
        self._lock = threading.RLock()
        self._http: Http | None = None
        self._whoami: tuple[str, dict[str, Any]] | None = None

    def __repr__(self) -> str:
        client = f", client_id={self.client_id!r}" if self.client_id else ""
        server = self._server if self._server_read else "(from the credentials file)"
        return f"Auth(server={server!r}, mode={self.mode!r}{client})"

    # -- the server ----------------------------------------------------------------------

    @property
    def server(self) -> str | None:
        """The server's base URL: the parameter's, the environment's, else the credentials
        file's (None when none of them names one)."""
        if not self._server_read:
            saved = load_credentials(self.credentials_path)
            self._server = saved.server if saved is not None else None
            self._server_read = True
        return self._server

    def _server_or_fail(self) -> str:
        server = self.server
        if server is None:
            raise ValidationError(
                f"no server: give server=, set {SERVER_ENV}, or log in with "
                "'tokenledger auth login --server URL'"
            )
        return server

    def http(self) -> Http:
        """The connection to the server (made once)."""
        with self._lock:
            if self._http is None:
                self._http = Http(self._server_or_fail(), timeout=self.timeout)
            return self._http

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def __enter__(self) -> Auth:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- the token -----------------------------------------------------------------------

    @property
    def token(self) -> str:
        """An access token valid for more than ``leeway`` seconds (a fixed token as it is)."""
        now = datetime.now(UTC)
        with self._lock:
            if self._fixed is not None:
                return _presentable(self._fixed)
            if self.mode == CLIENT_CREDENTIALS:
                return self._client_token(now)
            return self._session_token(now, force=False)

    def refresh(self) -> str:
        """Renew the access token now, whatever its expiry (a fixed token cannot be)."""
        now = datetime.now(UTC)
        with self._lock:
            if self._fixed is not None:
                raise ValidationError("a fixed token (TOKENLEDGER_TOKEN, token=) is not renewed")
            if self.mode == CLIENT_CREDENTIALS:
                return self._client_token(now, force=True)
            return self._session_token(now, force=True)

    def _client_token(self, now: datetime, *, force: bool = False) -> str:
        assert self.client_id is not None
        assert self._client_secret is not None
        server = self._server_or_fail()
        cache = AccessTokenCache(self.credentials_path.parent)
        key = cache.key(server, self.client_id, self._client_secret)
        cached = None if force else cache.get(key, now, self.leeway)
        if cached is not None:
            return cached.token
        answer = client_credentials_grant(self.http(), self.client_id, self._client_secret)
        expires_at = now + timedelta(seconds=answer.expires_in)
        token = AccessToken(token=answer.access_token, expires_at=expires_at)
        cache.put(key, token)
        return answer.access_token

    def _session_token(self, now: datetime, *, force: bool) -> str:
        if self.server is None:
            raise PermissionDenied(f"not logged in: {login_hint(None)}")
        credentials = fresh_session(
            self.credentials_path, self.http(), now=now, leeway=self.leeway, force=force
        )
        assert credentials.access_token is not None  # a fresh session holds one
        return credentials.access_token.token

    # -- what the token says ---------------------------------------------------------------

    @property
    def payload(self) -> dict[str, Any]:
        """The access token's claims, read without checking its signature (``sub``, ``org``,
        ``groups``, ``email``, ``exp``, ...); for an opaque ledger token, what the server's
        ``GET /v2/whoami`` answers about it."""
        token = self.token
        if is_jwt(token):
            return unverified_claims(token)
        return self.whoami()

    def whoami(self) -> dict[str, Any]:
        """``GET /v2/whoami``: the server's account of the presented token (asked once per
        token)."""
        token = self.token
        with self._lock:
            if self._whoami is not None and self._whoami[0] == _digest(token):
                return dict(self._whoami[1])
        answer = self.http().call("GET", "/v2/whoami", bearer=token)
        if not isinstance(answer, dict):
            raise ValidationError("the server's /v2/whoami answer is not a JSON object")
        with self._lock:
            self._whoami = (_digest(token), answer)
        return dict(answer)

    @property
    def expires_at(self) -> datetime | None:
        """When the current access token expires (None for an opaque token)."""
        token = self.token
        return expiry_of(unverified_claims(token)) if is_jwt(token) else None

    @property
    def namespace(self) -> str:
        """A stable id of the principal: the SHA-1 hex digest of ``sub``."""
        return namespace_of(self._subject())

    @property
    def all_acl_subjects(self) -> list[str]:
        """``user:<sub>``, ``org:<org>`` and ``group:<g>`` for each of its groups."""
        claims = self.payload
        org = claims.get("org")
        groups = claims.get("groups")
        return acl_subjects(
            self._subject(claims),
            org if isinstance(org, str) else None,
            [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else [],
        )

    def _subject(self, claims: dict[str, Any] | None = None) -> str:
        sub = (claims if claims is not None else self.payload).get("sub")
        if not isinstance(sub, str) or not sub:
            raise ValidationError("the token names no subject (sub)")
        return sub


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
