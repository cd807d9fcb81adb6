"""The projection tables: current state, rebuilt only from events.

Declared on the event store's ``metadata`` so that one ``MetaData`` describes
the whole database; the Alembic revision ``0002`` creates what is declared
here (written out by hand there, as every revision is).

Identifier columns (orgs, emails, resource paths, token ids, ...) compare
bytewise on both backends: SQLite's default ``BINARY`` collation already does,
and on PostgreSQL they are declared ``COLLATE "C"``. Two things rely on it:

* "below ``path``" is the index range ``path + '/' <= resource < path + '0'``
  (``'/'`` is 0x2F and ``'0'`` 0x30, so exactly the strings that start with
  ``path + '/'`` fall in it, whatever characters paths may hold); under a
  linguistic collation such as ``en_US.UTF-8`` punctuation is ignored at the
  first level and that range would be wrong;
* listings come back in the same order from SQLite and PostgreSQL.

Grant lists are stored as the msgspec JSON text of ``tuple[Grant, ...]``.
"""

from __future__ import annotations

import sqlalchemy as sa

from tokenledger.store.schema import UTCDateTime, metadata

__all__ = [
    "TEMPORAL_TABLES",
    "account_suspensions",
    "audit_index",
    "checkpoints",
    "client_credentials",
    "endpoints",
    "held_grants",
    "held_memberships",
    "held_permissions",
    "held_roles",
    "held_users",
    "identity_providers",
    "issuer_trusts",
    "memberships",
    "metadata",
    "org_policies",
    "orgs",
    "resources",
    "roles",
    "rotations",
    "s3_credentials",
    "service_accounts",
    "session_refresh_tokens",
    "sessions",
    "token_expiries",
    "token_grants",
    "token_suspensions",
    "token_uses",
    "tokens",
    "trusted_endpoints",
    "user_grants",
    "users",
    "webhooks",
]


def _identifier(length: int = 200) -> sa.types.TypeEngine[str]:
    """A string compared bytewise on every backend (see the module docstring).

    200 characters: every identifier also appears inside a stream id, which the
    event log bounds at 200.
    """
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


_LEVEL = sa.String(20)
_KIND = sa.String(100)

