"""Orgs' token policies: reading one, and the dry run of setting one (what it would find
outside it, appending nothing). Setting and clearing are commands (``SetOrgPolicy``,
``ClearOrgPolicy``); every rule is in ``domain.org_policy`` and ``domain.authority``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenledger.domain.decide import Context
from tokenledger.domain.decide_org_policy import policy_breaches, readable_policy
from tokenledger.domain.model import Actor, OrgPolicyView
from tokenledger.domain.org_policy import Breach
from tokenledger.service.reading import Reader, valid_org

if TYPE_CHECKING:
    from tokenledger.domain import commands as c

__all__ = ["org_policy", "policy_dry_run"]


def org_policy(reader: Reader, actor: Actor, org: str) -> OrgPolicyView | None:
    """The org's policy (None: it has none), for whoever may set it."""
    org = valid_org(org)
    with reader.view() as view:
        return readable_policy(view, actor, org, reader.now())


def policy_dry_run(reader: Reader, actor: Actor, command: c.SetOrgPolicy) -> list[Breach]:
    """The live tokens ``command``'s policy would find outside it, for the same actor."""
    with reader.view() as view:
        return policy_breaches(view, Context(actor=actor, now=reader.now()), command)
