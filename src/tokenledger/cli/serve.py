"""``tokenledger serve``: the HTTP API on uvicorn, over the same database as the CLI."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.defaults import (
    ACCESS_TOKEN_LIFETIME_ENV,
    CACHE_STALENESS_ENV,
    DATABASE_URL_ENV,
    DEFAULT_ISSUER,
    FOLLOW_LOG_ENV,
    ISSUER_ENV,
    KEYS_FILE_ENV,
    PUBLIC_URL_ENV,
    USAGE_INTERVAL_ENV,
)
from tokenledger.clock import SystemClock
from tokenledger.errors import ValidationError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from tokenledger.service.keys import KeyStore

__all__ = ["serve"]

#: Seconds a stopping server waits for open calls (event streams above all) to end.
SHUTDOWN_GRACE = 5

#: What uvicorn imports in each worker process.
APP_FACTORY = "tokenledger.api:app_from_env"


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="TCP port."
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes (more than one needs PostgreSQL).",
)
@click.option(
    "--keys-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=KEYS_FILE_ENV,
    help="The signing key file (default: <db>.keys.json beside a SQLite file).",
)
@click.option(
    "--issuer",
    envvar=ISSUER_ENV,
    default=DEFAULT_ISSUER,
    show_default=True,
    help="The 'iss' of access tokens.",
)
@click.option(
    "--public-url",
    envvar=PUBLIC_URL_ENV,
    default=None,
    help="This server's address as browsers and identity providers reach it (behind a "
    "proxy); default: the address each request came to.",
)
@click.option(
    "--access-token-lifetime",
    envvar=ACCESS_TOKEN_LIFETIME_ENV,
    default="1h",
    show_default=True,
    help="How long access tokens live (at most 1d).",
)
@click.option(
    "--cache-staleness",
    envvar=CACHE_STALENESS_ENV,
    default="0",
    show_default=True,
    help="Each worker keeps its token answers exact by following the log; while it "
    "cannot hear of new commits (its database connection is lost), the seconds it may "
    "reuse them without re-reading the log head (0: re-read on every request; 'off': no "
    "cache).",
)
@click.option(
    "--follow/--no-follow",
    "follow_log",
    default=True,
    show_default=True,
    help="Keep each worker's token answers exact by following the log (notifications); "
    "--no-follow re-reads the log head per answer instead (for a connection pooler that "
    "forbids LISTEN).",
)
@click.option(
    "--notify",
    "deliver_webhooks",
    is_flag=True,
    help="Also deliver webhooks, in this process, as 'tokenledger notify' does (run one "
    "deliverer per database).",
)
@click.option(
    "--usage-interval",
    envvar=USAGE_INTERVAL_ENV,
    default="1h",
    show_default=True,
    help="Record each credential's use (last used) at most once per this interval, "
    "1m to 1d, written when it ends and at shutdown ('off': record none).",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@click.pass_obj
def serve(
    obj: CliContext,
    host: str,
    port: int,
    workers: int,
    keys_file: Path | None,
    issuer: str,
    public_url: str | None,
    access_token_lifetime: str,
    cache_staleness: str,
    follow_log: bool,
    deliver_webhooks: bool,
    usage_interval: str,
    access_log: bool,
    log_level: str,
) -> None:
    """Serve the HTTP API (management, OAuth2 token, introspection, revocation).

    A SQLite ledger is served by one worker process; several workers (or several
    hosts) share a PostgreSQL ledger. A missing key file is created with a first
    signing key.
    """
    # The HTTP API (FastAPI), uvicorn and the key store are this command's alone.
    import uvicorn

    from tokenledger.api.app import parse_staleness, parse_usage_interval
    from tokenledger.api.state import ApiSettings
    from tokenledger.domain.commands import parse_duration
    from tokenledger.service.keys import KeyStore
    from tokenledger.store import open_event_store, parse_database_url
    from tokenledger.store.backends import backend_for_url

    url = parse_database_url(obj.database_url)
    if workers > 1 and not backend_for_url(url).serves_many_processes:
        raise ValidationError(
            f"--workers {workers} needs PostgreSQL: a SQLite ledger is served by one worker "
            "(use --db postgresql://...)"
        )
    lifetime = parse_duration(access_token_lifetime)
    parse_staleness(cache_staleness)
    parse_usage_interval(usage_interval)
    try:
        ApiSettings(issuer=issuer, access_token_lifetime=lifetime)
    except ValueError as exc:
        raise ValidationError(f"--access-token-lifetime: {exc}") from None
    if not issuer.strip() or len(issuer) > 400:
        raise ValidationError("--issuer must be 1 to 400 characters")
    if public_url is not None:
        _check_public_url(public_url)
    # Fails here, in one line, when the database is unreachable or not migrated
    # (and migrates a SQLite file on first use), rather than in every worker.
    open_event_store(url).engine.dispose()
    keys = KeyStore.from_environment(url, keys_file)
    if not keys.read_only and not keys.ring().keys:
        created = keys.rotate(SystemClock().now())
        click.echo(f"created signing key {created.kid} in {keys.describe()}", err=True)
    keys.ring()  # an unreadable or too widely readable key file stops us here
    os.environ[DATABASE_URL_ENV] = url.render_as_string(hide_password=False)
    os.environ[ISSUER_ENV] = issuer
    os.environ[ACCESS_TOKEN_LIFETIME_ENV] = access_token_lifetime
    os.environ[CACHE_STALENESS_ENV] = cache_staleness
    os.environ[FOLLOW_LOG_ENV] = "1" if follow_log else "0"
    os.environ[USAGE_INTERVAL_ENV] = usage_interval
    if public_url is not None:
        os.environ[PUBLIC_URL_ENV] = public_url.rstrip("/")
    if keys.path is not None:
        os.environ[KEYS_FILE_ENV] = str(keys.path.resolve())
    stop_notifying = _start_notifier(url, keys) if deliver_webhooks else None
    try:
        _run_uvicorn(uvicorn, host, port, workers, access_log, log_level)
    finally:
        if stop_notifying is not None:
            stop_notifying()


def _run_uvicorn(
    uvicorn: Any, host: str, port: int, workers: int, access_log: bool, log_level: str
) -> None:
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level=log_level,
        server_header=False,
        # An event stream (GET /v2/events/stream) never ends by itself: on shutdown, calls
        # still open after this many seconds are cancelled rather than waited for.
        timeout_graceful_shutdown=SHUTDOWN_GRACE,
    )


def _start_notifier(url: URL, keys: KeyStore) -> Callable[[], None]:
    """Deliver webhooks on a thread of this process until the returned function is called
    (after the server has stopped: uvicorn handles the signals)."""
    import threading

    from tokenledger.cli.webhooks import say_notify
    from tokenledger.service.notify import Notifier
    from tokenledger.store import open_event_store

    store = open_event_store(url)
    notifier = Notifier(store, keys.webhook_key(), progress=say_notify, trouble=say_notify)
    stop = threading.Event()
    thread = threading.Thread(
        target=notifier.run_until, args=(stop,), name="tokenledger-notify", daemon=True
    )
    thread.start()

    def stopping() -> None:
        stop.set()
        thread.join(timeout=SHUTDOWN_GRACE)
        notifier.close()
        store.engine.dispose()

    return stopping


def _check_public_url(value: str) -> None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.query
        or parts.fragment
        or len(value) > 400
    ):
        raise ValidationError(
            "--public-url must be an http(s) address without query or fragment, "
            "e.g. https://ledger.example.com"
        )
