"""The data plane's rules: S3 credentials' ids and secret keys, and whether a signed S3
request may be done.

A service account holds S3 credentials per trusted endpoint (a data proxy). The log
records only the access key id; the secret key is ``HMAC(endpoint key, access key id)``,
where the endpoint key is derived from one S3 key kept in the key file beside the signing
keys. So neither the log nor the projections hold anything that signs a request, and the
ledger can make any live credential's secret again to check a signature.

A gateway (the endpoint) asks the ledger about each request it receives
(``check_s3_request``): the ledger finds the credential by the access key id, checks the
signature (AWS Signature Version 4, ``domain.sigv4``), and says which account signed and
whether that account may do the request's operation on the path it names. The bucket is a
project of the account's org, the key the path below it; GET and HEAD need read, PUT and
POST append (write covers it), DELETE write, a change of configuration (``?acl``,
``?policy`` ...) admin, and a copy read on its source as well (``needed_level``,
``copy_source``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote, urlsplit

from tokenledger.domain.authority import account_suspended, standing
from tokenledger.domain.model import EndpointView, LedgerView, S3CredentialView
from tokenledger.domain.names import is_endpoint_id, shown
from tokenledger.domain.permissions import Level, level_at
from tokenledger.domain.sigv4 import (
    ReceivedRequest,
    SignatureMismatch,
    parse_authorization,
    verify_signature,
)
from tokenledger.errors import NotFound, ValidationError

__all__ = [
    "LEVEL_BY_METHOD",
    "S3Answer",
    "access_key_id_for",
    "check_s3_request",
    "copy_source",
    "default_endpoint",
    "endpoint_key",
    "find_endpoint",
    "needed_level",
    "object_resource",
    "secret_key_for",
]

#: The level each S3 method needs on the path it names.
LEVEL_BY_METHOD = {
    "GET": Level.READ,
    "HEAD": Level.READ,
    "PUT": Level.APPEND,
    "POST": Level.APPEND,
    "DELETE": Level.WRITE,
}

_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def access_key_id_for(account_id: str, endpoint_id: str, ordinal: int, issued: str) -> str:
    """The id of the account's ``ordinal``-th credential at the endpoint: ``TLS3`` and 16
    base32 characters, made from what it is for (so a decision is deterministic)."""
    digest = hashlib.sha256(
        f"s3 credential\n{account_id}\n{endpoint_id}\n{ordinal}\n{issued}".encode()
    ).digest()
    return "TLS3" + "".join(_BASE32[b % 32] for b in digest[:16])


def endpoint_key(s3_key: bytes, endpoint_id: str) -> bytes:
    """The endpoint's own key, derived from the ledger's S3 key."""
    return hmac.new(s3_key, f"endpoint\n{endpoint_id}".encode(), hashlib.sha256).digest()


def secret_key_for(s3_key: bytes, credential: S3CredentialView) -> str:
    """The credential's secret key: 40 characters, as S3 clients expect."""
    key = endpoint_key(s3_key, credential.endpoint_id)
    mac = hmac.new(key, f"secret\n{credential.access_key_id}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()[:40]


def find_endpoint(view: LedgerView, ref: str) -> EndpointView:
    """The endpoint (not deleted) named by id or name; ``NotFound`` otherwise."""
    found = view.endpoint(ref) if is_endpoint_id(ref) else view.endpoint_named(ref)
    if found is None or found.deleted:
        raise NotFound(f"no endpoint {shown(ref)}")
    return found


def object_resource(org: str, path: str) -> str:
    """The ledger path an S3 request names: ``/bucket/key`` (percent-encoded, as on the
    request line) in ``org`` is ``org/bucket/key``. ``/`` alone names the org.

    Each segment is decoded on its own; one that decodes to nothing, ``.``, ``..`` or to
    text holding a ``/`` or ``\\`` is refused: it would name a place other than the one its
    prefix seems to (``/alpha/..%2Fbeta`` is not inside ``alpha``)."""
    segments = [unquote(part) for part in path.split("/")[1:]]
    while segments and segments[-1] == "":
        segments.pop()  # a trailing slash names the same place
    for part in segments:
        if part in ("", ".", "..") or "/" in part or "\\" in part:
            raise ValidationError(
                f"invalid S3 path {shown(path)}: empty, . or .. segments, and encoded / or "
                "\\, name no object"
            )
    return "/".join([org, *segments])


#: Query parameters that make a request change a bucket's or an object's configuration
#: (its ACL, policy, lifecycle...): the account's admin level, whatever the method.
_CONFIGURATION = frozenset(
    {
        "accelerate", "acl", "analytics", "cors", "encryption", "intelligent-tiering",
        "inventory", "legal-hold", "lifecycle", "logging", "metrics", "notification",
        "object-lock", "ownershipControls", "policy", "publicAccessBlock", "replication",
        "requestPayment", "retention", "tagging", "versioning", "website",
    }
)  # fmt: skip
#: Query parameters of the steps of a multipart upload: writing new data, as a PUT does.
_MULTIPART = frozenset({"uploads", "uploadId", "partNumber"})


def needed_level(method: str, query: str) -> Level:
    """The level an S3 request needs on the path it names: GET and HEAD read; PUT and POST
    append (an upload, each multipart step included); DELETE write, as POST ``?delete`` (a
    bulk delete) and POST ``?restore`` do; and a change to a configuration (``?acl``,
    ``?policy``, ``?lifecycle`` ... with PUT, POST or DELETE) admin."""
    base = LEVEL_BY_METHOD.get(method.upper())
    if base is None:
        raise ValidationError(f"S3 has no operation {shown(method)} here")
    names = {unquote(item.partition("=")[0]) for item in query.split("&") if item}
    if base is Level.READ:
        return base
    if names & _CONFIGURATION:
        return Level.ADMIN
    if names & {"delete", "restore"}:
        return Level.WRITE
    if method.upper() == "DELETE" and names & _MULTIPART:
        return Level.APPEND  # aborting an upload deletes nothing stored
    return base


def copy_source(org: str, headers: Mapping[str, str], signed: Iterable[str]) -> str | None:
    """The ledger path a copy reads from (``x-amz-copy-source: bucket/key[?versionId=...]``),
    or None for a request that copies nothing. The header must be signed: unsigned, anyone
    on the way could change what is copied."""
    value = headers.get("x-amz-copy-source")
    if value is None:
        return None
    if "x-amz-copy-source" not in signed:
        raise ValidationError("x-amz-copy-source must be a signed header")
    source = value.partition("?")[0]
    return object_resource(org, source if source.startswith("/") else "/" + source)


@dataclass(frozen=True, slots=True)
class S3Answer:
    """A signed request's verdict: who signed it, and whether they may do it."""

    access_key_id: str
    account_id: str
    endpoint_id: str
    operation: str
    resource: str
    needed: Level
    level: Level
    source: str | None = None
    """What a copy reads from (``x-amz-copy-source``): it needs read there too."""
    source_level: Level = Level.NONE

    @property
    def allowed(self) -> bool:
        reads = self.source is None or self.source_level >= Level.READ
        return self.level >= self.needed and reads


def check_s3_request(
    view: LedgerView,
    endpoint_ref: str,
    request: ReceivedRequest,
    secret_of: Callable[[S3CredentialView], str],
    now: datetime,
) -> S3Answer:
    """THE rule for a request an endpoint received: ``ValidationError`` when the request or
    its ``Authorization`` header is malformed, ``NotFound`` for an unknown endpoint,
    ``SignatureMismatch`` (with S3's error code) when the signature does not hold or its
    credentials are not usable there; otherwise the answer."""
    needed = needed_level(request.method, request.query)
    try:
        auth = parse_authorization(request.headers.get("authorization", ""))
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    endpoint = find_endpoint(view, endpoint_ref)
    credential = view.s3_credential(auth.access_key_id)
    if credential is None:
        raise SignatureMismatch("InvalidAccessKeyId", "no such access key")
    # The signature first: what is said of a key after it (revoked, for another endpoint)
    # is said only to whoever holds its secret.
    try:
        verify_signature(request, auth, secret_of(credential), now)
    except SignatureMismatch:
        raise
    except ValueError as exc:  # a malformed x-amz-date
        raise ValidationError(str(exc)) from None
    if credential.revoked:
        raise SignatureMismatch("InvalidAccessKeyId", "the access key is revoked")
    if credential.endpoint_id != endpoint.endpoint_id:
        raise SignatureMismatch(
            "InvalidAccessKeyId", f"the access key is not for endpoint {endpoint.name}"
        )
    if not _same_host(request.headers["host"], endpoint.url):
        # A virtual-hosted request (bucket.host/key) would name its bucket in the host, which
        # the path-style reading below would not see.
        raise SignatureMismatch(
            "AccessDenied",
            f"the request was sent to {shown(request.headers['host'])}, not to endpoint "
            f"{endpoint.name}'s host (path-style requests only)",
        )
    grants = standing(view, credential.account_id)
    if grants is None:
        state = "disabled" if account_suspended(view, credential.account_id) else "deleted"
        raise SignatureMismatch("InvalidAccessKeyId", f"the access key's account is {state}")
    account = view.service_account(credential.account_id)
    assert account is not None  # standing() found it
    resource = object_resource(account.org, request.path)
    source = copy_source(account.org, request.headers, auth.signed_headers)
    return S3Answer(
        access_key_id=credential.access_key_id,
        account_id=credential.account_id,
        endpoint_id=endpoint.endpoint_id,
        operation=request.method.upper(),
        resource=resource,
        needed=needed,
        level=level_at(grants, resource),
        source=source,
        source_level=level_at(grants, source) if source is not None else Level.NONE,
    )


def _same_host(host: str, url: str) -> bool:
    """Whether a ``Host`` header names the endpoint's URL's host and port (the scheme's
    default port when either leaves it out)."""
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    try:
        sent = urlsplit("//" + host.strip())
        return (sent.hostname, sent.port or default) == (parts.hostname, parts.port or default)
    except ValueError:
        return False


def default_endpoint(view: LedgerView, account_id: str) -> str:
    """Aruna's "default data proxy" for an account: its one trusted endpoint."""
    trusted = view.trusted_endpoints_of(account_id)
    if len(trusted) != 1:
        raise ValidationError(
            f"{account_id} trusts {len(trusted)} endpoints: name the endpoint in the path"
        )
    return trusted[0].endpoint_id
