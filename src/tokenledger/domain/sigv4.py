"""AWS Signature Version 4 as S3 uses it: reading a request's ``Authorization`` header and
checking its signature against a secret key.

Pure functions over what a gateway received (method, raw path and query, headers, the
SHA-256 of the body it read); the ledger's S3 check (``domain.s3``) calls them with the
secret derived for the access key. Only the header form (``AWS4-HMAC-SHA256 Credential=...,
SignedHeaders=..., Signature=...``) is taken; presigned query strings are not.

The canonical request follows the S3 variant of the algorithm: the path is signed as sent
(already percent-encoded, not normalised), and the body's hash is the value of the signed
``x-amz-content-sha256`` header.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

__all__ = [
    "ALGORITHM",
    "MAX_SKEW",
    "UNSIGNED_PAYLOAD",
    "Authorization",
    "ReceivedRequest",
    "SignatureMismatch",
    "parse_authorization",
    "request_time",
    "signature_of",
    "verify_signature",
]

ALGORITHM = "AWS4-HMAC-SHA256"
#: How far a request's ``x-amz-date`` may lie from the ledger's clock (S3's own limit).
MAX_SKEW = timedelta(minutes=15)
#: The payload hash a client sends when it does not sign the body.
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
#: Unsigned too: the body is sent in aws-chunked encoding with a trailing checksum, which the
#: gateway checks (current AWS SDKs send uploads so by default).
_UNSIGNED = frozenset({UNSIGNED_PAYLOAD, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"})

_HEADER = re.compile(
    r"AWS4-HMAC-SHA256\s+"
    r"Credential=(?P<credential>[^,\s]{1,300})\s*,\s*"
    r"SignedHeaders=(?P<signed>[a-z0-9;_.-]{1,1000})\s*,\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})"
)
_DATE = re.compile(r"^\d{8}$")
_REGION = re.compile(r"^[a-z0-9-]{1,40}$")
_AMZ_TIME = re.compile(r"^\d{8}T\d{6}Z$")
_HASH = re.compile(r"^[0-9a-f]{64}$")


class SignatureMismatch(ValueError):
    """A well-formed request whose signature does not hold; ``code`` is S3's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Authorization:
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """A request as the gateway received it."""

    method: str
    path: str
    """The path as on the request line, percent-encoded."""
    query: str
    """The raw query string, without the ``?``."""
    headers: Mapping[str, str]
    """Header names in lower case."""
    payload_sha256: str | None = None
    """The SHA-256 (hex) of the body the gateway read; None when it did not hash it."""


def parse_authorization(value: str) -> Authorization:
    """The header's parts; ``ValueError`` (one line) when it is not SigV4's shape."""
    if not value.isascii():
        raise ValueError("malformed S3 authorization header: it must be ASCII")
    match = _HEADER.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            "malformed S3 authorization header: expected AWS4-HMAC-SHA256 Credential=KEY/DATE/"
            "REGION/s3/aws4_request, SignedHeaders=..., Signature=<64 hex digits>"
        )
    parts = match["credential"].split("/")
    if (
        len(parts) != 5
        or not _DATE.fullmatch(parts[1])
        or not _REGION.fullmatch(parts[2])
        or parts[3] != "s3"
        or parts[4] != "aws4_request"
    ):
        raise ValueError(
            "malformed S3 authorization header: the credential must read "
            "KEY/YYYYMMDD/REGION/s3/aws4_request"
        )
    signed = tuple(match["signed"].split(";"))
    if "host" not in signed or list(signed) != sorted(set(signed)):
        raise ValueError(
            "malformed S3 authorization header: SignedHeaders must be sorted, without "
            "repeats, and include host"
        )
    return Authorization(
        access_key_id=parts[0],
        date=parts[1],
        region=parts[2],
        service=parts[3],
        signed_headers=signed,
        signature=match["signature"],
    )


