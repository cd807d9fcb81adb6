"""Workload identity federation: a CI job trades its platform's ID token for a service
account's access token (RFC 8693 token exchange), so it keeps no stored secret.

The account must trust the token's issuer for its subject and audience
(``service-accounts trust-issuer``, an event); whether it does is decided by
``domain.authority.admitting_trust``. The access token lives an hour at most and while the
trust does: moving or deleting the account withdraws its trusts, and with them whatever
they obtained. Like a client credential's access token, an exchange appends no event.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from tokenledger.domain.authority import account_active, admitting_trust
from tokenledger.domain.model import IssuedAccessToken
from tokenledger.domain.names import check_issuer, check_service_account_id, shown
from tokenledger.errors import InvalidGrant
from tokenledger.service.oauth import sign_access_token
from tokenledger.service.reading import Reader

if TYPE_CHECKING:
    from tokenledger.service.keys import KeyRing
    from tokenledger.service.oidc import OidcClient

__all__ = [
    "EXCHANGED_TOKEN_LIFETIME",
    "ISSUED_TOKEN_TYPE",
    "SUBJECT_TOKEN_TYPES",
    "TOKEN_EXCHANGE_GRANT",
    "exchange_token",
]

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
#: What a CI platform's ID token may be called in ``subject_token_type``.
SUBJECT_TOKEN_TYPES = frozenset(
    {"urn:ietf:params:oauth:token-type:id_token", "urn:ietf:params:oauth:token-type:jwt"}
)
ISSUED_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
EXCHANGED_TOKEN_LIFETIME = timedelta(hours=1)

logger = logging.getLogger("tokenledger")


def exchange_token(
    reader: Reader,
    keys: KeyRing,
    oidc: OidcClient,
    *,
    issuer: str,
    subject_token: str,
    account_id: str,
) -> IssuedAccessToken:
    """An access token of ``account_id`` for an external ID token one of its trusts
    admits; ``InvalidGrant`` (one line, nothing recorded) for anything else."""
    from tokenledger.service.oidc import OidcError

    try:
        account_id = check_service_account_id(account_id)
        token_issuer = check_issuer(_unverified_issuer(subject_token))
    except ValueError as exc:
        raise InvalidGrant(str(exc)) from None
    refused = InvalidGrant(
        f"{account_id} does not trust ID tokens of {shown(token_issuer)} for this subject "
        "and audience"
    )
    with reader.view() as view:
        account = view.service_account(account_id)
        # Only an issuer some trust names is ever asked for its keys (``admitting_trust``
        # decides among these): a token naming any other is refused without a request.
        trusts = [
            t
            for t in view.issuer_trusts_of(account_id)
            if t.issuer == token_issuer and not t.revoked
        ]
    if not account_active(account) or not trusts:
        raise refused
    assert account is not None  # account_active says so
    now = reader.now()
    for audience in sorted({t.audience for t in trusts}):
        try:
            identity = oidc.validate_external_token(
                token_issuer, subject_token, audience=audience, now=now
            )
        except OidcError as exc:
            if exc.reason == "wrong_audience":
                continue
            raise InvalidGrant(f"the subject token is not valid: {exc}") from None
        trust = admitting_trust(trusts, identity.issuer, identity.subject, (audience,))
        if trust is None:
            continue
        issued = sign_access_token(
            keys,
            issuer=issuer,
            principal=account.account_id,
            org=account.org,
            groups=(),
            client_id=trust.trust_id,
            grants=(account.permission,),
            now=now,
            expires_at=now + EXCHANGED_TOKEN_LIFETIME,
            act={"iss": identity.issuer, "sub": identity.subject},
        )
        logger.info(
            "access token of %s exchanged for an ID token of %s (subject %s) through %s",
            account.account_id,
            identity.issuer,
            identity.subject,
            trust.trust_id,
        )
        return issued
    raise refused


def _unverified_issuer(token: str) -> str:
    """The ``iss`` a token claims, read only to know whose keys to check it with."""
    import jwt  # PyJWT loads with the first exchange, not with every ledger

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise ValueError("the subject token is not a JWT") from None
    value = claims.get("iss")
    if not isinstance(value, str):
        raise ValueError("the subject token names no issuer")
    return value
