"""``tokens unused``: live tokens nobody has used for a while, filtered to what the actor
may see. The rules are ``domain.usage`` (``unused_since``, ``may_list_unused``)."""

from __future__ import annotations

from datetime import timedelta

from tokenledger.clock import EARLIEST
from tokenledger.domain.model import Actor, TokenView
from tokenledger.domain.usage import may_list_unused, unused_since
from tokenledger.errors import ValidationError
from tokenledger.projections.usage_view import unused_candidates
from tokenledger.service.reading import Reader, valid_org

__all__ = ["unused_tokens"]


def unused_tokens(
    reader: Reader, actor: Actor, unused_for: timedelta, org: str | None = None
) -> list[TokenView]:
    """Live tokens (not revoked, not expired) unused for at least ``unused_for``: last used,
    or issued if never used, before now minus ``unused_for``; inside ``org`` when given.
    Only those the actor may see among their principal's tokens; by id."""
    if unused_for <= timedelta(0):
        raise ValidationError("the unused period must be longer than zero")
    if org is not None:
        org = valid_org(org)
    now = reader.now()
    if now - EARLIEST <= unused_for:
        raise ValidationError("the unused period reaches back before the earliest time held")
    cutoff = now - unused_for
    with reader.view() as view:
        return [
            token
            for token in unused_candidates(view.connection, cutoff, org)
            if unused_since(token, cutoff, now, org) and may_list_unused(view, actor, token, now)
        ]
