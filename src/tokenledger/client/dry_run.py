"""A dry run over HTTP, as both ends speak it.

A client asks for one with ``?dry_run=true``. A server that does not know the parameter would
ignore it and make the change, so the client asks first whether the server honours it (the
``features`` it publishes at ``/healthz``, once per client) and sends nothing otherwise; and
each dry-run answer must carry ``TokenLedger-Dry-Run: true``, or the client says that the
change may have been made rather than show the answer as a preview.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tokenledger.errors import LedgerError, ValidationError

__all__ = [
    "DRY_RUN_FEATURE",
    "DRY_RUN_HEADER",
    "DRY_RUN_PARAMETER",
    "ServerFeatures",
    "require_confirmed",
]

DRY_RUN_PARAMETER = "dry_run"
#: In ``/healthz``'s ``features``: the server honours ``?dry_run=true`` on every mutating call.
DRY_RUN_FEATURE = "dry_run"
#: On every dry-run answer: the call was previewed, not carried out.
DRY_RUN_HEADER = "TokenLedger-Dry-Run"


class ServerFeatures:
    """What a server says of itself (``GET /healthz``: ``version``, ``features``); a server
    that says nothing (an older one) has no feature."""

    def __init__(self, server: str, answer: Any) -> None:
        self.server = server
        body = answer if isinstance(answer, Mapping) else {}
        version, features = body.get("version"), body.get("features")
        # Shown in a one-line error: only printable characters, and not many.
        text = version if isinstance(version, str) else ""
        self.version = "".join(c if c.isprintable() else "?" for c in text[:40]) or "unknown"
        listed = features if isinstance(features, list) else []
        self.features = frozenset(f for f in listed if isinstance(f, str))

    def require_dry_run(self) -> None:
        if DRY_RUN_FEATURE not in self.features:
            raise ValidationError(
                f"the server at {self.server} does not support dry runs "
                f"(version {self.version}): nothing was sent"
            )


def require_confirmed(server: str, headers: Mapping[str, str]) -> None:
    """A dry run's answer says it was one; without the header, the server may have made
    the change."""
    if headers.get(DRY_RUN_HEADER, "").strip().lower() != "true":
        raise LedgerError(
            f"the server at {server} answered a dry run without {DRY_RUN_HEADER}: it may have "
            "made the change; check the log"
        )
