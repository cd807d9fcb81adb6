"""Decisions on orgs' token policies: setting one (and what becomes of the live tokens that
break it), clearing one. The rule itself, and which tokens a policy covers, is
``domain.org_policy``; who may set a policy is ``authority.authorise_org_policy``.

Setting a policy that some live tokens break needs a choice (``existing``): ``cap`` brings
each one's expiry within the policy, one ``TokenExpiryShortened`` per token (and per derived
token that would outlive it), in the same command as the ``OrgPolicySet``; ``leave`` leaves
them. A principal holding more live tokens than the policy allows is not something an expiry
fixes: those tokens are reported and left, and the principal may issue no more until it is
back under the count.

Registered on ``decide`` (``domain.decide`` imports this module).
"""

from __future__ import annotations

from datetime import datetime

from tokenledger.domain import commands as c
from tokenledger.domain.authority import authorise_org_policy
from tokenledger.domain.decide import Context, _require_org, decide
from tokenledger.domain.decide_rotation import shortened
from tokenledger.domain.events import (
    ClientCredentialExpiryShortened,
    Event,
    ExpiryReason,
    OrgPolicyCleared,
    OrgPolicySet,
    TokenExpiryShortened,
)
from tokenledger.domain.model import Actor, LedgerView, OrgPolicyView
from tokenledger.domain.org_policy import Breach, breaches, check_policy
from tokenledger.domain.secrets import TokenKind
from tokenledger.errors import Conflict, NotFound

__all__ = ["policy_breaches", "proposed_policy", "readable_policy"]


def proposed_policy(cmd: c.SetOrgPolicy) -> OrgPolicyView:
    """The policy ``cmd`` asks for, refused in one line if it contradicts itself."""
    policy = OrgPolicyView(
        org=cmd.org,
        max_lifetime=dict(sorted(cmd.max_lifetime.items())),
        require_expiry=cmd.require_expiry,
        max_admin_lifetime=cmd.max_admin_lifetime,
        max_live_tokens=cmd.max_live_tokens,
    )
    check_policy(policy)
    return policy


def policy_breaches(view: LedgerView, ctx: Context, cmd: c.SetOrgPolicy) -> list[Breach]:
    """The live tokens the policy ``cmd`` asks for would find outside it (a dry run: what
    ``SetOrgPolicy`` would report, for the same actor, appending nothing)."""
    authorise_org_policy(view, ctx.actor, cmd.org, ctx.now, f"set the policy of org {cmd.org}")
    _require_org(view, cmd.org)
    return breaches(view, proposed_policy(cmd), ctx.now)


def readable_policy(
    view: LedgerView, actor: Actor, org: str, now: datetime
) -> OrgPolicyView | None:
    """The org's policy, for whoever may set it (None: it has none)."""
    authorise_org_policy(view, actor, org, now, f"read the policy of org {org}")
    _require_org(view, org)
    return view.org_policy(org)


@decide.register
def _set_org_policy(cmd: c.SetOrgPolicy, view: LedgerView, ctx: Context) -> list[Event]:
    found = policy_breaches(view, ctx, cmd)
    policy = proposed_policy(cmd)
    if found and cmd.existing is None:
        first = found[0]
        raise Conflict(
            f"{len(found)} live token(s) break this policy ({first.token_id}: "
            f"{first.rule}): see them with --dry-run, then choose --existing cap or "
            "--existing leave"
        )
    events: list[Event] = [
        OrgPolicySet(
            org=cmd.org,
            max_lifetime={
                kind: int(lifetime.total_seconds())
                for kind, lifetime in policy.max_lifetime.items()
            },
            require_expiry=policy.require_expiry,
            max_admin_lifetime=(
                int(policy.max_admin_lifetime.total_seconds())
                if policy.max_admin_lifetime is not None
                else None
            ),
            max_live_tokens=policy.max_live_tokens,
        )
    ]
    if cmd.existing == "cap":
        events.extend(_capped(view, found, cmd.org, ctx))
    return events


def _capped(view: LedgerView, found: list[Breach], org: str, ctx: Context) -> list[Event]:
    """One ``TokenExpiryShortened`` per token brought within the policy, and per derived
    token that would outlive its parent's new expiry (each at the earliest it needs); one
    ``ClientCredentialExpiryShortened`` per client credential."""
    capped: dict[str, TokenExpiryShortened] = {}

    def keep(event: TokenExpiryShortened) -> None:
        earlier = capped.get(event.token_id)
        if earlier is None or event.expires_at < earlier.expires_at:
            capped[event.token_id] = event

    credentials: list[Event] = []
    for breach in found:
        if breach.capped_at is None:
            continue
        detail = f"org {org}'s policy: {breach.rule}"
        if breach.kind == TokenKind.CLIENT.value:
            credentials.append(
                ClientCredentialExpiryShortened(
                    client_id=breach.token_id,
                    account_id=breach.principal,
                    expires_at=breach.capped_at,
                    reason=ExpiryReason.ORG_POLICY,
                    detail=detail,
                )
            )
            continue
        token = view.token(breach.token_id)
        if token is None:
            continue
        keep(
            TokenExpiryShortened(
                token_id=breach.token_id,
                principal=breach.principal,
                expires_at=breach.capped_at,
                reason=ExpiryReason.ORG_POLICY,
                detail=detail,
                orgs=breach.orgs,
            )
        )
        for event in shortened(
            view, [token], breach.capped_at, ExpiryReason.PARENT_SHORTENED, detail, ctx
        ):
            keep(event)
    return [*(capped[token_id] for token_id in sorted(capped)), *credentials]


@decide.register
def _clear_org_policy(cmd: c.ClearOrgPolicy, view: LedgerView, ctx: Context) -> list[Event]:
    authorise_org_policy(view, ctx.actor, cmd.org, ctx.now, f"clear the policy of org {cmd.org}")
    _require_org(view, cmd.org)
    if view.org_policy(cmd.org) is None:
        raise NotFound(f"org {cmd.org} has no policy")
    return [OrgPolicyCleared(org=cmd.org)]
