"""Which tokens a filter selects: THE rule behind ``tokens revoke --where``, ``tokens
expiring``, ``tokens unused`` and the ``token.expiring`` and ``token.unused`` webhooks.

A ``TokenFilter`` holds criteria; a token matches when it is live and meets every criterion
given. Each criterion is one field and one clause in ``_CLAUSES``: adding another is a field
there and a clause here, and every caller follows. Storage may narrow its reads first
(``LedgerView.token_candidates``: by principal, issue, expiry and last use time), but what
matches is decided here, by ``matches``, and nowhere else.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from tokenledger.clock import EARLIEST, check_lifetime
from tokenledger.domain.authority import (
    authorise_token_management,
    may_see_token,
    require_principal_visible,
    require_token_access,
    token_orgs,
)
from tokenledger.domain.model import Actor, LedgerView, TokenView, is_role_principal
from tokenledger.domain.permissions import Grant, is_within
from tokenledger.domain.usage import last_active
from tokenledger.errors import NotFound, PermissionDenied, ValidationError

__all__ = [
    "TokenFilter",
    "expiring_filter",
    "expiring_tokens",
    "revocable_tokens",
    "selected_tokens",
    "unused_filter",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenFilter:
    """Criteria over tokens; None: that criterion is not asked for."""

    #: The token's principal (a user's email or a service account's id).
    principal: str | None = None
    #: An org the token reaches (a service account's org, or one its grants lie in).
    org: str | None = None
    #: A resource path: the token has a grant on it or below it.
    resource: str | None = None
    #: Issued strictly before this time.
    issued_before: datetime | None = None
    #: The token's name matches this pattern (``*``, ``?`` and ``[...]``, case-sensitive);
    #: a token without a name never matches.
    name: str | None = None
    #: Expires within this long from now (a token that never expires does not).
    expires_within: timedelta | None = None
    #: Not used for at least this long: last used (or, never used, issued) before now minus
    #: it (``domain.usage.last_active``).
    unused_for: timedelta | None = None
    #: One of these token ids (the live tokens of a blast radius, say).
    ids: frozenset[str] | None = None

    def given(self) -> dict[str, Any]:
        """The criteria asked for, by field name."""
        return {
            field.name: getattr(self, field.name)
            for field in fields(self)
            if getattr(self, field.name) is not None
        }

    def matches(self, token: TokenView, now: datetime) -> bool:
        """Live at ``now`` and meeting every criterion given."""
        return self.matcher()(token, now)

    def matcher(self) -> Callable[[TokenView, datetime], bool]:
        """``matches``, with the criteria looked up once: for judging many tokens."""
        clauses = [(_CLAUSES[name], value) for name, value in self.given().items()]

        def matches(token: TokenView, now: datetime) -> bool:
            return token.live(now) and all(clause(value, token, now) for clause, value in clauses)

        return matches

    def check(self, now: datetime) -> None:
        """Refuse criteria the ledger cannot judge at ``now`` (an unused period reaching back
        before the earliest time it holds), in one line, before any token is read."""
        if self.unused_for is not None:
            check_unused_for(self.unused_for, now)

    def describe(self) -> str:
        """The criteria as ``key=value`` pairs, for messages."""
        return ", ".join(f"{name}={_shown(value)}" for name, value in self.given().items())


def _has_grant_under(path: str, token: TokenView, now: datetime) -> bool:
    return any(is_within(grant.resource, path) for grant in token.grants)


def _name_matches(pattern: str, token: TokenView, now: datetime) -> bool:
    return token.name is not None and fnmatch.fnmatchcase(token.name, pattern)


def _expires_within(window: timedelta, token: TokenView, now: datetime) -> bool:
    return token.expires_at is not None and token.expires_at <= now + window


def _unused_for(period: timedelta, token: TokenView, now: datetime) -> bool:
    return last_active(token) < now - period


#: One clause per criterion: ``clause(value, token, now)``. Liveness is judged by ``matches``.
_CLAUSES: dict[str, Callable[[Any, TokenView, datetime], bool]] = {
    "principal": lambda principal, token, now: token.principal == principal,
    "org": lambda org, token, now: org in token_orgs(token),
    "resource": _has_grant_under,
    "issued_before": lambda moment, token, now: token.issued_at < moment,
    "name": _name_matches,
    "expires_within": _expires_within,
    "unused_for": _unused_for,
    "ids": lambda ids, token, now: token.token_id in ids,
}


def _shown(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return f"{int(value.total_seconds())}s"
    if isinstance(value, frozenset):
        return ",".join(sorted(value))
    return str(value)


def _matching(view: LedgerView, token_filter: TokenFilter, now: datetime) -> list[TokenView]:
    token_filter.check(now)
    matches = token_filter.matcher()
    # ``token_candidates`` answers by id already: 100,000 tokens are not sorted again.
    return [t for t in view.token_candidates(token_filter, now) if matches(t, now)]


def _may_access(view: LedgerView, actor: Actor, token: TokenView, now: datetime) -> bool:
    try:
        require_token_access(view, actor, token.principal, now, token_id=token.token_id)
    except (PermissionDenied, NotFound):
        return False
    return True


def _may_see(view: LedgerView, actor: Actor, token: TokenView, now: datetime) -> bool:
    """Whether the listing rules show ``token`` to ``actor`` (``require_token_access``,
    then ``may_see_token``)."""
    return _may_access(view, actor, token, now) and may_see_token(actor, token)


def selected_tokens(
    view: LedgerView, actor: Actor, token_filter: TokenFilter, now: datetime
) -> list[TokenView]:
    """The live tokens ``token_filter`` matches that ``actor`` may see, by id: a listing
    tells nothing about the tokens it does not show."""
    seen: dict[tuple[str, str | None], bool] = {}

    def visible(token: TokenView) -> bool:
        # A role's keys are judged one by one; anyone else's tokens once per principal.
        key = (token.principal, token.token_id if is_role_principal(token.principal) else None)
        if key not in seen:
            seen[key] = _may_access(view, actor, token, now)
        return seen[key] and may_see_token(actor, token)

    return [token for token in _matching(view, token_filter, now) if visible(token)]


def revocable_tokens(
    view: LedgerView, actor: Actor, token_filter: TokenFilter, now: datetime
) -> list[TokenView]:
    """The tokens a revocation by ``token_filter`` revokes (before the tokens derived from
    them): every live token it matches, each of which ``actor`` must be allowed to revoke
    (``authorise_token_management``). A match the actor may not revoke refuses the whole
    revocation, so that no one believes more was revoked than was: it is named when the
    actor may see it, and only said to exist otherwise. A principal criterion is refused
    alike whether that principal exists or not to whoever may not see it; a filter
    matching nothing is ``NotFound``."""
    if not token_filter.given():
        raise ValidationError("a revocation by filter needs at least one criterion")
    if token_filter.principal is not None:
        require_principal_visible(view, actor, token_filter.principal, now)
    matched = _matching(view, token_filter, now)
    if not matched:
        raise NotFound(f"no live token matches {token_filter.describe()}: nothing to revoke")
    judged: set[tuple[str, frozenset[str], str | None]] = set()
    # A principal's tokens mostly share their grants: their orgs are worked out once.
    orgs_of: dict[tuple[str, tuple[Grant, ...]], frozenset[str]] = {}
    for token in matched:
        grants_key = (token.principal, token.grants)
        orgs = orgs_of.get(grants_key)
        if orgs is None:
            orgs = orgs_of[grants_key] = token_orgs(token)
        role_key = token.token_id if is_role_principal(token.principal) else None
        key = (token.principal, orgs, role_key)
        if key in judged:
            continue
        try:
            authorise_token_management(
                view, actor, token.principal, now, orgs, token_id=token.token_id
            )
        except PermissionDenied as exc:
            named = f"{exc} (token {token.token_id} matches)"
            if not _may_see(view, actor, token, now):
                named = f"{actor.label} may not revoke a matching token it may not see"
            raise PermissionDenied(
                f"{named}: nothing was revoked; narrow the filter (org=, principal=)"
            ) from None
        judged.add(key)
    return matched


def expiring_tokens(
    view: LedgerView, actor: Actor, token_filter: TokenFilter, now: datetime
) -> list[TokenView]:
    """The selected tokens soonest to expire first (``token_filter`` asks ``expires_within``)."""
    found = selected_tokens(view, actor, token_filter, now)
    return sorted(found, key=lambda t: (t.expires_at or now, t.token_id))


def unused_filter(unused_for: timedelta, now: datetime, org: str | None = None) -> TokenFilter:
    """The filter of ``tokens unused --for``: a period longer than zero whose start the
    ledger can hold (``clock.check_lifetime``, backwards)."""
    check_unused_for(unused_for, now)
    return TokenFilter(unused_for=unused_for, org=org)


def check_unused_for(unused_for: timedelta, now: datetime) -> None:
    """An unused period: longer than zero, and starting no earlier than the earliest time
    the ledger holds."""
    if unused_for <= timedelta(0):
        raise ValidationError("invalid unused period: must be longer than zero")
    if now - EARLIEST <= unused_for:
        raise ValidationError("invalid unused period: it reaches back before the earliest time")


def expiring_filter(within: timedelta, now: datetime, org: str | None = None) -> TokenFilter:
    """The filter of ``tokens expiring --within``: a window longer than zero whose end the
    ledger can hold (``clock.check_lifetime``)."""
    if within <= timedelta(0):
        raise ValidationError("invalid within: must be longer than zero")
    check_lifetime(within, "within", now)
    return TokenFilter(expires_within=within, org=org)
