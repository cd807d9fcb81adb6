"""What a role holds: its policies (grants) and its keys, for whoever may see them
(``domain.authority`` decides; this module reads)."""

from __future__ import annotations

from tokenledger.domain.authority import authorise_role_management, require_reader
from tokenledger.domain.model import Actor, TokenView, role_principal
from tokenledger.domain.permissions import Grant
from tokenledger.errors import NotFound
from tokenledger.projections import SqlLedgerView
from tokenledger.service.reading import Reader, valid, valid_org

__all__ = ["role_grants", "role_keys"]


def role_grants(reader: Reader, actor: Actor, org: str, role: str) -> tuple[Grant, ...]:
    """The role's policies, for whoever may list the org's roles."""
    org, role = valid_org(org), _valid_role(role)
    now = reader.now()
    with reader.view() as view:
        require_reader(view, actor, org, now, f"list the roles of {org}")
        return _existing(view, org, role)


def role_keys(
    reader: Reader, actor: Actor, org: str, role: str, *, include_inactive: bool = False
) -> list[TokenView]:
    """The role's keys (never their secrets), for whoever may manage the org's roles."""
    org, role = valid_org(org), _valid_role(role)
    now = reader.now()
    with reader.view() as view:
        authorise_role_management(view, actor, org, now, f"list the keys of role {role}")
        _existing(view, org, role)
        keys = view.tokens_of(role_principal(org, role))
    return [k for k in keys if include_inactive or k.live(now)]


def _existing(view: SqlLedgerView, org: str, role: str) -> tuple[Grant, ...]:
    grants = view.role(org, role)
    if grants is None:
        raise NotFound(f"no role {role} in org {org}")
    return grants


def _valid_role(value: str) -> str:
    from tokenledger.domain.names import check_name

    return valid(lambda v: check_name(v, "role name"), value)
