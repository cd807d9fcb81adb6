"""The client side of TokenLedger: talk to a server instead of a database.

``Client`` makes the management calls (tokens, service accounts, client credentials, audit);
``Auth`` holds the credential they are made with (a fixed token, client credentials, or the
session ``tokenledger auth login`` saved) and renews its access token before it expires.
``Verifier`` answers "is this token valid, and may it do this?" in process, following the
log from a database or a server's event stream.
See ``docs/client.md``.

Importing this package costs nothing: each name is imported when first used, so that the
command line can name the client without loading HTTP machinery it may not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenledger.client.auth import Auth
    from tokenledger.client.client import Client
    from tokenledger.client.credentials import (
        Credentials,
        credentials_path,
        load_credentials,
        remove_session,
        save_credentials,
    )
    from tokenledger.client.results import IssuedCredential, IssuedToken, Receipt
    from tokenledger.client.verifier import Verifier

__all__ = [
    "Auth",
    "Client",
    "Credentials",
    "IssuedCredential",
    "IssuedToken",
    "Receipt",
    "Verifier",
    "credentials_path",
    "load_credentials",
    "remove_session",
    "save_credentials",
]

_WHERE = {
    "Auth": "auth",
    "Client": "client",
    "Credentials": "credentials",
    "credentials_path": "credentials",
    "load_credentials": "credentials",
    "remove_session": "credentials",
    "save_credentials": "credentials",
    "IssuedCredential": "results",
    "IssuedToken": "results",
    "Receipt": "results",
    "Verifier": "verifier",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
