"""TokenLedger: an event-sourced ledger of organizations, accounts, permissions and tokens.

The public API::

    from tokenledger import Actor, IssueToken, Ledger, Level, build

    ledger = Ledger.open("ledger.db")
    result = ledger.execute(build(IssueToken, principal="ci@acme.service.tokenledger"),
                            Actor.operator("alice"))

Everything here is imported when first used, so that ``import tokenledger`` (and the command
line, which starts with it) stays cheap: the service pulls in SQLAlchemy and the drivers.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("tokenledger")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

# name -> the module that defines it
_EXPORTS = {
    # the service
    "Ledger": "tokenledger.service",
    "CommandResult": "tokenledger.service",
    "GrantSource": "tokenledger.service",
    "Verification": "tokenledger.service",
    # the event store
    "EventStore": "tokenledger.store",
    "open_event_store": "tokenledger.store",
    # who acts, and levels
    "Actor": "tokenledger.domain.model",
    "Level": "tokenledger.domain.permissions",
    "Grant": "tokenledger.domain.permissions",
    # commands
    "build": "tokenledger.domain.commands",
    "CreateOrg": "tokenledger.domain.commands",
    "CreateUser": "tokenledger.domain.commands",
    "DisableUser": "tokenledger.domain.commands",
    "AddMember": "tokenledger.domain.commands",
    "RemoveMember": "tokenledger.domain.commands",
    "CreateResource": "tokenledger.domain.commands",
    "DeleteResource": "tokenledger.domain.commands",
    "SetGrant": "tokenledger.domain.commands",
    "CreateRole": "tokenledger.domain.commands",
    "CreateServiceAccount": "tokenledger.domain.commands",
    "SetServiceAccountPermission": "tokenledger.domain.commands",
    "DeleteServiceAccount": "tokenledger.domain.commands",
    "IssueToken": "tokenledger.domain.commands",
    "RevokeToken": "tokenledger.domain.commands",
    "RevokeAllTokens": "tokenledger.domain.commands",
    "IssueClientCredential": "tokenledger.domain.commands",
    "RevokeClientCredential": "tokenledger.domain.commands",
    # errors
    "LedgerError": "tokenledger.errors",
    "ValidationError": "tokenledger.errors",
    "NotFound": "tokenledger.errors",
    "PermissionDenied": "tokenledger.errors",
    "Conflict": "tokenledger.errors",
    "WrongExpectedVersion": "tokenledger.errors",
    "IntegrityViolation": "tokenledger.errors",
    "CorruptEvent": "tokenledger.errors",
    "StorageError": "tokenledger.errors",
    "SchemaOutOfDate": "tokenledger.errors",
}

__all__ = [
    "Actor",
    "AddMember",
    "CommandResult",
    "Conflict",
    "CorruptEvent",
    "CreateOrg",
    "CreateResource",
    "CreateRole",
    "CreateServiceAccount",
    "CreateUser",
    "DeleteResource",
    "DeleteServiceAccount",
    "DisableUser",
    "EventStore",
    "Grant",
    "GrantSource",
    "IntegrityViolation",
    "IssueClientCredential",
    "IssueToken",
    "Ledger",
    "LedgerError",
    "Level",
    "NotFound",
    "PermissionDenied",
    "RemoveMember",
    "RevokeAllTokens",
    "RevokeClientCredential",
    "RevokeToken",
    "SchemaOutOfDate",
    "SetGrant",
    "SetServiceAccountPermission",
    "StorageError",
    "ValidationError",
    "Verification",
    "WrongExpectedVersion",
    "__version__",
    "build",
    "open_event_store",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenledger' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # what type checkers and editors see
    from tokenledger.domain.commands import (
        AddMember,
        CreateOrg,
        CreateResource,
        CreateRole,
        CreateServiceAccount,
        CreateUser,
        DeleteResource,
        DeleteServiceAccount,
        DisableUser,
        IssueClientCredential,
        IssueToken,
        RemoveMember,
        RevokeAllTokens,
        RevokeClientCredential,
        RevokeToken,
        SetGrant,
        SetServiceAccountPermission,
        build,
    )
    from tokenledger.domain.model import Actor
    from tokenledger.domain.permissions import Grant, Level
    from tokenledger.errors import (
        Conflict,
        CorruptEvent,
        IntegrityViolation,
        LedgerError,
        NotFound,
        PermissionDenied,
        SchemaOutOfDate,
        StorageError,
        ValidationError,
        WrongExpectedVersion,
    )
    from tokenledger.service import CommandResult, GrantSource, Ledger, Verification
    from tokenledger.store import EventStore, open_event_store
