"""Webhooks: the rules of an org's subscriptions and of what their deliveries carry.

THE places for: a webhook's URL (``check_webhook_url``), the event types a webhook may ask
for and which log event is which type (``WEBHOOK_TYPES``), the org an event concerns
(``event_orgs``, the audit's notion), the webhook's secret and signature (Standard
Webhooks: ``whsec_`` secrets, ``v1,`` HMAC-SHA256 signatures), the ids of deliveries (the
same id on every attempt, so a receiver can drop a repeat), when an expiry warning is due,
and the retry schedule. No I/O: the deliverer (``service.webhooks``) brings the log, the
tables and the network to these rules.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

import msgspec

from tokenledger.domain import events as e
from tokenledger.domain.authority import event_orgs
from tokenledger.domain.names import (
    WEBHOOK_ID_PATTERN,
    check_no_secret,
    check_webhook_id,
    is_webhook_id,
    shown,
)
from tokenledger.domain.subjects import subjects

__all__ = [
    "DEFAULT_EXPIRY_WARNINGS",
    "DEFAULT_UNUSED_AFTER",
    "EXPIRING",
    "MAX_URL_LENGTH",
    "ROTATION_OVERLAP",
    "UNUSED",
    "WEBHOOK_ID_PATTERN",
    "WEBHOOK_TYPES",
    "WEBHOOK_VOCABULARY",
    "WebhookView",
    "check_event_types",
    "check_webhook_id",
    "check_webhook_url",
    "concerns_org",
    "due_warning",
    "event_delivery_id",
    "expiry_delivery_id",
    "is_webhook_id",
    "retry_delay",
    "sign",
    "signing_secrets",
    "unused_delivery_id",
    "webhook_id_for",
    "webhook_secret",
    "webhook_type",
]

#: Which log event is which webhook event type: one line per type. An event type missing
#: here is sent to no webhook.
WEBHOOK_TYPES: Final[dict[type[e.Event], str]] = {
    e.TokenIssued: "token.issued",
    e.TokenRevoked: "token.revoked",
    e.TokenDisabled: "token.disabled",
    e.TokenEnabled: "token.enabled",
    e.TokenRotated: "token.rotated",
    e.TokenExpiryShortened: "token.expiry_shortened",
    e.ClientCredentialIssued: "credential.issued",
    e.ClientCredentialRevoked: "credential.revoked",
    e.ClientCredentialDisabled: "credential.disabled",
    e.ClientCredentialEnabled: "credential.enabled",
    e.ClientCredentialRotated: "credential.rotated",
    e.ClientCredentialExpiryShortened: "credential.expiry_shortened",
    e.S3CredentialIssued: "s3_credential.issued",
    e.S3CredentialRevoked: "s3_credential.revoked",
    e.ServiceAccountCreated: "service_account.created",
    e.ServiceAccountDeleted: "service_account.deleted",
    e.ServiceAccountDisabled: "service_account.disabled",
    e.ServiceAccountEnabled: "service_account.enabled",
    e.OrgPolicySet: "org.policy_set",
    e.OrgPolicyCleared: "org.policy_cleared",
    e.MemberAdded: "member.added",
    e.MemberRemoved: "member.removed",
    e.WebhookCreated: "webhook.created",
    e.WebhookDeleted: "webhook.deleted",
    e.WebhookSecretRotated: "webhook.secret_rotated",
}

#: A warning before a token expires: made by the deliverer's scan, not by a log event.
EXPIRING: Final = "token.expiring"
#: A live token nobody has used for a while (``domain.token_filter``'s ``unused_for``): made
#: by the deliverer's scan too.
UNUSED: Final = "token.unused"

#: Every event type a webhook may ask for.
WEBHOOK_VOCABULARY: Final[frozenset[str]] = frozenset({*WEBHOOK_TYPES.values(), EXPIRING, UNUSED})

#: How long a token goes unused before a ``token.unused`` notice, by default.
DEFAULT_UNUSED_AFTER: Final = timedelta(days=90)

#: How long before a token's expiry a warning goes out, by default.
DEFAULT_EXPIRY_WARNINGS: Final = (timedelta(days=14), timedelta(days=7), timedelta(days=1))

MAX_URL_LENGTH: Final = 500

#: Standard Webhooks' secret prefix.
_SECRET_PREFIX: Final = "whsec_"

#: How long after a rotation deliveries are signed with the previous secret too.
ROTATION_OVERLAP: Final = timedelta(days=1)

#: The first retry's pause and the longest pause (doubled after each failed attempt).
FIRST_RETRY: Final = timedelta(seconds=5)
LONGEST_RETRY: Final = timedelta(hours=1)
#: Each pause is drawn between (1 - JITTER) and 1 times the schedule's, so that receivers
#: coming back are not hit by every retry at once.
JITTER: Final = 0.2


class WebhookView(msgspec.Struct, frozen=True, kw_only=True):
    """An org's webhook: where its deliveries go and which event types it takes."""

    webhook_id: str
    org: str
    url: str
    events: tuple[str, ...]
    created_at: datetime
    deleted_at: datetime | None = None
    #: Which secret signs its deliveries (0: the first; each rotation adds one).
    secret_generation: int = 0
    #: When the secret was last rotated (None: never).
    rotated_at: datetime | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


# -- what a command may carry -------------------------------------------------------------


