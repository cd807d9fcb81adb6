"""The API's routers, one module per kind of thing managed."""

from __future__ import annotations

from tokenledger.api.routes import (
    audit,
    endpoints,
    events,
    identity,
    login,
    oauth,
    org_policies,
    orgs,
    resources,
    roles,
    rotation,
    service_accounts,
    sessions,
    suspension,
    system,
    token_selection,
    tokens,
    unused,
    users,
    webhooks,
)

__all__ = [
    "audit",
    "endpoints",
    "events",
    "identity",
    "login",
    "oauth",
    "org_policies",
    "orgs",
    "resources",
    "roles",
    "rotation",
    "service_accounts",
    "sessions",
    "suspension",
    "system",
    "token_selection",
    "tokens",
    "unused",
    "users",
    "webhooks",
]
