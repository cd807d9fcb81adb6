"""The data plane's service: issuing S3 credentials (their secret key shown once, made from
the key file's S3 key) and answering a gateway's check of a signed S3 request.

Who may do what is decided in ``domain`` (``decide_endpoints``, ``s3``); this module brings
the key file to those rules and reads what callers may see.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tokenledger.domain.authority import require_principal_visible, require_token_access
from tokenledger.domain.events import S3CredentialIssued
from tokenledger.domain.model import Actor, EndpointView, S3CredentialView, TrustedEndpointView
from tokenledger.domain.names import check_service_account_id
from tokenledger.domain.s3 import (
    S3Answer,
    check_s3_request,
    default_endpoint,
    find_endpoint,
    secret_key_for,
)
from tokenledger.domain.sigv4 import ReceivedRequest
from tokenledger.errors import NotFound, ValidationError
from tokenledger.projections import SqlLedgerView
from tokenledger.service.commands import CommandResult, preview_first
from tokenledger.service.reading import Reader, valid

if TYPE_CHECKING:
    from tokenledger.service.keys import KeyStore

__all__ = [
    "IssuedS3Credential",
    "check_request",
    "endpoints",
    "get_endpoint",
    "issue_s3_credential",
    "s3_credentials_of",
    "trusted_endpoints_of",
]


@dataclass(frozen=True, slots=True)
class IssuedS3Credential:
    """What the caller is shown, once: the secret key is made again by no one but the ledger."""

    result: CommandResult
    access_key_id: str
    secret_key: str
    account_id: str
    endpoint: EndpointView


def issue_s3_credential(
    reader: Reader,
    execute: Callable[..., CommandResult],
    keys: KeyStore | None,
    actor: Actor,
    *,
    account_id: str,
    endpoint: str | None,
) -> IssuedS3Credential:
    """Record ``S3CredentialIssued`` and make its secret key; with no ``endpoint``, at the
    account's one trusted endpoint (Aruna's default data proxy)."""
    from tokenledger.domain import commands as c  # pydantic loads with the first command

    if keys is None:
        raise ValidationError("this server keeps no signing keys, so no S3 credentials")
    if endpoint is None:
        with _account_view(reader, actor, account_id) as view:
            endpoint = default_endpoint(view, account_id)
    command = c.build(c.IssueS3Credential, account_id=account_id, endpoint=endpoint)
    preview_first(execute, command, actor)  # a dry run derives no secret, writes no key
    # Made before the event is recorded, so that a recorded credential always has its key.
    s3_key = keys.s3_key()
    result = execute(command, actor)
    issued = result.events[0]
    assert isinstance(issued, S3CredentialIssued)
    with reader.view() as view:
        credential = view.s3_credential(issued.access_key_id)
        found = view.endpoint(issued.endpoint_id)
    assert credential is not None
    assert found is not None
    return IssuedS3Credential(
        result=result,
        access_key_id=credential.access_key_id,
        secret_key=secret_key_for(s3_key, credential),
        account_id=credential.account_id,
        endpoint=found,
    )


def check_request(
    reader: Reader, keys: KeyStore | None, endpoint: str, request: ReceivedRequest
) -> S3Answer:
    """The verdict on a request ``endpoint`` received (see ``domain.s3.check_s3_request``)."""
    if keys is None:
        raise ValidationError("this server keeps no signing keys, so no S3 credentials")
    s3_key = keys.ring().s3_key

    def secret_of(credential: S3CredentialView) -> str:
        if s3_key is None:  # no credential was ever issued with this key file
            raise NotFound("this server holds no S3 key")
        return secret_key_for(s3_key, credential)

    with reader.view() as view:
        return check_s3_request(view, endpoint, request, secret_of, reader.now())


# -- reading ----------------------------------------------------------------------------------


def endpoints(reader: Reader) -> list[EndpointView]:
    """Every endpoint in force, by name: public knowledge, like a server's address."""
    with reader.view() as view:
        return list(view.live_endpoints())


def get_endpoint(reader: Reader, ref: str) -> EndpointView:
    with reader.view() as view:
        return find_endpoint(view, ref)


def trusted_endpoints_of(
    reader: Reader, actor: Actor, account_id: str
) -> list[tuple[TrustedEndpointView, EndpointView]]:
    """A service account's trusted endpoints, for whoever may see its tokens."""
    with _account_view(reader, actor, account_id) as view:
        pairs = []
        for trusted in view.trusted_endpoints_of(valid(check_service_account_id, account_id)):
            endpoint = view.endpoint(trusted.endpoint_id)
            assert endpoint is not None
            pairs.append((trusted, endpoint))
        return pairs


def s3_credentials_of(
    reader: Reader, actor: Actor, account_id: str, *, include_revoked: bool = False
) -> list[S3CredentialView]:
    """A service account's S3 credentials (never their secret keys), seen like its tokens."""
    with _account_view(reader, actor, account_id) as view:
        found = view.s3_credentials_of(valid(check_service_account_id, account_id))
    return [c for c in found if include_revoked or not c.revoked]


@contextmanager
def _account_view(reader: Reader, actor: Actor, account_id: str) -> Iterator[SqlLedgerView]:
    """A view of the projections, once ``actor`` is found to see the account's tokens."""
    account_id = valid(check_service_account_id, account_id)
    now = reader.now()
    with reader.view() as view:
        require_principal_visible(view, actor, account_id, now)
        require_token_access(view, actor, account_id, now)
        yield view
