"""Server addresses: what ``--server``, ``TOKENLEDGER_SERVER`` and ``Client(server=...)`` accept.

Credentials go to the server on every call, so plain ``http://`` is accepted only for the
loopback interface (a server on this machine, as in development and tests); anywhere else it
must be ``https://``.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from tokenledger.domain.names import LOOPBACK_HOSTS, shown
from tokenledger.errors import ValidationError

__all__ = ["SERVER_ENV", "path_segment", "server_url"]

#: The variable naming the server, when neither ``--server`` nor a parameter does.
SERVER_ENV = "TOKENLEDGER_SERVER"


_MAX_URL = 2000


def server_url(text: str) -> str:
    """``text`` as a server's base URL (no trailing slash), or a one-line ``ValidationError``."""
    url = text.strip()
    if len(url) > _MAX_URL or not url.isprintable():
        raise ValidationError(f"invalid server URL {_display(url)}: too long or not printable")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError as exc:
        raise ValidationError(f"invalid server URL {_display(url)}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(
            f"invalid server URL {_display(url)}: expected https://HOST[:PORT] (http:// only for "
            "127.0.0.1 or localhost)"
        )
    if parts.username is not None or parts.password is not None:
        # Not repeated: what precedes the '@' may be a password.
        raise ValidationError(
            "invalid server URL: it holds a user or password (credentials go through "
            "'tokenledger auth login' or TOKENLEDGER_TOKEN, never in the URL)"
        )
    if parts.query or parts.fragment:
        raise ValidationError(f"invalid server URL {_display(url)}: no query or fragment")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValidationError(
            f"refusing to send credentials over plain http to {parts.hostname}: use https:// "
            "(http:// is accepted for 127.0.0.1 and localhost only)"
        )
    return url.rstrip("/")


def _display(url: str) -> str:
    # A URL with an '@' may carry a password before it: not repeated.
    return "(not repeated: it holds a '@')" if "@" in url else shown(url)


def path_segment(value: str, *, slashes: bool = False) -> str:
    """``value`` quoted for a URL path (resource paths keep their ``/`` when ``slashes``).

    A segment that is ``.`` or ``..`` is sent with its dots escaped: as written, the URL would
    drop it before sending (RFC 3986's dot segments), so ``/v2/audit/blast-radius/..`` would
    ask another route (the audit search) instead of being refused as an id."""
    quoted = quote(value, safe="@/" if slashes else "@")
    return "/".join(_DOTS.get(segment, segment) for segment in quoted.split("/"))


_DOTS = {".": "%2E", "..": "%2E%2E"}
