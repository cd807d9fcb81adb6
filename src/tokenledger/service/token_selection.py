"""Tokens selected by a filter: the preview of a revocation by filter, the tokens about to
expire and those unused for a while. Which tokens match, and who may see or revoke them, is
``domain.token_filter``'s rule; this module only reads, and shows each token as listings do
(``authority.as_listed``)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from tokenledger.domain.authority import as_listed
from tokenledger.domain.model import Actor, TokenView
from tokenledger.domain.token_filter import (
    expiring_filter,
    expiring_tokens,
    revocable_tokens,
    selected_tokens,
    unused_filter,
)
from tokenledger.service.reading import Reader, valid_org

if TYPE_CHECKING:
    from tokenledger.domain.commands import TokenCriteria

__all__ = ["expiring", "revocation_preview", "unused"]


def revocation_preview(reader: Reader, actor: Actor, where: TokenCriteria) -> list[TokenView]:
    """The tokens ``RevokeTokensWhere(where=where)`` would revoke now (before the tokens
    derived from them), refused as it would be; appends nothing."""
    now = reader.now()
    with reader.view() as view:
        return as_listed(revocable_tokens(view, actor, where.token_filter(), now), view)


def expiring(
    reader: Reader, actor: Actor, within: timedelta, org: str | None = None
) -> list[TokenView]:
    """Live tokens the actor may see that expire within ``within`` from now (in ``org``),
    soonest first."""
    org = valid_org(org) if org is not None else None
    now = reader.now()
    token_filter = expiring_filter(within, now, org)
    with reader.view() as view:
        return as_listed(expiring_tokens(view, actor, token_filter, now), view)


def unused(
    reader: Reader, actor: Actor, unused_for: timedelta, org: str | None = None
) -> list[TokenView]:
    """Live tokens the actor may see unused for at least ``unused_for`` (last used, or
    issued if never used, before now minus it), in ``org``; by id."""
    org = valid_org(org) if org is not None else None
    now = reader.now()
    token_filter = unused_filter(unused_for, now, org)
    with reader.view() as view:
        return as_listed(selected_tokens(view, actor, token_filter, now), view)
