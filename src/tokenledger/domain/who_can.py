"""Who could do a level on a resource: every principal and every usable token, each with the
grant path that allows it.

The rule is the token answer's own (``domain.authority``): a principal can do what its
standing allows (``standing_paths``: direct grants, its memberships' roles, a role key's
role, a service account's permission), and a token what ``answer_token`` lets it do. This
module only finds the candidates and asks that rule about each; it reads through a
``WhoCanView``, which may stand at any moment (``projections.temporal_view``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from tokenledger.domain.authority import GrantPath, answer_token, standing_paths
from tokenledger.domain.model import StandingView, TokenView, role_principal
from tokenledger.domain.permissions import Grant, Level, grants_allow, org_of, parent_of

__all__ = ["Holder", "TokenHolder", "WhoCan", "WhoCanView", "ancestors", "who_can"]


class WhoCanView(StandingView, Protocol):
    """What finding the candidates reads, besides a principal's standing."""

    def grant_holders(self, resources: Sequence[str]) -> Sequence[str]:
        """The principals with a direct grant on any of ``resources``."""
        ...

    def members(self, org: str) -> dict[str, str]: ...

    def accounts_on(self, resources: Sequence[str]) -> Sequence[str]:
        """The service accounts whose permission lies on any of ``resources``."""
        ...

    def roles_of(self, org: str) -> dict[str, tuple[Grant, ...]]: ...

    def tokens_of_any(self, principals: Sequence[str]) -> Sequence[TokenView]: ...

    def read_ahead(self, principals: Sequence[str]) -> None:
        """Read at once what the standing of each of ``principals`` reads (a view may do
        nothing here): each candidate's standing is asked next."""
        ...


class Path(msgspec.Struct, frozen=True, kw_only=True):
    """A grant that allows the level, and where it comes from."""

    grant: str
    via: str


class Holder(msgspec.Struct, frozen=True, kw_only=True):
    principal: str
    paths: tuple[Path, ...]


class TokenHolder(msgspec.Struct, frozen=True, kw_only=True):
    """A usable token allowing the level: its own grant that covers the resource, the level
    it has there (the lower of that and its principal's), and its principal's paths."""

    token_id: str
    principal: str
    kind: str
    name: str | None
    expires_at: datetime | None
    grant: str | None
    level: str
    paths: tuple[Path, ...]


class WhoCan(msgspec.Struct, frozen=True, kw_only=True):
    resource: str
    level: str
    principals: tuple[Holder, ...]
    tokens: tuple[TokenHolder, ...]


def who_can(view: WhoCanView, resource: str, level: Level, now: datetime) -> WhoCan:
    """Every principal whose standing allows ``level`` on ``resource`` at ``now``, and every
    token of theirs usable then that allows it too, by principal and token id."""
    org = org_of(resource)
    above = ancestors(resource)
    candidates = {
        *view.grant_holders(above),
        *view.members(org),
        *view.accounts_on(above),
        # A role's keys act as the role: it may hold them.
        *(role_principal(org, name) for name in view.roles_of(org)),
    }
    holders: dict[str, tuple[Path, ...]] = {}
    standings: dict[str, tuple[Grant, ...]] = {}
    view.read_ahead(sorted(candidates))
    for principal in sorted(candidates):
        found = standing_paths(view, principal)
        paths = _allowing(found, resource, level)
        if found is not None and paths:
            holders[principal] = paths
            standings[principal] = tuple(path.grant for path in found)
    tokens = [
        held
        for token in view.tokens_of_any(sorted(holders))
        if (
            held := _token_holder(
                token, standings[token.principal], holders[token.principal], resource, level, now
            )
        )
    ]
    return WhoCan(
        resource=resource,
        level=level.label,
        principals=tuple(Holder(principal=p, paths=paths) for p, paths in holders.items()),
        tokens=tuple(sorted(tokens, key=lambda t: (t.principal, t.token_id))),
    )


def ancestors(resource: str) -> list[str]:
    """``resource`` and every path above it, nearest first: where a grant covering it lies."""
    found: list[str] = []
    path: str | None = resource
    while path is not None:
        found.append(path)
        path = parent_of(path)
    return found


def _allowing(paths: Sequence[GrantPath] | None, resource: str, level: Level) -> tuple[Path, ...]:
    return tuple(
        Path(grant=str(path.grant), via=path.source)
        for path in paths or ()
        if grants_allow((path.grant,), resource, level)
    )


def _token_holder(
    token: TokenView,
    standing: tuple[Grant, ...],
    paths: tuple[Path, ...],
    resource: str,
    level: Level,
    now: datetime,
) -> TokenHolder | None:
    """The token as a holder when ``answer_token`` lets it do ``level`` on ``resource``,
    weighed against its principal's whole standing (which acts: a holder's standing is
    never suspended)."""
    answer = answer_token(token, standing, now)
    reached = answer.level_on(resource)
    if not answer.usable or reached < level:
        return None
    assert answer.token is not None  # a role key's grants are its role's
    grant = next((g for g in answer.token.grants if grants_allow((g,), resource, level)), None)
    return TokenHolder(
        token_id=token.token_id,
        principal=token.principal,
        kind=token.kind,
        name=token.name,
        expires_at=token.expires_at,
        grant=str(grant) if grant is not None else None,
        level=reached.label,
        paths=paths,
    )
