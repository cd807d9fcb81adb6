"""Who the caller is, and users' login sessions: list them, end one."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel

from tokenledger.api.deps import ERRORS, Correlation, State, command_out, run
from tokenledger.api.schemas import CommandOut
from tokenledger.api.security import CurrentActor
from tokenledger.domain import commands as c
from tokenledger.domain.model import SessionView

__all__ = ["router"]

router = APIRouter(prefix="/v2", tags=["sessions"], responses=ERRORS)


class WhoAmIOut(BaseModel):
    sub: str
    namespace: str
    acl_subjects: list[str]
    kind: str
    email: str | None
    org: str | None
    groups: list[str]
    token_id: str | None
    session_id: str | None
    session_expires_at: datetime | None
    exp: datetime | None


class SessionOut(BaseModel):
    session_id: str
    principal: str
    org: str
    issuer: str
    status: str
    started_at: datetime
    expires_at: datetime | None
    refreshed_at: datetime | None
    refreshes: int
    ended_at: datetime | None
    ended_reason: str | None
    last_used: datetime | None = None


def _session_out(session: SessionView, now: datetime) -> SessionOut:
    return SessionOut(
        session_id=session.session_id,
        principal=session.principal,
        org=session.org,
        issuer=session.issuer,
        status=session.status(now),
        started_at=session.started_at,
        expires_at=session.expires_at,
        refreshed_at=session.refreshed_at,
        refreshes=session.generation,
        ended_at=session.revoked_at,
        ended_reason=session.revoked_reason,
        last_used=session.last_used_at,
    )


@router.get("/whoami", response_model=WhoAmIOut)
def whoami(actor: CurrentActor, state: State) -> WhoAmIOut:
    """The caller: principal, org, roles (``groups``, as ``org:role``), and the session or
    token it acts through."""
    identity = state.ledger.who_is(actor)
    return WhoAmIOut(
        sub=identity.sub,
        namespace=identity.namespace,
        acl_subjects=identity.acl_subjects,
        kind=identity.kind,
        email=identity.email,
        org=identity.org,
        groups=list(identity.groups),
        token_id=identity.token_id,
        session_id=identity.session_id,
        session_expires_at=identity.session_expires_at,
        exp=identity.exp,
    )


@router.get("/users/{user_id}/sessions", response_model=list[SessionOut])
def list_sessions(
    actor: CurrentActor,
    state: State,
    user_id: str = Path(max_length=400),
    include_ended: bool = Query(False, description="Also ended and expired sessions."),
) -> list[SessionOut]:
    """A user's sessions, seen by the user, an operator, and admins of each session's org."""
    now = state.ledger.now()
    found = state.ledger.sessions_of(actor, user_id, include_ended=include_ended)
    return [_session_out(session, now) for session in found]


@router.delete("/sessions/{session_id}", response_model=CommandOut)
def end_session(
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    session_id: str = Path(max_length=100),
) -> CommandOut:
    """End a session (its user logging out, or an admin of its org): every access token
    it obtained stops working at once."""
    command = c.build(c.EndSession, session_id=session_id)
    return command_out(run(state, command, actor, correlation, response))
