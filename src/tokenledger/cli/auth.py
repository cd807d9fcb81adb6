"""``tokenledger auth``: log in to a server, and present tokens to other tools.

A login (``auth login``) keeps a session in the credentials file (``client.credentials``):
later commands then work through that server with it, refreshing its access token when it
nears its expiry. ``auth token`` and ``auth header`` hand a token to other tools (curl -H).
Nothing here prints a refresh token, and only ``auth token`` and ``auth header`` print an
access token or a secret, which is what they are for.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from tokenledger.cli.app import TOKEN_ENV, CliContext, fail
from tokenledger.cli.output import echo_json
from tokenledger.domain.secrets import parse_secret
from tokenledger.errors import StorageError, ValidationError

if TYPE_CHECKING:
    from tokenledger.client.credentials import Credentials

__all__ = ["auth"]

#: Seconds ``auth login`` waits for the browser to come back.
DEFAULT_LOGIN_TIMEOUT = 300

_SERVER = click.option(
    "--server",
    "server",
    metavar="URL",
    help="The server (default: tokenledger --server, TOKENLEDGER_SERVER, or the one logged in to).",
)
_JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


@click.group()
def auth() -> None:
    """Log in to a server, and present tokens to other tools."""


def _chosen_server(obj: CliContext, given: str | None) -> str | None:
    """This command's --server, else the root's (or TOKENLEDGER_SERVER), else None (the
    credentials file's)."""
    from tokenledger.client.urls import server_url

    for candidate in (given, obj.requested_server):
        if candidate is not None and candidate.strip():
            return server_url(candidate)
    return None


def _saved() -> Credentials | None:
    """The credentials file's content, or None when it is missing or cannot be used (a login
    replaces it)."""
    from tokenledger.client.credentials import load_credentials

    try:
        return load_credentials()
    except StorageError:
        return None


def _when(moment: datetime | None) -> str:
    from tokenledger.cli.output import format_timestamp

    return format_timestamp(moment) if moment is not None else "never"


def _session_fields(credentials: Credentials) -> dict[str, Any]:
    session, access = credentials.session, credentials.access_token
    return {
        "server": credentials.server,
        "principal": credentials.principal,
        "org": credentials.org,
        "session_id": session.session_id if session is not None else None,
        "session_expires_at": session.expires_at if session is not None else None,
        "access_token_expires_at": access.expires_at if access is not None else None,
    }


# -- login -------------------------------------------------------------------------------------


@auth.command("login")
@_SERVER
@click.option("--org", help="The org whose identity provider you log in through.")
@click.option(
    "--no-browser",
    is_flag=True,
    help="Print the address to open elsewhere, and read the code that page shows.",
)
@click.option(
    "--timeout",
    type=click.IntRange(min=1, max=3600),
    default=DEFAULT_LOGIN_TIMEOUT,
    show_default=True,
    help="Seconds to wait for the browser.",
)
@_JSON
@click.pass_obj
def login_command(
    obj: CliContext,
    server: str | None,
    org: str | None,
    no_browser: bool,
    timeout: int,
    as_json: bool,
) -> None:
    """Log in through your org's identity provider (a browser, RFC 8252 loopback and PKCE)
    and keep the session in the credentials file for later commands."""
    from tokenledger.cli.grants import org_name
    from tokenledger.client.credentials import save_credentials
    from tokenledger.client.http import Http
    from tokenledger.client.login import LoopbackReceiver, begin_login, code_page, finish_login
    from tokenledger.client.sessions import credentials_from

    saved = _saved()
    chosen = _chosen_server(obj, server) or (saved.server if saved is not None else None)
    if chosen is None:
        raise ValidationError("give --server URL: the server to log in to")
    previous = saved if saved is not None and saved.server == chosen else None
    org = org or (previous.org if previous is not None else None)
    if org is None:
        raise ValidationError("give --org ORG: the org whose identity provider you log in through")
    org = org_name(org)
    with Http(chosen) as http:
        if no_browser:
            login = begin_login(chosen, org, code_page(chosen))
            click.echo("Open this address in a browser and log in:", err=True)
            click.echo(login.url, err=True)
            answer = {"code": _pasted_code()}
        else:
            import webbrowser

            with LoopbackReceiver() as receiver:
                login = begin_login(chosen, org, receiver.redirect_uri)
                receiver.expect(login.state)
                click.echo(f"Logging in to {chosen} through {org}'s identity provider.", err=True)
                click.echo(f"If no browser opens, visit: {login.url}", err=True)
                webbrowser.open(login.url)
                answer = receiver.wait(timeout)
        tokens = finish_login(http, login, answer)
    credentials = credentials_from(tokens, chosen, datetime.now(UTC), previous)
    save_credentials(credentials)
    fields = _session_fields(credentials)
    if as_json:
        echo_json(fields)
        return
    click.echo(f"logged in to {chosen} as {credentials.principal} (org {credentials.org})")
    click.echo(f"  session: {fields['session_id']} until {_when(fields['session_expires_at'])}")


def _pasted_code() -> str:
    click.echo("Paste the code the page shows: ", err=True, nl=False)
    line = sys.stdin.readline(4096) if sys.stdin is not None else ""
    if sys.stdin is None or not sys.stdin.isatty():
        click.echo(err=True)  # a terminal echoed the newline; a pipe did not
    code = line.strip()
    if not code:
        raise ValidationError("no code was pasted: run 'tokenledger auth login' again")
    return code


# -- status ------------------------------------------------------------------------------------


@auth.command("status")
@_SERVER
@_JSON
@click.pass_obj
def status_command(obj: CliContext, server: str | None, as_json: bool) -> None:
    """Who is logged in, to which server and org, and until when (the server confirms when
    it can be reached)."""
    from tokenledger.client.credentials import credentials_path
    from tokenledger.client.sessions import logged_in

    credentials = logged_in(credentials_path(), _chosen_server(obj, server))
    fields = _session_fields(credentials)
    confirmed, problem = _confirm(credentials)
    if as_json:
        echo_json({**fields, "confirmed": confirmed, "problem": problem})
        return
    now = datetime.now(UTC)
    session_end = fields["session_expires_at"]
    click.echo(f"server:       {credentials.server}")
    click.echo(f"principal:    {credentials.principal}")
    click.echo(f"org:          {credentials.org}")
    ended = session_end is not None and session_end <= now
    click.echo(
        f"session:      {fields['session_id']} {'ended' if ended else 'until'} {_when(session_end)}"
    )
    access_end = fields["access_token_expires_at"]
    if access_end is not None and access_end > now:
        click.echo(f"access token: valid until {_when(access_end)}")
    else:
        click.echo(f"access token: expired at {_when(access_end)} (renewed when next used)")
    if confirmed is not None:
        groups = ", ".join(confirmed.get("groups") or []) or "no roles"
        click.echo(f"the server knows you as {confirmed.get('sub')} ({groups})")
        click.echo(f"namespace:    {confirmed.get('namespace')}")
        click.echo(f"ACL subjects: {' '.join(confirmed.get('acl_subjects') or [])}")
    else:
        click.echo(f"not confirmed by the server: {problem}")


def _confirm(credentials: Credentials) -> tuple[dict[str, Any] | None, str | None]:
    """What ``GET /v2/whoami`` answers for the saved access token, or why it was not asked."""
    access = credentials.access_token
    if access is None or not access.fresh(datetime.now(UTC), 0):
        return None, "the access token has expired ('tokenledger auth token' renews it)"
    from tokenledger.client.http import Http
    from tokenledger.errors import LedgerError

    try:
        with Http(credentials.server) as http:
            answer = http.call("GET", "/v2/whoami", bearer=access.token)
    except LedgerError as exc:
        return None, str(exc)
    return (answer, None) if isinstance(answer, dict) else (None, "an unreadable answer")


# -- token, refresh ----------------------------------------------------------------------------


@auth.command("token")
@_SERVER
@click.option("-H", "--header", "as_header", is_flag=True, help="Print it as a curl -H header.")
@_JSON
@click.pass_obj
def token_command(obj: CliContext, server: str | None, as_header: bool, as_json: bool) -> None:
    """Print a valid access token (renewed first when it expires within 500 s), or
    TOKENLEDGER_TOKEN as it is when set."""
    fixed = os.environ.get(TOKEN_ENV, "").strip()
    expires_at: datetime | None = None
    if fixed:
        _check_presentable(fixed)
        token = fixed
    else:
        from tokenledger.client.auth import Auth

        with Auth(server=_chosen_server(obj, server)) as held:
            token = held.token
            expires_at = held.expires_at
    if as_header:
        _echo_header(token, as_json)
    elif as_json:
        echo_json({"access_token": token, "token_type": "Bearer", "expires_at": expires_at})
    else:
        click.echo(token)


@auth.command("refresh")
@_SERVER
@_JSON
@click.pass_obj
def refresh_command(obj: CliContext, server: str | None, as_json: bool) -> None:
    """Renew the session's access token now (its refresh token is replaced too)."""
    from tokenledger.client.credentials import credentials_path
    from tokenledger.client.http import Http
    from tokenledger.client.sessions import fresh_session, logged_in

    path = credentials_path()
    current = logged_in(path, _chosen_server(obj, server))
    with Http(current.server) as http:
        refreshed = fresh_session(path, http, now=datetime.now(UTC), leeway=0, force=True)
    fields = _session_fields(refreshed)
    if as_json:
        echo_json(fields)
    else:
        click.echo(
            f"refreshed: access token valid until {_when(fields['access_token_expires_at'])}"
        )


# -- logout ------------------------------------------------------------------------------------


@auth.command("logout")
@_SERVER
@_JSON
@click.pass_obj
def logout_command(obj: CliContext, server: str | None, as_json: bool) -> None:
    """End the session at the server and forget it here (here even when the server cannot
    be reached, which is then said)."""
    from tokenledger.client.credentials import credentials_path
    from tokenledger.client.http import Http
    from tokenledger.client.sessions import end_session, logged_in

    path = credentials_path()
    current = logged_in(path, _chosen_server(obj, server))
    session = current.session
    assert session is not None  # logged_in checks it
    with Http(current.server) as http:
        _, refused = end_session(path, http)
    if isinstance(refused, StorageError):
        fail(
            f"logged out here, but {refused}: the session {session.session_id} stays valid "
            f"there until {_when(session.expires_at)}",
            7,
        )
    if as_json:
        echo_json(
            {
                "server": current.server,
                "session_id": session.session_id,
                "ended_at_server": refused is None,
                "problem": str(refused) if refused is not None else None,
            }
        )
        return
    if refused is None:
        click.echo(f"logged out of {current.server} (session {session.session_id} ended)")
    else:
        click.echo(f"logged out here; the server answered about {session.session_id}: {refused}")


# -- header ------------------------------------------------------------------------------------


def _check_presentable(token: str) -> None:
    """A ledger token's secret (checked: a mistyped one fails here, without being shown) or
    an access token (a JWT, which the server checks): what ``TOKENLEDGER_TOKEN`` may hold."""
    from tokenledger.domain.secrets import looks_like_jwt

    if not looks_like_jwt(token):
        parse_secret(token)


@auth.command("header")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def header_command(as_json: bool) -> None:
    """Print 'Authorization: Bearer <secret>' for TOKENLEDGER_TOKEN (e.g. for curl -H)."""
    secret = os.environ.get(TOKEN_ENV, "").strip()
    if not secret:
        raise ValidationError(f"{TOKEN_ENV} is not set: export a token's secret in it first")
    _check_presentable(secret)
    _echo_header(secret, as_json)


def _echo_header(token: str, as_json: bool) -> None:
    """The header curl's -H takes (Element's ``eai login token -H``): ``auth header`` and
    ``auth token -H`` print it alike."""
    if as_json:
        echo_json({"Authorization": f"Bearer {token}"})
    else:
        click.echo(f"Authorization: Bearer {token}")
