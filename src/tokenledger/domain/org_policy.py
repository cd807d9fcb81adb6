"""THE rule of orgs' token policies: is a token within the policy of every org it concerns?

An org's policy (``OrgPolicySet``) bounds the tokens it covers: the longest lifetime by token
kind, whether every token must expire, the longest lifetime of a token with an admin grant,
and how many live tokens one principal may hold. Which orgs' policies cover a token is
``authority.token_orgs``: a service account's org, a role key's org, and for a user's token
(and a token derived from it) each org it has a grant in; each of them applies, so the
strictest wins. A client credential is covered by its account's org (kind ``client``). Access
tokens signed for a session, a client credential or an exchange live minutes and die with
their source: they are not ledger tokens, and no policy bounds them beyond their source.

Every issuing decision asks ``within_policy`` (``tokens create``, role keys, client
credentials, rotation); setting a policy asks ``breaches`` of every live token it covers.
A refusal names the org and the rule, in one line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import msgspec

from tokenledger.domain.authority import token_orgs
from tokenledger.domain.model import (
    LedgerView,
    OrgPolicyView,
    TokenView,
    is_service_account_id,
    role_principal,
)
from tokenledger.domain.permissions import Grant, Level
from tokenledger.domain.secrets import TokenKind
from tokenledger.errors import PermissionDenied, ValidationError

__all__ = [
    "POLICY_KINDS",
    "UNBOUNDED_CAP",
    "Breach",
    "breaches",
    "capped_expiry",
    "check_policy",
    "counted",
    "duration_text",
    "within_policy",
]

#: The kinds a policy may bound: every kind of ledger token, and client credentials.
POLICY_KINDS = (
    TokenKind.CLIENT.value,
    TokenKind.DERIVED.value,
    TokenKind.PERSONAL.value,
    TokenKind.ROLE.value,
    TokenKind.SERVICE.value,
)

#: A token that never expired, capped under a policy that requires an expiry but sets no
#: maximum for its kind, expires this long after the capping.
UNBOUNDED_CAP = timedelta(days=30)

#: The most live tokens a policy may allow one principal (a bound, not a recommendation).
MAX_LIVE_TOKENS_BOUND = 1_000_000


def duration_text(duration: timedelta) -> str:
    """``90d``, ``12h``, ``1d12h``, ``90m``, ``45s``: the shortest exact form."""
    seconds = int(duration.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def check_policy(policy: OrgPolicyView) -> None:
    """Refuse a policy that contradicts itself or bounds nothing, in one line (each field's
    own range is the command's: ``commands.SetOrgPolicy``)."""
    admin = policy.max_admin_lifetime
    if admin is not None and len(policy.max_lifetime) == len(POLICY_KINDS):
        longest = max(policy.max_lifetime.values())
        if admin >= longest:
            raise ValidationError(
                f"the admin maximum ({duration_text(admin)}) is no shorter than every kind's "
                f"maximum ({duration_text(longest)} at most): it would never apply"
            )
    if not (
        policy.max_lifetime
        or policy.require_expiry
        or admin is not None
        or policy.max_live_tokens is not None
    ):
        raise ValidationError(
            "a policy needs at least one rule (to remove the org's policy: orgs policy clear)"
        )


def _lifetime_limits(
    policy: OrgPolicyView, kind: str, grants: Iterable[Grant]
) -> list[tuple[timedelta, str]]:
    """The maxima that bound a token of ``kind`` with ``grants``, each with its rule's text."""
    limits = []
    kind_limit = policy.max_lifetime.get(kind)
    if kind_limit is not None:
        limits.append((kind_limit, f"{kind} tokens live at most {duration_text(kind_limit)}"))
    admin = policy.max_admin_lifetime
    if admin is not None and any(g.rank is Level.ADMIN for g in grants):
        limits.append((admin, f"tokens with an admin grant live at most {duration_text(admin)}"))
    return limits


def _covering(view: LedgerView, orgs: Iterable[str]) -> list[OrgPolicyView]:
    found = (view.org_policy(org) for org in sorted(set(orgs)))
    return [policy for policy in found if policy is not None]


def counted(token: TokenView) -> bool:
    """Whether a token counts toward a principal's live tokens: every kind but a derived
    token, which lives an hour by default and dies with its parent (and a client credential,
    judged here in a token's shape, which is no token)."""
    return token.kind not in (TokenKind.DERIVED.value, TokenKind.CLIENT.value)


def within_policy(
    view: LedgerView,
    *,
    orgs: Iterable[str],
    principal: str,
    kind: str,
    grants: Sequence[Grant],
    now: datetime,
    expires_at: datetime | None,
    chosen: bool,
    replacing: str | None = None,
) -> datetime | None:
    """The expiry a new token or credential may have under every policy covering ``orgs``.

    ``chosen``: the caller asked for this expiry (or, rotating, inherits it): outside a policy
    it is refused, naming the rule. Otherwise it is the default, brought within the
    policies. ``replacing``: the token a rotation replaces, which does not count toward the
    principal's live tokens (it expires at the overlap's end). A client credential (kind
    ``client``) is not counted among tokens.
    """
    for policy in _covering(view, orgs):
        expires_at = _within_lifetimes(policy, kind, grants, now, expires_at, chosen)
        if policy.max_live_tokens is not None and kind not in (
            TokenKind.CLIENT.value,
            TokenKind.DERIVED.value,
        ):
            held = _live_count(view, policy.org, principal, now, replacing)
            if held >= policy.max_live_tokens:
                raise PermissionDenied(
                    f"org {policy.org}'s policy: a principal holds at most "
                    f"{policy.max_live_tokens} live tokens ({principal} holds {held})"
                )
    return expires_at


def _within_lifetimes(
    policy: OrgPolicyView,
    kind: str,
    grants: Sequence[Grant],
    now: datetime,
    expires_at: datetime | None,
    chosen: bool,
) -> datetime | None:
    limits = _lifetime_limits(policy, kind, grants)
    if expires_at is None:
        if policy.require_expiry and (chosen or not limits):
            raise PermissionDenied(f"org {policy.org}'s policy: every token must expire")
        if limits and chosen:
            raise PermissionDenied(f"org {policy.org}'s policy: {min(limits)[1]}")
    for limit, rule in sorted(limits):
        latest = now + limit
        if expires_at is None or expires_at > latest:
            if chosen:
                raise PermissionDenied(f"org {policy.org}'s policy: {rule}")
            expires_at = latest
    return expires_at


def _live_count(
    view: LedgerView, org: str, principal: str, now: datetime, replacing: str | None
) -> int:
    return sum(
        1
        for token in view.tokens_of(principal)
        if token.live(now)
        and counted(token)
        and token.token_id != replacing
        and org in token_orgs(token)
    )


class Breach(msgspec.Struct, frozen=True, kw_only=True):
    """A live token or client credential outside a policy: which, why (``rule``), and the
    expiry capping would give it (None: capping does not fix it, as for a principal holding
    too many live tokens)."""

    token_id: str
    """The token's id, or a client credential's client id (kind ``client``)."""
    principal: str
    kind: str
    expires_at: datetime | None
    rule: str
    capped_at: datetime | None
    orgs: tuple[str, ...] = ()
    """The orgs a user's token has grants in (as ``TokenRevoked`` records them)."""


def _breach(token: TokenView, rule: str, capped_at: datetime | None) -> Breach:
    return Breach(
        token_id=token.token_id,
        principal=token.principal,
        kind=token.kind,
        expires_at=token.expires_at,
        rule=rule,
        capped_at=capped_at,
        orgs=() if is_service_account_id(token.principal) else tuple(sorted(token_orgs(token))),
    )


def capped_expiry(policy: OrgPolicyView, token: TokenView, now: datetime) -> datetime | None:
    """The expiry that brings ``token`` within ``policy``'s lifetimes, counted from its issue
    (never before ``now``: a token past its maximum expires at the capping); None when it is
    within them already."""
    limits = _lifetime_limits(policy, token.kind, token.grants)
    latest = [token.issued_at + limit for limit, _ in limits]
    if token.expires_at is None and policy.require_expiry and not latest:
        latest.append(now + UNBOUNDED_CAP)
    if not latest:
        return None
    bound = max(min(latest), now)
    if token.expires_at is not None and token.expires_at <= bound:
        return None
    return bound


def breaches(view: LedgerView, policy: OrgPolicyView, now: datetime) -> list[Breach]:
    """Every live token covered by ``policy``'s org that breaks it, by token id; a principal
    holding more live tokens than it allows is named once per token beyond the count (its
    newest ones), which capping leaves as they are."""
    covered = [
        token
        for token in view.tokens_with_grant_under(policy.org)
        if token.live(now) and policy.org in token_orgs(token)
    ]
    covered.extend(
        token
        for token in _role_keys(view, policy.org)
        if token.live(now) and token.token_id not in {t.token_id for t in covered}
    )
    covered.extend(_client_credentials(view, policy.org, now))
    found: list[Breach] = []
    by_principal: dict[str, list[TokenView]] = {}
    for token in sorted(covered, key=lambda t: t.token_id):
        if counted(token):
            by_principal.setdefault(token.principal, []).append(token)
        capped_at = capped_expiry(policy, token, now)
        if capped_at is not None:
            found.append(_breach(token, _rule_broken(policy, token), capped_at))
    if policy.max_live_tokens is not None:
        for principal, held in sorted(by_principal.items()):
            # Newest by issue time: ids order only by their 10 ms tick, randomly within one.
            held.sort(key=lambda t: (t.issued_at, t.token_id))
            for token in held[policy.max_live_tokens :]:
                rule = (
                    f"a principal holds at most {policy.max_live_tokens} live tokens "
                    f"({principal} holds {len(held)})"
                )
                found.append(_breach(token, rule, None))
    return found


def _rule_broken(policy: OrgPolicyView, token: TokenView) -> str:
    limits = _lifetime_limits(policy, token.kind, token.grants)
    for limit, rule in sorted(limits):
        if token.expires_at is None or token.expires_at > token.issued_at + limit:
            return rule
    return "every token must expire"


def _client_credentials(view: LedgerView, org: str, now: datetime) -> list[TokenView]:
    """The live client credentials of the org's service accounts, in a token's shape (kind
    ``client``, the account's permission as their grant) so that one rule judges them."""
    shaped: list[TokenView] = []
    for account in view.service_accounts_under(org):
        if account.org != org:
            continue
        for credential in view.client_credentials_of(account.account_id):
            if credential.live(now):
                shaped.append(
                    TokenView(
                        token_id=credential.client_id,
                        principal=account.account_id,
                        kind=TokenKind.CLIENT.value,
                        grants=(account.permission,),
                        name=credential.name,
                        issued_at=credential.issued_at,
                        expires_at=credential.expires_at,
                        parent_id=None,
                    )
                )
    return shaped


def _role_keys(view: LedgerView, org: str) -> list[TokenView]:
    """The org's role keys (they hold no grants of their own, so no grant lookup finds them)."""
    keys: list[TokenView] = []
    for role in sorted(view.roles_of(org)):
        keys.extend(view.tokens_of(role_principal(org, role)))
    return keys
