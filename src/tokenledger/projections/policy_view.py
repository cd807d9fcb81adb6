"""The ``LedgerView`` questions about orgs' token policies and rotations, over their
projection tables; ``SqlLedgerView`` answers them through this mixin."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tokenledger.domain.model import OrgPolicyView
from tokenledger.projections.schema import org_policies, rotations

__all__ = ["PolicyViews"]

_lifetimes = msgspec.json.Decoder(dict[str, int])


class PolicyViews:
    connection: Connection

    def org_policy(self, org: str) -> OrgPolicyView | None:
        query = sa.select(org_policies).where(org_policies.c.org == org)
        row = self.connection.execute(query).first()
        if row is None:
            return None
        _org, lifetimes, require_expiry, admin, live, set_at = row
        return OrgPolicyView(
            org=org,
            max_lifetime={
                kind: timedelta(seconds=seconds)
                for kind, seconds in sorted(_lifetimes.decode(lifetimes).items())
            },
            require_expiry=bool(require_expiry),
            max_admin_lifetime=timedelta(seconds=admin) if admin is not None else None,
            max_live_tokens=live,
            set_at=set_at,
        )

    def successor_of(self, rotated_id: str) -> str | None:
        query = sa.select(rotations.c.successor_id).where(rotations.c.rotated_id == rotated_id)
        return self.connection.execute(query).scalar_one_or_none()

    def predecessor_of(self, successor_id: str) -> str | None:
        query = sa.select(rotations.c.rotated_id).where(rotations.c.successor_id == successor_id)
        return self.connection.execute(query).scalars().first()
