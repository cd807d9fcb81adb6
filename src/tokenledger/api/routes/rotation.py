"""Rotation with overlap: ``POST /v2/tokens/{token_id}/rotate`` and
``POST /v2/service_accounts/{account_id}/credentials/{client_id}/rotate``.

Each issues a successor (its secret is in the answer, once) and brings the old one's expiry
forward to the overlap's end (``overlap``: a duration such as ``24h``, or ``0``; default 24h,
at most 30d). The decision is ``domain.decide_rotation``.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import Field

from tokenledger.api.deps import ERRORS, Correlation, State, command_fields, run
from tokenledger.api.schemas import (
    CommandOut,
    CredentialOut,
    TokenOut,
    _In,
    credential_out,
    token_out,
)
from tokenledger.api.security import CurrentActor
from tokenledger.domain import commands as c
from tokenledger.domain.events import ClientCredentialRotated, TokenRotated
from tokenledger.domain.model import ClientCredentialView
from tokenledger.domain.state import issued_token

__all__ = ["router"]

router = APIRouter(tags=["rotation"], responses=ERRORS)


class RotateIn(_In):
    overlap: str | None = Field(
        default=None,
        max_length=40,
        description="How long the old one keeps working beside its successor (24h, 7d; 0: "
        "it expires now). Default 24h, at most 30d.",
    )


class RotatedTokenOut(TokenOut, CommandOut):
    """The successor, its secret (shown once), and the rotated token's new expiry."""

    secret: str = Field(description="Shown once: the ledger keeps only its SHA-256 hash.")
    correlation_id: str
    rotated_token_id: str
    rotated_expires_at: datetime


class RotatedCredentialOut(CredentialOut, CommandOut):
    """The successor credential, its secret (shown once), and the rotated one's new expiry."""

    client_secret: str = Field(description="Shown once: the ledger keeps only its SHA-256 hash.")
    correlation_id: str
    rotated_client_id: str
    rotated_expires_at: datetime


def _overlap_fields(body: RotateIn | None) -> dict[str, object]:
    if body is None or body.overlap is None:
        return {}
    return {"overlap": c.parse_overlap(body.overlap)}


@router.post("/v2/tokens/{token_id}/rotate", status_code=201, response_model=RotatedTokenOut)
def rotate_token(
    token_id: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    body: RotateIn | None = None,
) -> RotatedTokenOut:
    """Issue a successor with the token's principal, grants, name and lifetime; the token
    expires when the overlap ends (as ``tokenledger tokens rotate``)."""
    command = c.build(c.RotateToken, token_id=token_id, **_overlap_fields(body))
    result = run(state, command, actor, correlation, response)
    issued, secret = result.issued, result.secret
    rotated = next(e for e in result.events if isinstance(e, TokenRotated))
    assert issued is not None  # a rotation issues exactly one token, with its secret
    assert secret is not None
    return RotatedTokenOut(
        **token_out(issued_token(issued), issued.issued_at).model_dump(),
        secret=secret,
        **command_fields(result),
        rotated_token_id=rotated.token_id,
        rotated_expires_at=rotated.expires_at,
    )


@router.post(
    "/v2/service_accounts/{account_id}/credentials/{client_id}/rotate",
    status_code=201,
    response_model=RotatedCredentialOut,
)
def rotate_credential(
    account_id: str,
    client_id: str,
    actor: CurrentActor,
    state: State,
    correlation: Correlation,
    response: Response,
    body: RotateIn | None = None,
) -> RotatedCredentialOut:
    """Issue a successor credential (same account, name and lifetime); both secrets work
    until the overlap ends. The account id ``-`` stands for whichever account holds it."""
    command = c.build(
        c.RotateClientCredential,
        client_id=client_id,
        account_id=None if account_id == "-" else account_id,
        **_overlap_fields(body),
    )
    result = run(state, command, actor, correlation, response)
    issued = result.outcome.credential_issued
    rotated = next(e for e in result.events if isinstance(e, ClientCredentialRotated))
    assert issued is not None  # a rotation issues exactly one credential, with its secret
    assert result.secret is not None
    view = ClientCredentialView(
        client_id=issued.client_id,
        account_id=issued.account_id,
        name=issued.name,
        issued_at=issued.issued_at,
        expires_at=issued.expires_at,
    )
    return RotatedCredentialOut(
        **credential_out(view, issued.issued_at).model_dump(),
        client_secret=result.secret,
        **command_fields(result),
        rotated_client_id=rotated.client_id,
        rotated_expires_at=rotated.expires_at,
    )
