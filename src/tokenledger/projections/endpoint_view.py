"""The ``LedgerView`` questions about the data plane (endpoints, trusted endpoints, S3
credentials), over their projection tables; ``SqlLedgerView`` answers them through this
mixin."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.domain.model import EndpointView, S3CredentialView, TrustedEndpointView
from tokenledger.projections.schema import endpoints, s3_credentials, trusted_endpoints

__all__ = ["EndpointViews"]


def _endpoint(row: Any) -> EndpointView:
    endpoint_id, name, url, created_at, deleted_at = row
    return EndpointView(
        endpoint_id=endpoint_id, name=name, url=url, created_at=created_at, deleted_at=deleted_at
    )


def _trusted(row: Any) -> TrustedEndpointView:
    account_id, endpoint_id, trusted_at = row
    return TrustedEndpointView(
        account_id=account_id, endpoint_id=endpoint_id, trusted_at=trusted_at
    )


def _credential(row: Any) -> S3CredentialView:
    access_key_id, account_id, endpoint_id, issued_at, revoked_at, reason = row
    return S3CredentialView(
        access_key_id=access_key_id,
        account_id=account_id,
        endpoint_id=endpoint_id,
        issued_at=issued_at,
        expires_at=None,
        revoked_at=revoked_at,
        revoked_reason=reason,
    )


class EndpointViews:
    connection: Connection

    def endpoint(self, endpoint_id: str) -> EndpointView | None:
        query = sa.select(endpoints).where(endpoints.c.endpoint_id == endpoint_id)
        row = self.connection.execute(query).first()
        return None if row is None else _endpoint(row)

    def endpoint_named(self, name: str) -> EndpointView | None:
        query = sa.select(endpoints).where(
            endpoints.c.name == name, endpoints.c.deleted_at.is_(None)
        )
        row = self.connection.execute(query).first()
        return None if row is None else _endpoint(row)

    def live_endpoints(self) -> list[EndpointView]:
        query = (
            sa.select(endpoints).where(endpoints.c.deleted_at.is_(None)).order_by(endpoints.c.name)
        )
        return [_endpoint(row) for row in self.connection.execute(query)]

    def trusted_endpoints_of(self, account_id: str) -> list[TrustedEndpointView]:
        query = (
            sa.select(trusted_endpoints)
            .where(trusted_endpoints.c.account_id == account_id)
            .order_by(trusted_endpoints.c.trusted_at, trusted_endpoints.c.endpoint_id)
        )
        return [_trusted(row) for row in self.connection.execute(query)]

    def accounts_trusting(self, endpoint_id: str) -> list[TrustedEndpointView]:
        query = (
            sa.select(trusted_endpoints)
            .where(trusted_endpoints.c.endpoint_id == endpoint_id)
            .order_by(trusted_endpoints.c.account_id)
        )
        return [_trusted(row) for row in self.connection.execute(query)]

    def s3_credential(self, access_key_id: str) -> S3CredentialView | None:
        query = sa.select(s3_credentials).where(s3_credentials.c.access_key_id == access_key_id)
        row = self.connection.execute(query).first()
        return None if row is None else _credential(row)

    def s3_credentials_of(self, account_id: str) -> list[S3CredentialView]:
        query = (
            sa.select(s3_credentials)
            .where(s3_credentials.c.account_id == account_id)
            .order_by(s3_credentials.c.issued_at, s3_credentials.c.access_key_id)
        )
        return [_credential(row) for row in self.connection.execute(query)]

    def s3_credentials_at(self, endpoint_id: str) -> list[S3CredentialView]:
        query = (
            sa.select(s3_credentials)
            .where(
                s3_credentials.c.endpoint_id == endpoint_id, s3_credentials.c.revoked_at.is_(None)
            )
            .order_by(s3_credentials.c.access_key_id)
        )
        return [_credential(row) for row in self.connection.execute(query)]
