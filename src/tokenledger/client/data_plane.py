"""The data plane's calls for ``RemoteLedger`` (the command line's ``--server`` mode):
endpoints, a service account's trusted endpoints and its S3 credentials, with the same
argument and result types as ``service.Ledger``'s."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import msgspec

from tokenledger.client.client import Client
from tokenledger.client.results import convert, dry_run_call, receipt_of
from tokenledger.client.urls import path_segment
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor, EndpointView, S3CredentialView, TrustedEndpointView
from tokenledger.service.commands import CommandResult
from tokenledger.service.s3 import IssuedS3Credential

__all__ = ["DataPlaneCalls", "data_plane_route"]


class Route(NamedTuple):
    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, Any] | None = None


def data_plane_route(command: c.Command) -> Route | None:
    """The call a data-plane command makes, or None for another command."""
    match command:
        case c.TrustEndpoint():
            path = f"/v2/service_accounts/{path_segment(command.account_id)}/trusted_endpoints"
            return Route("POST", path, {"endpoint": command.endpoint})
        case c.UntrustEndpoint():
            account, endpoint = path_segment(command.account_id), path_segment(command.endpoint)
            path = f"/v2/service_accounts/{account}/trusted_endpoints/{endpoint}"
            return Route("DELETE", path, params={"reason": command.reason})
        case c.RevokeS3Credential() if command.access_key_id is not None:
            account, key = path_segment(command.account_id), path_segment(command.access_key_id)
            path = f"/v2/service_accounts/{account}/s3_credentials/{key}"
            return Route("DELETE", path, params={"reason": command.reason})
        case c.RevokeS3Credential():
            assert command.endpoint is not None
            account, endpoint = path_segment(command.account_id), path_segment(command.endpoint)
            path = f"/v2/user/s3_credentials/{account}/s3_credentials/{endpoint}/revoke"
            return Route("PATCH", path, params={"reason": command.reason})
    return None


class _Endpoint(msgspec.Struct):
    id: str
    name: str
    url: str
    created_at: datetime


class _TrustedEndpoint(_Endpoint):
    trusted_at: datetime


class _Credential(msgspec.Struct):
    access_key_id: str
    account_id: str
    endpoint_id: str
    issued_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None


class _Issued(_Credential):
    secret_access_key: str
    endpoint_url: str


def _endpoint(shown: _Endpoint) -> EndpointView:
    return EndpointView(
        endpoint_id=shown.id, name=shown.name, url=shown.url, created_at=shown.created_at
    )


def _credential(shown: _Credential) -> S3CredentialView:
    return S3CredentialView(
        access_key_id=shown.access_key_id,
        account_id=shown.account_id,
        endpoint_id=shown.endpoint_id,
        issued_at=shown.issued_at,
        expires_at=None,
        revoked_at=shown.revoked_at,
        revoked_reason=shown.revoked_reason,
    )


class DataPlaneCalls:
    """The data plane's reading calls and S3 credentials' issue, over HTTP."""

    client: Client

    def endpoints(self) -> list[EndpointView]:
        answer = self.client.call("GET", "/v2/endpoints")
        return [_endpoint(e) for e in convert(answer, list[_Endpoint], "endpoints")]

    def get_endpoint(self, ref: str) -> EndpointView:
        answer = self.client.call("GET", f"/v2/endpoints/{path_segment(ref)}")
        return _endpoint(convert(answer, _Endpoint, "an endpoint"))

    def trusted_endpoints_of(
        self, actor: Actor, account_id: str
    ) -> list[tuple[TrustedEndpointView, EndpointView]]:
        path = f"/v2/service_accounts/{path_segment(account_id)}/trusted_endpoints"
        shown = convert(self.client.call("GET", path), list[_TrustedEndpoint], "endpoints")
        return [
            (
                TrustedEndpointView(
                    account_id=account_id, endpoint_id=e.id, trusted_at=e.trusted_at
                ),
                _endpoint(e),
            )
            for e in shown
        ]

    def s3_credentials_of(
        self, actor: Actor, account_id: str, *, include_revoked: bool = False
    ) -> list[S3CredentialView]:
        path = f"/v2/service_accounts/{path_segment(account_id)}/s3_credentials"
        answer = self.client.call("GET", path, params={"include_revoked": include_revoked})
        return [_credential(s) for s in convert(answer, list[_Credential], "S3 credentials")]

    def issue_s3_credential(
        self,
        actor: Actor,
        keys: object,
        *,
        account_id: str,
        endpoint: str,
        correlation_id: str | None = None,
        dry_run: bool = False,
    ) -> IssuedS3Credential:
        path = f"/v2/service_accounts/{path_segment(account_id)}/s3_credentials"
        headers = {"X-Correlation-ID": correlation_id} if correlation_id is not None else None
        if dry_run:
            dry_run_call(self.client, "POST", path, json={"endpoint": endpoint}, headers=headers)
        answer = self.client.call("POST", path, json={"endpoint": endpoint}, headers=headers)
        shown = convert(answer, _Issued, "S3 credentials")
        receipt = receipt_of(answer)
        result = CommandResult(
            command_id=receipt.command_id or "",
            correlation_id=receipt.correlation_id,
            events=receipt.events,
            records=(),
            outcome=receipt.outcome,
        )
        return IssuedS3Credential(
            result=result,
            access_key_id=shown.access_key_id,
            secret_key=shown.secret_access_key,
            account_id=shown.account_id,
            endpoint=self.get_endpoint(shown.endpoint_id),
        )
