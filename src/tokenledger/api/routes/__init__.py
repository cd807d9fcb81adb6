"""The API's routers, one module per kind of thing managed."""

from __future__ import annotations

from tokenledger.api.routes import (
    audit,
    oauth,
    orgs,
    resources,
    service_accounts,
    system,
    tokens,
    users,
)

__all__ = [
    "audit",
    "oauth",
    "orgs",
    "resources",
    "service_accounts",
    "system",
    "tokens",
    "users",
]
