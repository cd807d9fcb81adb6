"""Dyff's two built-in roles, ``Admin`` and ``AuditDeveloper``, as the ledger's grants.

``tokens create --role Admin`` (or ``AuditDeveloper``) names one of them. Their names are
capitalised, as Dyff spells them, so that they never collide with an org's roles (whose
names are lowercase). What each means in Dyff, and here:

``Admin``
    Dyff: any operation on any resource in any account. Here: admin on every org the
    principal belongs to (a service account: admin on its project).
``AuditDeveloper``
    Dyff: full permissions within the associated account, read permissions on all
    resources, consume permissions on public resources. Here: everything the principal may
    do now, at its own levels, and read on every org it belongs to (a service account:
    its one permission). The ledger has no public resources; reading is Dyff's consume.

The ledger's rule holds as for any grant: a token never exceeds its principal, so where the
principal's own permission is lower than a role's grant, the token is refused in one line
("grant acme:admin exceeds ...'s permission") rather than silently narrowed.
"""

from __future__ import annotations

from tokenledger.domain.authority import principal_grants
from tokenledger.domain.model import LedgerView, ServiceAccountView
from tokenledger.domain.permissions import Grant, Level
from tokenledger.errors import ValidationError

__all__ = ["BUILTIN_ROLES", "builtin_role_grants", "is_builtin_role"]

ADMIN = "Admin"
AUDIT_DEVELOPER = "AuditDeveloper"

#: Dyff's built-in roles, by the names Dyff gives them.
BUILTIN_ROLES = (ADMIN, AUDIT_DEVELOPER)


def is_builtin_role(role: str) -> bool:
    return role in BUILTIN_ROLES


def builtin_role_grants(
    view: LedgerView, role: str, principal: str, account: ServiceAccountView | None
) -> tuple[Grant, ...]:
    """The grants ``role`` asks for on behalf of ``principal`` (checked against what the
    principal may do by the decision, as every requested grant is)."""
    if account is not None:
        project = account.permission.resource
        return (Grant(project, Level.ADMIN.label),) if role == ADMIN else (account.permission,)
    orgs = sorted(view.memberships(principal))
    if not orgs:
        raise ValidationError(f"role {role} grants nothing: {principal} belongs to no org")
    if role == ADMIN:
        return tuple(Grant(org, Level.ADMIN.label) for org in orgs)
    return (*principal_grants(view, principal), *(Grant(org, Level.READ.label) for org in orgs))
