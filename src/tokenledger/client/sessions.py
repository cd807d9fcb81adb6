"""A login session kept in the credentials file: saved after a login, refreshed when its access
token is about to expire, ended by a logout.

A refresh token is used once: the server answers a new one, and a spent one presented again
ends the whole session (reuse detection). Two processes refreshing at the same moment would
trip that, so a refresh holds an exclusive lock on a file beside the credentials file, reads
the file again under it, and refreshes only if no other process just did.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from tokenledger.client.credentials import (
    FILE_VERSION,
    AccessToken,
    Credentials,
    Session,
    load_credentials,
    remove_session,
    save_credentials,
)
from tokenledger.client.http import Http
from tokenledger.client.oauth import TokenAnswer, refresh_grant, revoke_refresh_token
from tokenledger.errors import LedgerError, PermissionDenied, StorageError

__all__ = ["credentials_from", "end_session", "fresh_session", "logged_in", "login_hint"]


def login_hint(server: str | None) -> str:
    where = f" --server {server}" if server else ""
    return f"run 'tokenledger auth login{where}' (or set TOKENLEDGER_TOKEN)"


def credentials_from(
    answer: TokenAnswer, server: str, now: datetime, previous: Credentials | None = None
) -> Credentials:
    """The credentials file after a login or a refresh answered ``answer``."""
    kept = previous if previous is not None and previous.server == server else None
    session = kept.session if kept is not None else None
    if answer.refresh_token is not None and answer.session_id is not None:
        expires_at = answer.session_expires_at
        if expires_at is None:
            if session is None:
                raise LedgerError("the server's token answer names no session expiry")
            expires_at = session.expires_at
        session = Session(
            session_id=answer.session_id,
            refresh_token=answer.refresh_token,
            expires_at=expires_at,
        )
    if session is None:
        raise LedgerError("the server's token answer holds no refresh token or session id")
    return Credentials(
        version=FILE_VERSION,
        server=server,
        org=answer.org or (kept.org if kept is not None else None),
        principal=answer.sub or (kept.principal if kept is not None else None),
        session=session,
        access_token=AccessToken(
            token=answer.access_token, expires_at=now + timedelta(seconds=answer.expires_in)
        ),
    )


def logged_in(path: Path, server: str | None) -> Credentials:
    """The file's session for ``server`` (any server when None); ``PermissionDenied`` saying
    how to log in when there is none."""
    credentials = load_credentials(path)
    if credentials is None or credentials.session is None:
        raise PermissionDenied(f"not logged in: {login_hint(server)}")
    if server is not None and credentials.server != server:
        raise PermissionDenied(
            f"logged in to {credentials.server}, not {server}: {login_hint(server)}"
        )
    return credentials


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``<path>.lock`` (released when its holder dies, too)."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot lock {lock_path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def fresh_session(
    path: Path,
    http: Http,
    *,
    now: datetime,
    leeway: float,
    force: bool = False,
) -> Credentials:
    """The file's credentials with an access token valid for more than ``leeway`` seconds,
    refreshing (and saving the rotated refresh token) when needed or when ``force``."""
    current = logged_in(path, http.server)
    access = current.access_token
    if not force and access is not None and access.fresh(now, leeway):
        return current
    with _locked(path):
        again = logged_in(path, http.server)
        fresh = again.access_token is not None and again.access_token.fresh(now, leeway)
        if again != current and fresh:
            return again  # another process refreshed meanwhile: its token is as good
        session = again.session
        assert session is not None  # logged_in checks it
        if session.expires_at <= now:
            raise PermissionDenied(
                f"the session {session.session_id} expired at "
                f"{session.expires_at.isoformat()}: {login_hint(http.server)}"
            )
        answer = refresh_grant(http, session.refresh_token)
        refreshed = credentials_from(answer, http.server, now, again)
        save_credentials(refreshed, path)
    return refreshed


def end_session(path: Path, http: Http | None) -> tuple[Credentials | None, LedgerError | None]:
    """Revoke the file's session at its server (when ``http`` is given) and forget it here
    whatever the server said. Returns what the file held and the server's refusal, if any."""
    credentials = load_credentials(path)
    if credentials is None or credentials.session is None:
        remove_session(path)
        return credentials, None
    refused: LedgerError | None = None
    if http is not None:
        try:
            revoke_refresh_token(http, credentials.session.refresh_token)
        except LedgerError as exc:
            refused = exc
    with _locked(path):
        remove_session(path)
    return credentials, refused
