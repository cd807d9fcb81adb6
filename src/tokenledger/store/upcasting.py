"""Reading old event versions as the current shape.

An event's payload is stored with the ``schema_version`` its class had when it
was recorded, and is never rewritten. When a class's shape changes, its
``SCHEMA_VERSION`` goes up and an upcaster from the previous version is
registered here; a reader takes an old payload through the chain of upcasters
(v1 -> v2 -> ... -> current) before decoding it.

Upcasters work on the decoded JSON object (a dict) so that they need no class
of the old shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["UPCASTERS", "upcast", "upcaster"]

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]

#: (event type, version it reads) -> function producing the next version.
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    def register(function: Upcaster) -> Upcaster:
        key = (event_type, from_version)
        if key in UPCASTERS:
            raise ValueError(f"two upcasters for {event_type} v{from_version}")
        UPCASTERS[key] = function
        return function

    return register


def upcast(event_type: str, version: int, target: int, payload: Payload) -> Payload:
    """Take ``payload`` from ``version`` to ``target`` one step at a time."""
    while version < target:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise ValueError(f"no upcaster for {event_type} v{version} -> v{version + 1}")
        payload = step(payload)
        version += 1
    return payload


@upcaster("TokenIssued", 1)
def _token_issued_v1(payload: Payload) -> Payload:
    # Version 1 did not record which token the issuer acted through; tokens
    # issued then are shown as issued by the operator or an unknown credential.
    return {**payload, "issued_by": None}


@upcaster("TokenRevoked", 1)
def _token_revoked_v1(payload: Payload) -> Payload:
    # Version 1 did not record a user's token's orgs: such a revocation is found by its
    # token, principal and correlation id, not under the orgs.
    return {**payload, "orgs": []}
