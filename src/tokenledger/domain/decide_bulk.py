"""The decision on revoking tokens by filter (``tokens revoke --where``).

Registered on ``decide`` (``domain.decide`` imports this module). Which tokens it revokes is
``revocable_tokens`` (``domain.token_filter``): the preview a caller is shown lists the same.
"""

from __future__ import annotations

from tokenledger.domain import commands as c
from tokenledger.domain.decide import Context, _revoke, decide
from tokenledger.domain.events import Event, RevocationReason
from tokenledger.domain.model import LedgerView
from tokenledger.domain.token_filter import revocable_tokens

__all__: list[str] = []


@decide.register
def _revoke_where(cmd: c.RevokeTokensWhere, view: LedgerView, ctx: Context) -> list[Event]:
    """One ``TokenRevoked`` per selected token, then each token derived from them (as every
    revocation cascades); all or nothing."""
    matched = revocable_tokens(view, ctx.actor, cmd.where.token_filter(), ctx.now)
    return _revoke(view, matched, RevocationReason.REQUESTED, cmd.reason, ctx)
