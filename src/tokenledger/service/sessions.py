"""Sessions: starting one for a user whom their org's provider vouched for, refreshing it
(the refresh token rotates on each use), ending it, and the access tokens it obtains.

A session's access token is a JWT like a client credential's (``service.oauth``), signed
with the user's grants inside the session's org, and usable while the session lives
(``domain.authority.access_token_view``). Starting, refreshing and ending are events;
signing an access token changes no state and appends none.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import msgspec

from tokenledger.domain.authority import groups_of, session_grants
from tokenledger.domain.events import SessionEnded
from tokenledger.domain.model import Actor, ActorKind, SessionView
from tokenledger.domain.secrets import (
    TokenKind,
    generate_secret,
    hash_secret,
    is_refresh_token,
)
from tokenledger.errors import Conflict, InvalidGrant, NotFound
from tokenledger.service.commands import CommandResult
from tokenledger.service.oauth import sign_access_token
from tokenledger.service.reading import Reader

if TYPE_CHECKING:
    from collections.abc import Callable

    from tokenledger.service.keys import KeyRing

__all__ = [
    "LOGIN_CLIENT_ID",
    "SESSION_ACCESS_TOKEN_LIFETIME",
    "SessionTokens",
    "end_session_by_refresh_token",
    "refresh_session",
    "start_session",
]

#: The OAuth 2.0 client id of the command line (a public client: it keeps no secret).
LOGIN_CLIENT_ID = "tokenledger-cli"
#: How long a session's access token lives (never past the session's end).
SESSION_ACCESS_TOKEN_LIFETIME = timedelta(hours=1)

logger = logging.getLogger("tokenledger")


class SessionTokens(msgspec.Struct, frozen=True, kw_only=True):
    """What a login or a refresh hands the user: a short-lived access token and the
    session's next refresh token (both shown once, stored nowhere on the server)."""

    access_token: str
    token_type: str = "Bearer"
    expires_in: int
    expires_at: datetime
    refresh_token: str
    scope: str
    session_id: str
    session_expires_at: datetime
    org: str
    sub: str


def _login_actor(email: str) -> Actor:
    """The user the provider vouched for, or whose refresh token was presented."""
    return Actor(kind=ActorKind.USER, principal=email)


def start_session(
    reader: Reader,
    execute: Callable[..., CommandResult],
    keys: KeyRing,
    *,
    issuer: str,
    session_id: str,
    org: str,
    email: str,
    provider_issuer: str,
    provider_subject: str,
) -> SessionTokens:
    """Record ``SessionStarted`` for ``email`` (refused unless the ledger lets them log in
    to ``org`` through ``provider_issuer``) and hand out its first tokens."""
    from tokenledger.domain import commands as c  # pydantic loads with the first command

    refresh_token = generate_secret(TokenKind.REFRESH)
    command = c.build(
        c.StartSession,
        session_id=session_id,
        org=org,
        email=email,
        issuer=provider_issuer,
        subject=provider_subject,
        refresh_hash=hash_secret(refresh_token),
    )
    try:
        execute(command, _login_actor(email))
    except Conflict as exc:  # the one-time login code came back
        raise InvalidGrant(str(exc)) from None
    return _tokens(reader, keys, issuer, session_id, refresh_token)


def refresh_session(
    reader: Reader,
    execute: Callable[..., CommandResult],
    keys: KeyRing,
    *,
    issuer: str,
    refresh_token: str,
) -> SessionTokens:
    """Spend ``refresh_token`` for a new one and a new access token. A spent one presented
    again ends the session (recorded) and is refused, like an unknown or ended one."""
    from tokenledger.domain import commands as c

    session = _session_of(reader, refresh_token)
    new_token = generate_secret(TokenKind.REFRESH)
    command = c.build(
        c.RefreshSession,
        presented_hash=hash_secret(refresh_token),
        refresh_hash=hash_secret(new_token),
    )
    try:
        result = execute(command, _login_actor(session.principal))
    except (Conflict, NotFound) as exc:
        raise InvalidGrant(str(exc)) from None
    if any(isinstance(event, SessionEnded) for event in result.events):
        logger.warning(
            "session %s of %s ended: a spent refresh token was presented again",
            session.session_id,
            session.principal,
        )
        raise InvalidGrant(
            "this refresh token was used already: the session has ended; log in again"
        )
    return _tokens(reader, keys, issuer, session.session_id, new_token)


def end_session_by_refresh_token(
    reader: Reader, execute: Callable[..., CommandResult], refresh_token: str
) -> CommandResult | None:
    """Log out: end the session ``refresh_token`` belongs to. ``None`` when there is nothing
    to end (unknown, malformed or already ended), which RFC 7009 answers like success."""
    from tokenledger.domain import commands as c

    try:
        session = _session_of(reader, refresh_token)
    except InvalidGrant:
        return None
    if session.revoked:
        return None
    command = c.build(c.EndSession, session_id=session.session_id)
    try:
        return execute(command, _login_actor(session.principal))
    except Conflict:  # ended concurrently: the outcome asked for
        return None


def _session_of(reader: Reader, refresh_token: str) -> SessionView:
    refused = InvalidGrant("unknown refresh token")
    if not is_refresh_token(refresh_token):
        raise refused
    with reader.view() as view:
        session = view.session_by_refresh_hash(hash_secret(refresh_token))
    if session is None:
        raise refused
    return session


def _tokens(
    reader: Reader, keys: KeyRing, issuer: str, session_id: str, refresh_token: str
) -> SessionTokens:
    now = reader.now()
    with reader.view() as view:
        session = view.session(session_id)
        if session is None:  # pragma: no cover (just recorded in this process)
            raise InvalidGrant("the session is gone")
        grants = session_grants(view, session.principal, session.org)
        groups = groups_of(view, session.principal, session.org)
    # A session always ends (``SessionStarted`` carries its end); the fallback is for types.
    session_ends = session.expires_at or now + SESSION_ACCESS_TOKEN_LIFETIME
    issued = sign_access_token(
        keys,
        issuer=issuer,
        principal=session.principal,
        org=session.org,
        groups=groups,
        client_id=LOGIN_CLIENT_ID,
        grants=grants,
        now=now,
        expires_at=min(now + SESSION_ACCESS_TOKEN_LIFETIME, session_ends),
        email=session.principal,
        sid=session.session_id,
    )
    return SessionTokens(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        expires_at=issued.expires_at,
        refresh_token=refresh_token,
        scope=issued.scope,
        session_id=session.session_id,
        session_expires_at=session_ends,
        org=session.org,
        sub=session.principal,
    )
