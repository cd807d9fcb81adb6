"""The events that end a principal's sessions and withdraw a service account's issuer
trusts, for every decision whose cascade reaches them (disabling a user, removing a member,
moving or deleting a service account, changing an org's identity provider)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from tokenledger.domain.events import Event, IssuerUntrusted, SessionEnded
from tokenledger.domain.model import IssuerTrustView, SessionView

__all__ = ["end_sessions", "withdraw_trusts"]


def end_sessions(
    sessions: Iterable[SessionView], reason: str, detail: str | None, now: datetime
) -> list[Event]:
    """One ``SessionEnded`` per live session among ``sessions``, by id."""
    live = sorted((s for s in sessions if s.live(now)), key=lambda s: s.session_id)
    return [
        SessionEnded(
            session_id=session.session_id,
            principal=session.principal,
            org=session.org,
            reason=reason,
            detail=detail,
        )
        for session in live
    ]


def withdraw_trusts(
    trusts: Iterable[IssuerTrustView], reason: str, detail: str | None
) -> list[Event]:
    """One ``IssuerUntrusted`` per trust among ``trusts`` still in force, by id."""
    standing = sorted((t for t in trusts if not t.revoked), key=lambda t: t.trust_id)
    return [
        IssuerUntrusted(
            trust_id=trust.trust_id, account_id=trust.account_id, reason=reason, detail=detail
        )
        for trust in standing
    ]
