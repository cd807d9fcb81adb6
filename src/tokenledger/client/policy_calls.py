"""Rotation's and orgs' token policies' calls for ``RemoteLedger`` (the command line's
``--server`` mode), with the same argument and result types as ``service.Ledger``'s."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from tokenledger.client.client import Client
from tokenledger.client.data_plane import Route
from tokenledger.client.results import convert
from tokenledger.client.urls import path_segment
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor, OrgPolicyView
from tokenledger.domain.org_policy import Breach

__all__ = ["PolicyCalls", "policy_route"]


def _seconds(duration: timedelta) -> str:
    # Commands hold whole seconds (parse_duration's units): the server parses them back.
    return f"{int(duration.total_seconds())}s"


def _policy_body(command: c.SetOrgPolicy, *, dry_run: bool) -> dict[str, Any]:
    admin = command.max_admin_lifetime
    return {
        "max_lifetime": {kind: _seconds(d) for kind, d in command.max_lifetime.items()},
        "require_expiry": command.require_expiry,
        "max_admin_lifetime": _seconds(admin) if admin is not None else None,
        "max_live_tokens": command.max_live_tokens,
        "existing": command.existing,
        "dry_run": dry_run,
    }


def _overlap(overlap: timedelta) -> dict[str, str]:
    return {"overlap": "0" if overlap == timedelta(0) else _seconds(overlap)}


def policy_route(command: c.Command) -> Route | None:
    """The call a rotation or a policy command makes, or None for another command."""
    match command:
        case c.RotateToken():
            path = f"/v2/tokens/{path_segment(command.token_id)}/rotate"
            return Route("POST", path, _overlap(command.overlap))
        case c.RotateClientCredential():
            account = path_segment(command.account_id) if command.account_id else "-"
            path = f"/v2/service_accounts/{account}/credentials/"
            path += f"{path_segment(command.client_id)}/rotate"
            return Route("POST", path, _overlap(command.overlap))
        case c.SetOrgPolicy():
            path = f"/v2/orgs/{path_segment(command.org)}/policy"
            return Route("PUT", path, _policy_body(command, dry_run=False))
        case c.ClearOrgPolicy():
            return Route("DELETE", f"/v2/orgs/{path_segment(command.org)}/policy")
    return None


def _duration(text: str) -> timedelta:
    return c.parse_duration(text)


class _Policy(msgspec.Struct):
    org: str
    max_lifetime: dict[str, str]
    require_expiry: bool
    max_admin_lifetime: str | None
    max_live_tokens: int | None
    set_at: datetime | None


class _DryRun(msgspec.Struct):
    breaches: list[Breach]


class PolicyCalls:
    client: Client

    def org_policy(self, actor: Actor, org: str) -> OrgPolicyView | None:
        answer = self.client.call("GET", f"/v2/orgs/{path_segment(org)}/policy")
        if answer is None:
            return None
        found = convert(answer, _Policy, "an org's policy")
        admin = found.max_admin_lifetime
        return OrgPolicyView(
            org=found.org,
            max_lifetime={kind: _duration(text) for kind, text in found.max_lifetime.items()},
            require_expiry=found.require_expiry,
            max_admin_lifetime=_duration(admin) if admin is not None else None,
            max_live_tokens=found.max_live_tokens,
            set_at=found.set_at,
        )

    def policy_dry_run(self, actor: Actor, command: c.SetOrgPolicy) -> list[Breach]:
        path = f"/v2/orgs/{path_segment(command.org)}/policy"
        answer = self.client.call("PUT", path, json=_policy_body(command, dry_run=True))
        return convert(answer, _DryRun, "a policy's dry run").breaches
