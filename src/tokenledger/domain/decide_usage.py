"""The decision recording credentials' uses (``RecordUses`` -> ``TokenUsed``), registered
on ``decide`` when ``domain.decide`` loads.

Only the ledger itself records uses (its operator actor): no user's command can make one.
A use is recorded at most once per credential and interval bucket, and never before one
already recorded: a use whose credential's last recorded use lies in its bucket or later
(another process, or an earlier flush of this one, recorded that bucket) is skipped. So
several processes noting the same credential in the same bucket leave one event, counting
the uses of the process that recorded it first.
"""

from __future__ import annotations

from tokenledger.domain import commands as c
from tokenledger.domain.authority import require_operator
from tokenledger.domain.decide import Context, decide
from tokenledger.domain.events import Event, TokenUsed
from tokenledger.domain.model import ClientCredentialView, LedgerView, SessionView, TokenView
from tokenledger.domain.usage import CredentialKind, credential_kind

__all__: list[str] = []


@decide.register
def _record_uses(cmd: c.RecordUses, view: LedgerView, ctx: Context) -> list[Event]:
    require_operator(ctx.actor, "record uses of credentials")
    events: list[Event] = []
    for use in sorted(cmd.uses, key=lambda u: (u.bucket_start, u.credential_id)):
        kind = credential_kind(use.credential_id)
        if kind is None:
            continue
        credential = _credential(view, kind, use.credential_id)
        if credential is None:
            continue
        last = credential.last_used_at
        if last is not None and last >= use.bucket_start:
            continue  # this bucket (or a later one) is recorded already
        events.append(
            TokenUsed(
                **{kind.value: use.credential_id},
                bucket_start=use.bucket_start,
                interval=cmd.interval,
                count=use.count,
                last_used_at=use.last_used_at,
            )
        )
    return events


def _credential(
    view: LedgerView, kind: CredentialKind, credential_id: str
) -> TokenView | ClientCredentialView | SessionView | None:
    if kind is CredentialKind.TOKEN:
        return view.token(credential_id)
    if kind is CredentialKind.CLIENT:
        return view.client_credential(credential_id)
    return view.session(credential_id)
