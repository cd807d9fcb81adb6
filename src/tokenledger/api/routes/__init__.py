"""The API's routers, one module per kind of thing managed."""

from __future__ import annotations

from tokenledger.api.routes import (
    audit,
    endpoints,
    events,
    identity,
    login,
    oauth,
    orgs,
    resources,
    roles,
    service_accounts,
    sessions,
    system,
    tokens,
    unused,
    users,
)

__all__ = [
    "audit",
    "endpoints",
    "events",
    "identity",
    "login",
    "oauth",
    "orgs",
    "resources",
    "roles",
    "service_accounts",
    "sessions",
    "system",
    "tokens",
    "unused",
    "users",
]
