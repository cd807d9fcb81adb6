"""``/v2/log/*``: the log's signed checkpoints, its verifier key and its proofs.

The key, the checkpoint and consistency proofs are public, like the JWKS and the head
position ``/healthz`` reports: they are hashes and a size, and reveal no event. An inclusion
proof carries the event's bytes, so it is given to whoever may see that event
(``service.audit.visible_events``, the rule of ``/v2/audit``), and any other position is
answered 404 as an event the caller may not see.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from tokenledger.api.deps import ERRORS, State
from tokenledger.api.security import CurrentActor
from tokenledger.api.state import ApiState
from tokenledger.errors import StorageError
from tokenledger.service.log_proofs import (
    LogSigner,
    consistency,
    inclusion,
    log_signer,
    sign_checkpoint,
    visible_records,
)

__all__ = ["router"]

router = APIRouter(tags=["log"], responses=ERRORS)

#: Beyond any size a log reaches, and within what a database's bigint holds.
_MAX = 2**62

_Size = Annotated[
    int | None, Query(ge=0, le=_MAX, description="The tree's size (default: the log's).")
]


def signer(state: ApiState) -> LogSigner:
    keys = state.settings.keys
    if keys is None:
        raise StorageError("this server has no key file: it signs no checkpoints")
    return log_signer(keys, state.settings.issuer)


def verifier_key_text(state: ApiState) -> PlainTextResponse:
    return PlainTextResponse(
        signer(state).verifier_key + "\n", headers={"Cache-Control": "public, max-age=60"}
    )


@router.get("/v2/log/key", response_class=PlainTextResponse)
def log_key(state: State) -> PlainTextResponse:
    """The verifier key of the log's checkpoints: ``<origin>+<key ID>+<base64 key>``."""
    return verifier_key_text(state)


@router.get("/v2/log/checkpoint")
def checkpoint(state: State) -> dict[str, Any]:
    """A signed checkpoint of the log now: ``{origin, size, root_hash, note}``, the note a
    C2SP signed note."""
    return sign_checkpoint(state.ledger.store, signer(state)).as_json()


@router.get("/v2/log/proof/inclusion")
def inclusion_proof(
    state: State,
    actor: CurrentActor,
    position: Annotated[int, Query(ge=1, le=_MAX, description="The event's position.")],
    size: _Size = None,
) -> dict[str, Any]:
    """The inclusion proof of the event at ``position`` (leaf index ``position - 1``) in the
    tree of ``size``, with the event's canonical bytes (``entry``, base64)."""
    with visible_records(state.ledger, actor) as may_see:
        return inclusion(state.ledger.store, position, size, may_see=may_see)


@router.get("/v2/log/proof/consistency")
def consistency_proof(
    state: State,
    old_size: Annotated[int, Query(alias="from", ge=0, le=_MAX, description="The older size.")],
    new_size: Annotated[
        int | None, Query(alias="to", ge=0, le=_MAX, description="The newer size.")
    ] = None,
) -> dict[str, Any]:
    """The consistency proof from the tree of ``from`` to the tree of ``to``."""
    return consistency(state.ledger.store, old_size, new_size)