def request_time(headers: Mapping[str, str]) -> datetime:
    """The request's ``x-amz-date``; ``ValueError`` when missing or malformed."""
    text = headers.get("x-amz-date", "")
    if not _AMZ_TIME.fullmatch(text):
        raise ValueError("malformed S3 request: x-amz-date must read YYYYMMDDTHHMMSSZ")
    try:
        return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise ValueError("malformed S3 request: x-amz-date is not a date") from None


def verify_signature(
    request: ReceivedRequest, auth: Authorization, secret_key: str, now: datetime
) -> None:
    """Raise ``SignatureMismatch`` unless ``auth.signature`` is the request's signature with
    ``secret_key``, made within ``MAX_SKEW`` of ``now``, over the body the gateway read."""
    when = request_time(request.headers)
    if abs(when - now) > MAX_SKEW:
        raise SignatureMismatch(
            "RequestTimeTooSkewed",
            f"the request was signed at {when:%Y-%m-%dT%H:%M:%SZ}, more than "
            f"{int(MAX_SKEW.total_seconds() // 60)} minutes from the ledger's time",
        )
    if auth.date != f"{when:%Y%m%d}":
        raise SignatureMismatch(
            "SignatureDoesNotMatch", "the credential's date is not the request's date"
        )
    missing = [name for name in auth.signed_headers if name not in request.headers]
    if missing:
        raise SignatureMismatch(
            "SignatureDoesNotMatch", f"signed header {missing[0]} is not in the request"
        )
    declared = request.headers.get("x-amz-content-sha256")
    if declared is None or "x-amz-content-sha256" not in auth.signed_headers:
        raise SignatureMismatch(
            "SignatureDoesNotMatch", "an S3 request signs its x-amz-content-sha256 header"
        )
    if declared not in _UNSIGNED:
        if not _HASH.fullmatch(declared):
            raise SignatureMismatch(
                "InvalidArgument",
                "x-amz-content-sha256 must be 64 hex digits or an unsigned payload's name "
                "(signed streaming uploads are not taken)",
            )
        if request.payload_sha256 is None:
            raise SignatureMismatch(
                "XAmzContentSHA256Mismatch",
                "the body's SHA-256 is needed to check a signed body (payload_sha256)",
            )
        if not hmac.compare_digest(declared, request.payload_sha256.lower()):
            raise SignatureMismatch(
                "XAmzContentSHA256Mismatch", "the body is not the one the request signed"
            )
    expected = signature_of(request, auth, secret_key)
    if not hmac.compare_digest(expected, auth.signature):
        raise SignatureMismatch(
            "SignatureDoesNotMatch", "the request's signature does not match its credentials"
        )


def signature_of(request: ReceivedRequest, auth: Authorization, secret_key: str) -> str:
    """The hex signature of ``request`` under ``auth``'s scope and signed headers."""
    canonical = _canonical_request(request, auth.signed_headers)
    to_sign = "\n".join(
        (
            ALGORITHM,
            request.headers.get("x-amz-date", ""),
            auth.scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        )
    )
    key = _signing_key(secret_key, auth.date, auth.region, auth.service)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _canonical_request(request: ReceivedRequest, signed_headers: tuple[str, ...]) -> str:
    headers = "".join(
        f"{name}:{' '.join(request.headers[name].split())}\n" for name in signed_headers
    )
    return "\n".join(
        (
            request.method.upper(),
            request.path or "/",
            _canonical_query(request.query),
            headers,
            ";".join(signed_headers),
            request.headers.get("x-amz-content-sha256", UNSIGNED_PAYLOAD),
        )
    )


def _canonical_query(query: str) -> str:
    """Each name and value decoded and encoded again (RFC 3986 unreserved characters kept),
    sorted by name, then value."""
    pairs = []
    for item in query.split("&") if query else ():
        name, _, value = item.partition("=")
        pairs.append((_encode(unquote(name)), _encode(unquote(value))))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _encode(text: str) -> str:
    return quote(text, safe="-_.~")


def _signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret_key).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key
