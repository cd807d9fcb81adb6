"""Signing keys for access tokens: the key file, rotation, the JWKS, signing and checking JWTs.

Access tokens that ``POST /oauth2/token`` hands out are JWTs signed with
Ed25519 (JWS algorithm ``EdDSA``, RFC 8037). The private keys never enter the
log: they live in a key file (JSON, mode 0600, written atomically), or in the
environment variable ``TOKENLEDGER_SIGNING_KEYS`` holding that file's content
(for platforms that hand out secrets that way; such a ring is read-only).

Rotation (``tokenledger keys rotate``) adds a new key and retires the previous
one: the retired key keeps only its public half, which stays published at
``/.well-known/jwks.json`` for ``retention`` (longer than any access token
lives), so tokens it signed still verify until they expire. A running server
notices a rotated file within a second.

Each key's ``kid`` is its RFC 7638 JWK thumbprint.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.engine import URL

from tokenledger.clock import ensure_utc
from tokenledger.domain.secrets import MAX_JWT_LENGTH, looks_like_jwt
from tokenledger.errors import StorageError, ValidationError

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "ALGORITHM",
    "DEFAULT_RETENTION",
    "KEYS_ENV",
    "KEYS_FILE_ENV",
    "InvalidAccessToken",
    "KeyRing",
    "KeyStore",
    "SigningKey",
    "default_keys_file",
    "is_compact_jws",
    "new_signing_key",
]

ALGORITHM = "EdDSA"
#: The JWT ``typ`` header of an access token (RFC 9068), so no other JWT passes for one.
ACCESS_TOKEN_TYPE = "at+jwt"
#: Where the key file is, when not next to the SQLite database.
KEYS_FILE_ENV = "TOKENLEDGER_KEYS_FILE"
#: The key file's content itself, instead of a file.
KEYS_ENV = "TOKENLEDGER_SIGNING_KEYS"
#: How long a retired key's public half stays published: longer than any access token lives.
DEFAULT_RETENTION = timedelta(days=1)
#: How often a running server looks at the key file's modification time (seconds).
_RELOAD_INTERVAL = 1.0


class SigningKey(msgspec.Struct, frozen=True, kw_only=True):
    """One key; a retired key has no private half any more."""

    kid: str
    alg: str = ALGORITHM
    created_at: datetime
    retired_at: datetime | None = None
    public_jwk: dict[str, str]
    private_pem: str | None = None

    @property
    def active(self) -> bool:
        return self.retired_at is None and self.private_pem is not None


class _KeyFile(msgspec.Struct, kw_only=True):
    version: int = 1
    keys: list[SigningKey] = msgspec.field(default_factory=list)
    provider_secrets: dict[str, str] = msgspec.field(default_factory=dict)
    """Orgs' identity providers' client secrets, by org: kept here, beside the private
    keys and as guarded as they are, never in the log."""
    s3_key: str | None = None
    """The key S3 credentials' secret keys are derived from (base64url, 32 bytes): made
    once, never rotated, since every live credential's secret depends on it."""
    webhook_key: str | None = None
    """The key webhooks' signing secrets are derived from (base64url, 32 bytes): made once,
    never rotated, since every webhook's secret depends on it."""
    log_key: str | None = None
    """The Ed25519 private key (base64url of its 32-byte seed) signing the log's checkpoints:
    made once, never rotated, since verifiers pin its public half."""


def _encode_other(value: object) -> object:
    # datetime subclasses (a test clock's, for one) are not encoded natively.
    if isinstance(value, datetime):
        return value.isoformat()
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


_file_encoder = msgspec.json.Encoder(enc_hook=_encode_other)
_file_decoder = msgspec.json.Decoder(_KeyFile)