def check_webhook_url(value: str) -> str:
    """Where deliveries go: an ``http`` or ``https`` URL with a host, no credentials
    (``user:password@``) and no fragment, at most ``MAX_URL_LENGTH`` characters. A
    receiver that wants a shared secret checks the signature instead."""
    if len(value) > MAX_URL_LENGTH or not value.isprintable() or any(c.isspace() for c in value):
        raise ValueError(
            f"invalid webhook url {shown(value)}: a URL of at most {MAX_URL_LENGTH} characters"
        )
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - a port out of range raises here
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"invalid webhook url {shown(value)}: an http or https URL with a host")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError(
            "invalid webhook url: it carries credentials (user:password@), which would be "
            "stored in the log; deliveries are signed instead"
        )
    if parts.fragment:
        raise ValueError(f"invalid webhook url {shown(value)}: a URL without a fragment")
    return check_no_secret(value, "webhook url")


def check_event_types(value: Iterable[str]) -> tuple[str, ...]:
    """The event types asked for, each in the vocabulary, without repeats, sorted."""
    wanted = tuple(sorted({item.strip() for item in value}))
    if not wanted or "" in wanted:
        raise ValueError(
            "invalid webhook events: name at least one of " + ", ".join(sorted(WEBHOOK_VOCABULARY))
        )
    unknown = [item for item in wanted if item not in WEBHOOK_VOCABULARY]
    if unknown:
        raise ValueError(
            f"invalid webhook event {shown(unknown[0])}: one of "
            + ", ".join(sorted(WEBHOOK_VOCABULARY))
        )
    return wanted


def webhook_id_for(org: str, url: str, now: datetime, attempt: int) -> str:
    """A new webhook's id, made from what the command says, so the decision is deterministic
    (``attempt`` moves on past an id already taken)."""
    seed = f"{org}\n{url}\n{now.isoformat()}\n{attempt}"
    return "wh_" + hashlib.sha256(seed.encode()).hexdigest()[:24]


# -- which webhooks an event goes to ------------------------------------------------------


def webhook_type(event: e.Event) -> str | None:
    """The event's webhook type, or None when no webhook is sent it."""
    return WEBHOOK_TYPES.get(type(event))


def concerns_org(event: e.Event, org: str) -> bool:
    """Whether ``event`` concerns ``org`` as the audit says (what the org's admins may see
    of the log): a webhook never receives an event of another org."""
    return org in event_orgs(subjects(event))


# -- secrets, signatures and ids ----------------------------------------------------------


def webhook_secret(key: bytes, webhook_id: str, generation: int = 0) -> str:
    """The webhook's signing secret of ``generation``, ``whsec_`` and 32 bytes in base64:
    made from its id with the key kept beside the signing keys, so it is stored nowhere."""
    seed = f"webhook secret\n{webhook_id}" + (f"\n{generation}" if generation else "")
    mac = hmac.new(key, seed.encode(), hashlib.sha256)
    return _SECRET_PREFIX + base64.b64encode(mac.digest()).decode()


def signing_secrets(
    key: bytes, webhook_id: str, generation: int, rotated_at: datetime | None, now: datetime
) -> tuple[str, ...]:
    """The secrets a delivery is signed with now: the current one, and for
    ``ROTATION_OVERLAP`` after a rotation the previous one too, so that a receiver keeps
    accepting deliveries until it holds the new secret."""
    current = webhook_secret(key, webhook_id, generation)
    if generation and rotated_at is not None and now < rotated_at + ROTATION_OVERLAP:
        return (current, webhook_secret(key, webhook_id, generation - 1))
    return (current,)


def sign(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: for each secret, ``v1,`` and the base64
    HMAC-SHA256, under the secret's bytes, of ``{id}.{timestamp}.{body}``, separated by
    spaces (Standard Webhooks)."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    signatures = []
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix(_SECRET_PREFIX))
        digest = hmac.new(key, signed, hashlib.sha256).digest()
        signatures.append("v1," + base64.b64encode(digest).decode())
    return " ".join(signatures)


def _message_id(*parts: str) -> str:
    return "msg_" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def event_delivery_id(webhook_id: str, event_id: str) -> str:
    """The ``webhook-id`` of an event's delivery to a webhook, the same on every attempt."""
    return _message_id(webhook_id, event_id)


def expiry_delivery_id(webhook_id: str, token_id: str, before: timedelta) -> str:
    """The ``webhook-id`` of one expiry warning: one per (webhook, token, warning)."""
    return _message_id(webhook_id, token_id, EXPIRING, str(int(before.total_seconds())))


def unused_delivery_id(webhook_id: str, token_id: str, last_active: datetime) -> str:
    """The ``webhook-id`` of one unused notice: one per (webhook, token, last use), so a
    token used again and then left unused again is told of again."""
    return _message_id(webhook_id, token_id, UNUSED, last_active.isoformat())


# -- expiry warnings and retries ----------------------------------------------------------


def due_warning(
    expires_at: datetime, now: datetime, warnings: Sequence[timedelta]
) -> timedelta | None:
    """The warning due now for a token expiring at ``expires_at``: the shortest of
    ``warnings`` whose moment has come, while the token has not expired yet. Warnings whose
    moment passed unseen (the token was issued inside them, or nothing ran) give way to the
    nearest one, so a token is warned at most once per warning and never twice at once."""
    if expires_at <= now:
        return None
    come = [before for before in warnings if expires_at - before <= now]
    return min(come) if come else None


def retry_delay(attempts: int, rng: random.Random) -> timedelta:
    """The pause after ``attempts`` failed attempts: ``FIRST_RETRY`` doubled after each
    failure up to ``LONGEST_RETRY``, less up to ``JITTER`` of it at random."""
    schedule = FIRST_RETRY * (2 ** min(max(attempts - 1, 0), 20))
    capped = min(schedule, LONGEST_RETRY)
    return timedelta(seconds=capped.total_seconds() * (1 - JITTER * rng.random()))