orgs = sa.Table(
    "orgs",
    metadata,
    sa.Column("org", _identifier(), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("email", _identifier(), primary_key=True),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("disabled_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # The Dyff account id ``accounts create`` gave the user (NULL for other users).
    sa.Column("account_id", _identifier(32), nullable=True),
)
sa.Index("ix_users_account_id", users.c.account_id, unique=True)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("org", _identifier(), primary_key=True),
    sa.Column("email", _identifier(), primary_key=True),
    sa.Column("role", _identifier(), nullable=False),
)
sa.Index("ix_memberships_email", memberships.c.email)

resources = sa.Table(
    "resources",
    metadata,
    sa.Column("path", _identifier(), primary_key=True),
    sa.Column("org", _identifier(), nullable=False),
    sa.Column("parent", _identifier(), nullable=True),
    sa.Column("kind", _KIND, nullable=False),
    sa.Column("depth", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
sa.Index("ix_resources_parent", resources.c.parent)
sa.Index("ix_resources_org", resources.c.org)

# A resource's license and data class (None until set), after the columns revision 0002
# made: revision 0012 adds them at the end of the table, as here.
resources.append_column(sa.Column("license", sa.String(100), nullable=True))
resources.append_column(sa.Column("data_class", sa.String(20), nullable=True))

roles = sa.Table(
    "roles",
    metadata,
    sa.Column("org", _identifier(), primary_key=True),
    sa.Column("role", _identifier(), primary_key=True),
    sa.Column("grants", sa.Text, nullable=False),
)

user_grants = sa.Table(
    "user_grants",
    metadata,
    sa.Column("email", _identifier(), primary_key=True),
    sa.Column("resource", _identifier(), primary_key=True),
    sa.Column("level", _LEVEL, nullable=False),
)
sa.Index("ix_user_grants_resource", user_grants.c.resource)

service_accounts = sa.Table(
    "service_accounts",
    metadata,
    sa.Column("account_id", _identifier(), primary_key=True),
    sa.Column("org", _identifier(), nullable=False),
    sa.Column("name", _identifier(), nullable=False),
    sa.Column("resource", _identifier(), nullable=False),
    sa.Column("level", _LEVEL, nullable=False),
    sa.Column("deleted", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
sa.Index("ix_service_accounts_resource", service_accounts.c.resource)
sa.Index("ix_service_accounts_org", service_accounts.c.org)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("token_id", _identifier(), primary_key=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("principal", _identifier(), nullable=False),
    sa.Column("kind", _KIND, nullable=False),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("grants", sa.Text, nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("parent_id", _identifier(), nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("revoked_reason", sa.String(100), nullable=True),
    # The token's life in the log, for questions about a past moment
    # (``projections.temporal_view``): the positions of its issue and of its first
    # revocation, and its expiry as issued (``expires_at`` follows rotations and shortenings,
    # kept as intervals in ``token_expiries``). Kept here, not as a table of intervals, because
    # a rebuild writes a row per token issue: one row rather than two.
    sa.Column("issued_position", sa.BigInteger, nullable=False),
    sa.Column("revoked_position", sa.BigInteger, nullable=True),
    sa.Column("issued_expires_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("secret_hash", name="uq_tokens_secret_hash"),
)
sa.Index("ix_tokens_principal", tokens.c.principal)
sa.Index("ix_tokens_parent_id", tokens.c.parent_id)

# One row per (token, grant), so "tokens with a grant under a path" is an index range scan.
token_grants = sa.Table(
    "token_grants",
    metadata,
    sa.Column("token_id", _identifier(), primary_key=True),
    sa.Column("resource", _identifier(), primary_key=True),
    sa.Column("level", _LEVEL, primary_key=True),
)
sa.Index("ix_token_grants_resource", token_grants.c.resource)

# A service account's OAuth2 client credentials, looked up by client id (the secret's
# hash is checked against the row, never used to find it).
client_credentials = sa.Table(
    "client_credentials",
    metadata,
    sa.Column("client_id", _identifier(), primary_key=True),
    sa.Column("account_id", _identifier(), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("name", sa.Text, nullable=True),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("revoked_reason", sa.String(100), nullable=True),
    sa.UniqueConstraint("secret_hash", name="uq_client_credentials_secret_hash"),
)
sa.Index("ix_client_credentials_account_id", client_credentials.c.account_id)

# An org's OpenID Connect provider (its client secret, if any, is kept with the signing keys).
identity_providers = sa.Table(
    "identity_providers",
    metadata,
    sa.Column("org", _identifier(), primary_key=True),
    sa.Column("issuer", sa.String(500), nullable=False),
    sa.Column("oidc_client_id", sa.String(200), nullable=False),
    sa.Column("client_secret", sa.Boolean, nullable=False),
    sa.Column("session_lifetime", sa.Integer, nullable=False),
    sa.Column("set_at", UTCDateTime, nullable=False),
)

# Login sessions; ``refresh_hash`` is the current refresh token's (the spent ones are in
# ``session_refresh_tokens``, which maps every refresh token ever given to its session).
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("session_id", _identifier(), primary_key=True),
    sa.Column("principal", _identifier(), nullable=False),
    sa.Column("org", _identifier(), nullable=False),
    sa.Column("issuer", sa.String(500), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("refresh_hash", sa.String(64), nullable=False),
    sa.Column("generation", sa.Integer, nullable=False),
    sa.Column("refreshed_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("revoked_reason", sa.String(100), nullable=True),
)
sa.Index("ix_sessions_principal", sessions.c.principal)
sa.Index("ix_sessions_org", sessions.c.org)

# Suspension (None: not suspended), after the columns earlier revisions made: revision 0012
# adds them at the end of their tables, as here. A token disabled with its parent names it in
# ``disabled_cause``, so enabling the parent enables it again; ``disabled_by`` (``operator`` or a
# principal) decides who may lift a suspension.
for _suspended in (tokens, client_credentials, service_accounts):
    _suspended.append_column(sa.Column("disabled_at", UTCDateTime, nullable=True))
    _suspended.append_column(sa.Column("disabled_by", sa.String(320), nullable=True))
tokens.append_column(sa.Column("disabled_cause", _identifier(), nullable=True))

# The last recorded use of a token, a client credential and a session (``TokenUsed``; None
# when never used), after the columns of their revisions: revision 0013 adds them at the
# end of each table, as here.
tokens.append_column(sa.Column("last_used_at", UTCDateTime, nullable=True))
client_credentials.append_column(sa.Column("last_used_at", UTCDateTime, nullable=True))
sessions.append_column(sa.Column("last_used_at", UTCDateTime, nullable=True))

session_refresh_tokens = sa.Table(
    "session_refresh_tokens",
    metadata,
    sa.Column("refresh_hash", sa.String(64), primary_key=True),
    sa.Column("session_id", _identifier(), nullable=False),
)

# Service accounts' trust in external issuers (workload identity federation).
issuer_trusts = sa.Table(
    "issuer_trusts",
    metadata,
    sa.Column("trust_id", _identifier(), primary_key=True),
    sa.Column("account_id", _identifier(), nullable=False),
    sa.Column("issuer", sa.String(500), nullable=False),
    sa.Column("subject", sa.String(500), nullable=False),
    sa.Column("audience", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("revoked_reason", sa.String(100), nullable=True),
)
sa.Index("ix_issuer_trusts_account_id", issuer_trusts.c.account_id)

# The data plane: endpoints (data proxies), service accounts' trusted endpoints, and their
# S3 credentials (known by access key id only).
endpoints = sa.Table(
    "endpoints",
    metadata,
    sa.Column("endpoint_id", _identifier(), primary_key=True),
    sa.Column("name", _identifier(), nullable=False),
    sa.Column("url", sa.String(500), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
)
sa.Index("ix_endpoints_name", endpoints.c.name)

trusted_endpoints = sa.Table(
    "trusted_endpoints",
    metadata,
    sa.Column("account_id", _identifier(), primary_key=True),
    sa.Column("endpoint_id", _identifier(), primary_key=True),
    sa.Column("trusted_at", UTCDateTime, nullable=False),
)
sa.Index("ix_trusted_endpoints_endpoint_id", trusted_endpoints.c.endpoint_id)

s3_credentials = sa.Table(
    "s3_credentials",
    metadata,
    sa.Column("access_key_id", _identifier(), primary_key=True),
    sa.Column("account_id", _identifier(), nullable=False),
    sa.Column("endpoint_id", _identifier(), nullable=False),
    sa.Column("issued_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("revoked_reason", sa.String(100), nullable=True),
)
sa.Index("ix_s3_credentials_account_id", s3_credentials.c.account_id)
sa.Index("ix_s3_credentials_endpoint_id", s3_credentials.c.endpoint_id)


# An org's token policy (``OrgPolicySet``): lifetimes in seconds, ``max_lifetime`` the msgspec
# JSON text of ``{kind: seconds}``.
org_policies = sa.Table(
    "org_policies",
    metadata,
    sa.Column("org", _identifier(), primary_key=True),
    sa.Column("max_lifetime", sa.Text, nullable=False),
    sa.Column("require_expiry", sa.Boolean, nullable=False),
    sa.Column("max_admin_lifetime", sa.BigInteger, nullable=True),
    sa.Column("max_live_tokens", sa.Integer, nullable=True),
    sa.Column("set_at", UTCDateTime, nullable=False),
)

# Which token or client credential succeeded which (``TokenRotated``,
# ``ClientCredentialRotated``): a rotated one has one successor, the chain read both ways.
rotations = sa.Table(
    "rotations",
    metadata,
    sa.Column("rotated_id", _identifier(), primary_key=True),
    sa.Column("successor_id", _identifier(), nullable=False),
    sa.Column("rotated_at", UTCDateTime, nullable=False),
)
sa.Index("ix_rotations_successor_id", rotations.c.successor_id)


# Orgs' webhooks. ``created_position`` is the position of the webhook's creation: the
# deliverer sends it the events after it, never those before.
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("webhook_id", _identifier(), primary_key=True),
    sa.Column("org", _identifier(), nullable=False),
    sa.Column("url", sa.String(500), nullable=False),
    sa.Column("events", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_position", sa.BigInteger, nullable=False),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.Column("secret_generation", sa.Integer, nullable=False),
    sa.Column("rotated_at", UTCDateTime, nullable=True),
)
sa.Index("ix_webhooks_org", webhooks.c.org)

# -- the temporal projection: who held what, from which position to which -------------------
#
# Each row is one interval ``[from_position, to_position)`` during which a fact held (a
# grant, a membership, a role's grants, a service account's permission, a suspension, a
# token's life or a later expiry), with the ``recorded_at`` of both ends; ``to_position``
# NULL means it still holds. A fact at position p is the row of its key whose interval holds
# p: an index lookup, whatever the log's length (``projections.temporal_view``). Rows are
# only added and closed, never changed otherwise (``projections.temporal_handlers``).
# ``interval_key`` names the columns that tell one fact from another: at most one of its
# rows is open at a time.


def _interval_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("from_position", sa.BigInteger, primary_key=True),
        sa.Column("to_position", sa.BigInteger, nullable=True),
        sa.Column("from_time", UTCDateTime, nullable=False),
        sa.Column("to_time", UTCDateTime, nullable=True),
    ]


held_grants = sa.Table(
    "held_grants",
    metadata,
    sa.Column("principal", _identifier(), primary_key=True),
    sa.Column("resource", _identifier(), primary_key=True),
    sa.Column("level", _LEVEL, nullable=False),
    *_interval_columns(),
    info={"interval_key": ("principal", "resource")},
)
sa.Index("ix_held_grants_resource", held_grants.c.resource, held_grants.c.from_position)

held_memberships = sa.Table(
    "held_memberships",
    metadata,
    sa.Column("org", _identifier(), primary_key=True),
    sa.Column("email", _identifier(), primary_key=True),
    sa.Column("role", _identifier(), nullable=False),
    *_interval_columns(),
    info={"interval_key": ("org", "email")},
)
sa.Index("ix_held_memberships_email", held_memberships.c.email, held_memberships.c.from_position)

held_roles = sa.Table(
    "held_roles",
    metadata,
    sa.Column("org", _identifier(), primary_key=True),
    sa.Column("role", _identifier(), primary_key=True),
    sa.Column("grants", sa.Text, nullable=False),
    *_interval_columns(),
    info={"interval_key": ("org", "role")},
)

# A user's active life: from its creation to its disabling (never reversed).
held_users = sa.Table(
    "held_users",
    metadata,
    sa.Column("email", _identifier(), primary_key=True),
    *_interval_columns(),
    info={"interval_key": ("email",)},
)

# A service account's permission, from its creation (or a move) to the next move or its
# deletion.
held_permissions = sa.Table(
    "held_permissions",
    metadata,
    sa.Column("account_id", _identifier(), primary_key=True),
    sa.Column("resource", _identifier(), nullable=False),
    sa.Column("level", _LEVEL, nullable=False),
    *_interval_columns(),
    info={"interval_key": ("account_id",)},
)
sa.Index("ix_held_permissions_resource", held_permissions.c.resource)

account_suspensions = sa.Table(
    "account_suspensions",
    metadata,
    sa.Column("account_id", _identifier(), primary_key=True),
    sa.Column("disabled_by", sa.String(320), nullable=False),
    *_interval_columns(),
    info={"interval_key": ("account_id",)},
)

token_expiries = sa.Table(
    "token_expiries",
    metadata,
    sa.Column("token_id", _identifier(), primary_key=True),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    *_interval_columns(),
    info={"interval_key": ("token_id",)},
)

token_suspensions = sa.Table(
    "token_suspensions",
    metadata,
    sa.Column("token_id", _identifier(), primary_key=True),
    sa.Column("disabled_by", sa.String(320), nullable=False),
    sa.Column("disabled_cause", _identifier(), nullable=True),
    *_interval_columns(),
    info={"interval_key": ("token_id",)},
)

# When a token was last used, as the ledger knew it from one recorded use to the next.
token_uses = sa.Table(
    "token_uses",
    metadata,
    sa.Column("token_id", _identifier(), primary_key=True),
    sa.Column("last_used_at", UTCDateTime, nullable=False),
    *_interval_columns(),
    info={"interval_key": ("token_id",)},
)

#: The temporal projection's tables.
TEMPORAL_TABLES: tuple[sa.Table, ...] = (
    held_grants,
    held_memberships,
    held_roles,
    held_users,
    held_permissions,
    account_suspensions,
    token_expiries,
    token_suspensions,
    token_uses,
)

checkpoints = sa.Table(
    "projection_checkpoints",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
)

#: One row per (event, id it concerns): the audit queries' index. The other
#: columns repeat the event's envelope so that a filter on actor or type is
#: answered from this table's indexes alone. It keeps no time: ``recorded_at``
#: never decreases along the log, so a time window is a window of positions
#: (see ``projections.audit_queries``), and every row writes one B-tree less. Nor is it
#: indexed by position alone: every query reads positions off its filter's (filter, position)
#: key.
audit_index = sa.Table(
    "audit_index",
    metadata,
    sa.Column("subject", _identifier(), nullable=False),
    sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("actor", sa.String(320), nullable=False),
    sa.Column("correlation_id", sa.String(64), nullable=False),
    sa.PrimaryKeyConstraint("subject", "position", name="pk_audit_index"),
    # A rebuild folds the log from its start, and every row carries its event's position,
    # which only grows: the key cannot collide, so the rebuild loads this table (its
    # largest, 2 to 3 rows per event) without it and adds the key after (projections.rebuild).
    info={"keyed_after_load": True},
)
sa.Index("ix_audit_index_actor", audit_index.c.actor, audit_index.c.position)
sa.Index("ix_audit_index_type", audit_index.c.event_type, audit_index.c.position)