class InvalidAccessToken(Exception):
    """A presented JWT is not a valid access token; ``reason`` says why, in one word."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


#: One segment of a compact JWS: unpadded base64url (RFC 7515 section 2), nothing else.
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
#: An Ed25519 signature's length in bytes (RFC 8032).
_SIGNATURE_LENGTH = 64


def _canonical_segment(segment: str) -> bytes | None:
    """The bytes of an unpadded base64url segment in its one canonical spelling, else ``None``.

    Base64 decoders forgive: padding, a dangling character, unused low bits set in the
    last character. Each forgiven spelling is another string for the same token, which
    would introspect active while no byte of what was signed changed; only the spelling
    that encoding the bytes gives back is accepted.
    """
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except ValueError:
        return None
    return data if _b64url(data) == segment else None


def is_compact_jws(token: str) -> bool:
    """Whether ``token`` is exactly a compact JWS: three canonical unpadded base64url
    segments and a signature of an Ed25519 signature's length, with nothing around them.

    Anything that answers for a JWT without decoding it (a cache of answers) must ask this
    first, or a variant of the token would be given the token's answer.
    """
    if len(token) > MAX_JWT_LENGTH:
        return False
    segments = token.split(".")
    if len(segments) != 3:
        return False
    decoded = [_canonical_segment(segment) for segment in segments]
    if any(part is None for part in decoded):
        return False
    return len(decoded[2] or b"") == _SIGNATURE_LENGTH


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638: SHA-256 of the required members in lexical order, without whitespace."""
    required = {name: jwk[name] for name in ("crv", "kty", "x")}
    canonical = json.dumps(required, sort_keys=True, separators=(",", ":")).encode()
    return _b64url(hashlib.sha256(canonical).digest())


def new_signing_key(now: datetime) -> SigningKey:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    public_jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return SigningKey(
        kid=_thumbprint(public_jwk),
        created_at=ensure_utc(now),
        public_jwk=public_jwk,
        private_pem=pem,
    )


