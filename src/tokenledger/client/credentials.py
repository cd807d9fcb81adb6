"""The credentials file: where ``tokenledger auth login`` keeps a session for later commands.

``~/.tokenledger/credentials.json`` (or ``$TOKENLEDGER_CREDENTIALS_PATH``), JSON, mode 0600::

    {"version": 1, "server": "https://ledger.example", "org": "acme",
     "principal": "alice@acme.example",
     "session": {"session_id": "ses_...", "refresh_token": "tlr_...",
                 "expires_at": "2027-01-05T12:00:00+00:00"},
     "access_token": {"token": "<JWT>", "expires_at": "2026-12-06T13:00:00+00:00"}}

``session`` and ``access_token`` may be absent (after ``auth logout`` the file still names the
server). It never holds a client secret nor an identity provider's secret: those are given
each time (parameters or environment), never remembered.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from tokenledger.client.files import read_private, write_private
from tokenledger.errors import StorageError

__all__ = [
    "CREDENTIALS_PATH_ENV",
    "FILE_VERSION",
    "AccessToken",
    "Credentials",
    "Session",
    "credentials_path",
    "decode_access_token",
    "encode",
    "load_credentials",
    "remove_session",
    "save_credentials",
]

#: Where the credentials file is, when not ``~/.tokenledger/credentials.json``.
CREDENTIALS_PATH_ENV = "TOKENLEDGER_CREDENTIALS_PATH"

#: The file's format; another one is refused, not guessed at.
FILE_VERSION = 1


class Session(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A login session: its refresh token (``tlr_...``) obtains access tokens until
    ``expires_at``; each use replaces it with a new one."""

    session_id: str
    refresh_token: str
    expires_at: datetime


class AccessToken(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A signed access token (JWT) and when it stops being accepted."""

    token: str
    expires_at: datetime

    def fresh(self, now: datetime, leeway: float) -> bool:
        """Usable for at least ``leeway`` more seconds."""
        return (self.expires_at - now).total_seconds() > leeway


class Credentials(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    version: int
    server: str
    org: str | None = None
    principal: str | None = None
    session: Session | None = None
    access_token: AccessToken | None = None

    def __repr__(self) -> str:
        # The refresh token and the access token are credentials: never shown.
        session = self.session.session_id if self.session is not None else None
        return (
            f"Credentials(server={self.server!r}, org={self.org!r}, "
            f"principal={self.principal!r}, session={session!r})"
        )


# Built now, at import: msgspec reads a struct's annotations the first time it meets the
# type, and a test clock (freezegun) that is running then would stand in for ``datetime``.
_credentials_decoder = msgspec.json.Decoder(Credentials)
_token_decoder = msgspec.json.Decoder(AccessToken)


def decode_access_token(data: bytes) -> AccessToken:
    return _token_decoder.decode(data)


def credentials_path() -> Path:
    configured = os.environ.get(CREDENTIALS_PATH_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".tokenledger" / "credentials.json"


_WHAT = "the credentials file"


def load_credentials(path: Path | None = None) -> Credentials | None:
    """The file's content, or None when there is none. A file others may read, a corrupt
    file and one of another version are refused in one line saying how to fix it."""
    path = path or credentials_path()
    data = read_private(path, _WHAT)
    if data is None:
        return None
    fix = "delete it and log in again ('tokenledger auth login')"
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise StorageError(f"{_WHAT} {path} cannot be read: {exc}; {fix}") from None
    if not isinstance(raw, dict):
        raise StorageError(f"{_WHAT} {path} cannot be read: not a JSON object; {fix}")
    version = raw.get("version")
    if version != FILE_VERSION:
        raise StorageError(
            f"{_WHAT} {path} has version {str(version)[:20]}, not {FILE_VERSION} "
            f"(another version of TokenLedger wrote it): {fix}"
        )
    try:
        credentials = msgspec.convert(raw, Credentials)
    except msgspec.ValidationError as exc:
        raise StorageError(f"{_WHAT} {path} cannot be read: {exc}; {fix}") from None
    return _in_utc(credentials)


def save_credentials(credentials: Credentials, path: Path | None = None) -> None:
    """Write ``credentials`` (atomically, mode 0600)."""
    write_private(path or credentials_path(), encode(credentials))


def encode(value: msgspec.Struct) -> bytes:
    """``value`` as indented JSON, its times as ``isoformat`` writes them
    ("2027-01-05T12:00:00+00:00") and its absent fields left out."""
    document = _with_iso_times(
        msgspec.to_builtins(value, builtin_types=(datetime,), enc_hook=_as_is)
    )
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"


def _as_is(value: Any) -> Any:
    # A datetime subclass (a test clock's) is kept for _with_iso_times to write.
    if isinstance(value, datetime):
        return value
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


def remove_session(path: Path | None = None) -> Credentials | None:
    """Forget the session and the access token, keeping the server, org and principal (so
    the next login knows where to go). Returns what was there before."""
    path = path or credentials_path()
    before = load_credentials(path)
    if before is not None and (before.session is not None or before.access_token is not None):
        save_credentials(msgspec.structs.replace(before, session=None, access_token=None), path)
    return before


def _with_iso_times(value: Any) -> Any:
    # The file's times read "2027-01-05T12:00:00+00:00", as Python's isoformat writes them.
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, dict):
        return {k: _with_iso_times(v) for k, v in value.items() if v is not None}
    return value


def _in_utc(credentials: Credentials) -> Credentials:
    """Times without a zone (written by hand) are taken as UTC, as everywhere in the ledger."""
    session, access = credentials.session, credentials.access_token
    if session is not None:
        session = msgspec.structs.replace(session, expires_at=_utc(session.expires_at))
    if access is not None:
        access = msgspec.structs.replace(access, expires_at=_utc(access.expires_at))
    return msgspec.structs.replace(credentials, session=session, access_token=access)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
