"""``/v2/orgs/{org}/policy``: an org's token policy (get, set with a dry run, clear).

Lifetimes are durations (``90d``, ``12h``); the rule is ``domain.org_policy``, who may set
or read it ``domain.authority.authorise_org_policy``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from tokenledger.api.deps import ERRORS, Correlation, State, command_fields, command_out, run
from tokenledger.api.schemas import CommandOut, _In
from tokenledger.api.security import CurrentActor
from tokenledger.domain import commands as c
from tokenledger.domain.events import ClientCredentialExpiryShortened, TokenExpiryShortened
from tokenledger.domain.model import OrgPolicyView
from tokenledger.domain.names import shown
from tokenledger.domain.org_policy import Breach, duration_text
from tokenledger.errors import ValidationError

__all__ = ["router"]

router = APIRouter(prefix="/v2/orgs", tags=["orgs"], responses=ERRORS)

Duration = str


class PolicyIn(_In):
    max_lifetime: dict[str, Duration] = Field(
        default_factory=dict,
        max_length=10,
        description="The longest lifetime by token kind (service, personal, derived, role, "
        'client), e.g. {"service": "90d"}.',
    )
    require_expiry: bool = False
    max_admin_lifetime: Duration | None = Field(default=None, max_length=40)
    max_live_tokens: int | None = None
    dry_run: bool = Field(
        default=False, description="Only list the live tokens that would break it."
    )
    existing: Literal["cap", "leave"] | None = Field(
        default=None,
        description="Live tokens that break it: bring their expiry within it (cap), or leave "
        "them. Needed only when there are some.",
    )


class PolicyOut(BaseModel):
    org: str
    max_lifetime: dict[str, str]
    require_expiry: bool
    max_admin_lifetime: str | None
    max_live_tokens: int | None
    set_at: datetime | None


class BreachOut(BaseModel):
    token_id: str
    principal: str
    kind: str
    expires_at: datetime | None
    rule: str = Field(description="The rule the token breaks.")
    capped_at: datetime | None = Field(
        description="Its expiry once capped (null: capping does not fix it)."
    )


class DryRunOut(BaseModel):
    org: str
    dry_run: bool = True
    breaches: list[BreachOut]


class CappedOut(BaseModel):
    token_id: str = Field(description="The token's id, or a client credential's client id.")
    expires_at: datetime


class PolicySetOut(CommandOut):
    org: str
    dry_run: bool = False
    capped: list[CappedOut]


def policy_out(found: OrgPolicyView) -> PolicyOut:
    admin = found.max_admin_lifetime
    return PolicyOut(
        org=found.org,
        max_lifetime={kind: duration_text(d) for kind, d in found.max_lifetime.items()},
        require_expiry=found.require_expiry,
        max_admin_lifetime=duration_text(admin) if admin is not None else None,
        max_live_tokens=found.max_live_tokens,
        set_at=found.set_at,
    )


def breach_out(breach: Breach) -> BreachOut:
    return BreachOut(
        token_id=breach.token_id,
        principal=breach.principal,
        kind=breach.kind,
        expires_at=breach.expires_at,
        rule=breach.rule,
        capped_at=breach.capped_at,
    )


def _command(org: str, body: PolicyIn) -> c.SetOrgPolicy:
    for kind, text in body.max_lifetime.items():
        if len(text) > 40:
            raise ValidationError(f"max_lifetime of {shown(kind)}: at most 40 characters")
    return c.build(
        c.SetOrgPolicy,
        org=org,
        max_lifetime={kind: c.parse_duration(text) for kind, text in body.max_lifetime.items()},
        require_expiry=body.require_expiry,
        max_admin_lifetime=(
            c.parse_duration(body.max_admin_lifetime)
            if body.max_admin_lifetime is not None
            else None
        ),
        max_live_tokens=body.max_live_tokens,
        existing=body.existing,
    )


@router.get("/{org}/policy", response_model=PolicyOut | None)
def get_policy(org: str, actor: CurrentActor, state: State) -> PolicyOut | None:
    """The org's token policy (``null`` when it has none), for its admins and the
    operator."""
    found = state.ledger.org_policy(actor, org)
    return policy_out(found) if found is not None else None


@router.put("/{org}/policy", response_model=PolicySetOut | DryRunOut)
def set_policy(
    org: str,
    body: PolicyIn,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
) -> PolicySetOut | DryRunOut:
    """Set the org's token policy, replacing any earlier one (as ``tokenledger orgs policy
    set``). With ``dry_run``, only the live tokens that would break it, and nothing is
    recorded; otherwise, when some would, ``existing`` must say what becomes of them (409
    without it)."""
    command = _command(org, body)
    if body.dry_run:
        found = state.ledger.policy_dry_run(actor, command)
        return DryRunOut(org=command.org, breaches=[breach_out(b) for b in found])
    result = run(state, command, actor, correlation, response)
    capped = [
        CappedOut(
            token_id=e.token_id if isinstance(e, TokenExpiryShortened) else e.client_id,
            expires_at=e.expires_at,
        )
        for e in result.events
        if isinstance(e, TokenExpiryShortened | ClientCredentialExpiryShortened)
    ]
    return PolicySetOut(org=command.org, capped=capped, **command_fields(result))


@router.delete("/{org}/policy", response_model=CommandOut)
def clear_policy(
    org: str, actor: CurrentActor, state: State, correlation: Correlation, response: Response
) -> CommandOut:
    """Remove the org's token policy."""
    command = c.build(c.ClearOrgPolicy, org=org)
    return command_out(run(state, command, actor, correlation, response))