class KeyRing:
    """The keys in force: the active one signs, every published one verifies. Also holds
    the identity providers' client secrets kept in the same file."""

    def __init__(
        self,
        keys: list[SigningKey],
        provider_secrets: Mapping[str, str] | None = None,
        s3_key: str | None = None,
        webhook_key: str | None = None,
        log_key: str | None = None,
    ) -> None:
        self.keys = tuple(keys)
        self.provider_secrets: Mapping[str, str] = dict(provider_secrets or {})
        self.s3_key = base64.urlsafe_b64decode(s3_key + "==") if s3_key else None
        self.webhook_key = base64.urlsafe_b64decode(webhook_key + "==") if webhook_key else None
        self.log_key = base64.urlsafe_b64decode(log_key + "==") if log_key else None
        active = [k for k in self.keys if k.active]
        self.active = max(active, key=lambda k: k.created_at) if active else None
        self._public: dict[str, Ed25519PublicKey] = {}
        for key in self.keys:
            raw = base64.urlsafe_b64decode(key.public_jwk["x"] + "==")
            self._public[key.kid] = Ed25519PublicKey.from_public_bytes(raw)
        self._private: Ed25519PrivateKey | None = None
        if self.active is not None and self.active.private_pem is not None:
            loaded = serialization.load_pem_private_key(
                self.active.private_pem.encode("ascii"), password=None
            )
            if not isinstance(loaded, Ed25519PrivateKey):
                raise StorageError("the active signing key is not an Ed25519 key")
            self._private = loaded

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The public halves as an RFC 7517 JWK Set, newest first."""
        ordered = sorted(self.keys, key=lambda k: k.created_at, reverse=True)
        return {
            "keys": [{**k.public_jwk, "kid": k.kid, "alg": k.alg, "use": "sig"} for k in ordered]
        }

    def sign(self, claims: Mapping[str, Any], *, typ: str = ACCESS_TOKEN_TYPE) -> str:
        """A JWT of ``claims`` signed by the active key; ``typ`` tells what it is for, so
        that no JWT made for one purpose (a login's state, say) passes for another."""
        if self.active is None or self._private is None:
            raise StorageError("no signing key: run 'tokenledger keys rotate' to create one")
        return jwt.encode(
            dict(claims),
            self._private,
            algorithm=ALGORITHM,
            headers={"kid": self.active.kid, "typ": typ},
        )

    def derive_secret(self, purpose: str) -> str:
        """A secret only this server can make again from ``purpose`` while its active key
        lasts: the key's (deterministic, RFC 8032) Ed25519 signature of it, base64url.
        86 characters, so it serves as a PKCE code verifier (43 to 128)."""
        if self._private is None:
            raise StorageError("no signing key: run 'tokenledger keys rotate' to create one")
        return _b64url(self._private.sign(b"tokenledger derived secret\n" + purpose.encode()))

    def decode(self, token: str, *, issuer: str, now: datetime) -> dict[str, Any]:
        """The claims of a valid access token; ``InvalidAccessToken`` otherwise.

        Expiry is checked against ``now`` (the ledger's clock), not the wall clock.
        """
        return self.decode_typed(
            token,
            typ=ACCESS_TOKEN_TYPE,
            issuer=issuer,
            now=now,
            require=("exp", "iat", "sub", "jti", "client_id", "iss"),
        )

    def decode_typed(
        self,
        token: str,
        *,
        typ: str,
        issuer: str,
        now: datetime,
        require: tuple[str, ...] = ("exp", "iat", "jti", "iss"),
    ) -> dict[str, Any]:
        """The claims of a valid JWT of type ``typ`` that this server signed."""
        # PyJWT alone accepts a token with padding appended (``token + "=="``) as valid.
        if not looks_like_jwt(token) or not is_compact_jws(token):
            raise InvalidAccessToken("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidAccessToken("malformed") from None
        if header.get("alg") != ALGORITHM or header.get("typ") != typ:
            raise InvalidAccessToken("malformed")
        key = self._public.get(str(header.get("kid")))
        if key is None:
            raise InvalidAccessToken("unknown_key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=issuer,
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,  # whoever expects an audience checks it
                    "require": list(require),
                },
            )
        except jwt.InvalidSignatureError:
            raise InvalidAccessToken("bad_signature") from None
        except jwt.InvalidIssuerError:
            raise InvalidAccessToken("wrong_issuer") from None
        except jwt.PyJWTError:
            raise InvalidAccessToken("malformed") from None
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= int(ensure_utc(now).timestamp()):
            raise InvalidAccessToken("expired")
        return claims


def default_keys_file(database_url: URL) -> Path:
    """``TOKENLEDGER_KEYS_FILE``, else ``<db>.keys.json`` beside a SQLite file, else
    ``./tokenledger.keys.json``."""
    configured = os.environ.get(KEYS_FILE_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    from tokenledger.store.backends import backend_for_url

    database = backend_for_url(database_url).database_file(database_url)
    if database is not None:
        return database.with_name(database.stem + ".keys.json")
    return Path("tokenledger.keys.json")


class KeyStore:
    """The key file (or the environment's keys), reloaded when the file changes."""

    def __init__(self, path: Path | None, *, content: str | None = None) -> None:
        if path is None and content is None:
            raise ValueError("a key store needs a file or its content")
        self.path = path
        self._content = content
        self._lock = threading.Lock()
        self._ring: KeyRing | None = None
        self._signature: tuple[int, int] | None = None
        self._checked = 0.0

    @classmethod
    def from_environment(cls, database_url: URL, path: Path | None = None) -> KeyStore:
        """``TOKENLEDGER_SIGNING_KEYS`` when set, else the key file (given or the default)."""
        content = os.environ.get(KEYS_ENV, "").strip()
        if content and path is None:
            return cls(None, content=content)
        return cls(path or default_keys_file(database_url))

    @property
    def read_only(self) -> bool:
        return self.path is None

    def describe(self) -> str:
        return str(self.path) if self.path is not None else f"${KEYS_ENV}"

    def ring(self) -> KeyRing:
        """The current keys; an empty ring when the file does not exist yet."""
        now = time.monotonic()
        with self._lock:
            if self._ring is not None and now - self._checked < _RELOAD_INTERVAL:
                return self._ring
            self._checked = now
            signature = self._file_signature()
            if self._ring is None or signature != self._signature:
                content = self._read_file()
                self._ring = KeyRing(
                    content.keys,
                    content.provider_secrets,
                    content.s3_key,
                    content.webhook_key,
                    content.log_key,
                )
                self._signature = signature
            return self._ring

    def rotate(self, now: datetime, *, retention: timedelta = DEFAULT_RETENTION) -> SigningKey:
        """Add a new active key, retire the previous one (dropping its private half) and
        forget retired keys older than ``retention``."""
        if self.path is None:
            raise ValidationError(
                f"the signing keys come from ${KEYS_ENV}: rotate them where that value is made"
            )
        now = ensure_utc(now)
        with self._exclusive():
            return self._rotate(now, retention)

    def _rotate(self, now: datetime, retention: timedelta) -> SigningKey:
        content = self._read_file()
        kept: list[SigningKey] = []
        for key in content.keys:
            if key.retired_at is None:
                key = msgspec.structs.replace(key, retired_at=now, private_pem=None)
            if key.retired_at is not None and key.retired_at + retention < now:
                continue
            kept.append(key)
        new = new_signing_key(now)
        self._write(msgspec.structs.replace(content, keys=[new, *kept]))
        with self._lock:
            self._ring = None
        return new

    def set_provider_secret(self, org: str, secret: str | None) -> None:
        """Keep (or, with None, forget) the client secret of ``org``'s identity provider."""
        if self.path is None:
            raise ValidationError(
                f"the signing keys come from ${KEYS_ENV}: add the provider's secret where "
                "that value is made"
            )
        with self._exclusive():
            content = self._read_file()
            secrets = dict(content.provider_secrets)
            if secret is None:
                secrets.pop(org, None)
            else:
                secrets[org] = secret
            self._write(msgspec.structs.replace(content, provider_secrets=secrets))
        with self._lock:
            self._ring = None

    def s3_key(self) -> bytes:
        """The key S3 secret keys are derived from, made (and kept in the file) on first use."""
        return self._kept_key("s3_key", "S3 key")

    def webhook_key(self) -> bytes:
        """The key webhooks' secrets are derived from, made (and kept in the file) on first
        use."""
        return self._kept_key("webhook_key", "webhook key")

    def log_key(self) -> Ed25519PrivateKey:
        """The key signing the log's checkpoints, made (and kept in the file) on first use."""
        seed = self._kept_key("log_key", "log key")
        try:
            return Ed25519PrivateKey.from_private_bytes(seed)
        except ValueError:
            raise StorageError(f"the log key in {self.describe()} is not an Ed25519 key") from None

    def _kept_key(self, field: str, what: str) -> bytes:
        current = getattr(self.ring(), field)
        if current is not None:
            return bytes(current)
        if self.path is None:
            raise ValidationError(
                f"the signing keys come from ${KEYS_ENV} and hold no {what}: add one where "
                "that value is made"
            )
        with self._exclusive():  # two first uses at once must not make two keys
            content = self._read_file()
            if getattr(content, field) is None:
                content = msgspec.structs.replace(content, **{field: _b64url(os.urandom(32))})
                self._write(content)
        with self._lock:
            self._ring = None
        kept = getattr(content, field)
        assert kept is not None
        return base64.urlsafe_b64decode(kept + "==")

    # -- the file ---------------------------------------------------------------------

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Every read-modify-write of the file under one lock (a file beside it, across
        processes): a change made from a stale read would drop another's (a new S3 key, a
        rotation)."""
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _file_signature(self) -> tuple[int, int] | None:
        if self.path is None:
            return None
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read the key file {self.path}: {exc.strerror}") from None
        return (info.st_mtime_ns, info.st_size)

    def _read_file(self) -> _KeyFile:
        if self.path is None:
            assert self._content is not None
            return self._decode(self._content.encode(), f"${KEYS_ENV}")
        try:
            info = self.path.stat()
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise StorageError(
                    f"the key file {self.path} is readable by others "
                    f"(mode {stat.S_IMODE(info.st_mode):04o}): run chmod 600 on it"
                )
            data = self.path.read_bytes()
        except FileNotFoundError:
            return _KeyFile()
        except OSError as exc:
            raise StorageError(f"cannot read the key file {self.path}: {exc.strerror}") from None
        return self._decode(data, str(self.path))

    @staticmethod
    def _decode(data: bytes, where: str) -> _KeyFile:
        try:
            return _file_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise StorageError(f"the signing keys in {where} cannot be read: {exc}") from None

    def _write(self, content: _KeyFile) -> None:
        assert self.path is not None
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        data = _file_encoder.encode(content)
        # Written beside the target with mode 0600 from the start, then renamed over it.
        fd, temporary = tempfile.mkstemp(prefix=".keys-", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(msgspec.json.format(data, indent=2))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
