"""The root command group, shared options, and the mapping of errors to exit codes.

The commands live in their own modules, imported only when one of them runs (or shows its
help): ``tokenledger --help`` and every command's ``--help`` stay clear of SQLAlchemy, the
ledger, the HTTP API and the HTTP client, and a command imports what it uses.

Two modes, one set of commands: against the database (``--db``, acting as the operator or as
the principal of ``TOKENLEDGER_TOKEN``), or against a server (``--server``,
``TOKENLEDGER_SERVER``, or the server ``tokenledger auth login`` saved), acting with the
logged-in session or ``TOKENLEDGER_TOKEN``. ``CliContext.ledger()`` is then a ``Ledger`` or a
``client.remote.RemoteLedger``, which answer the commands' calls alike, so that a command
prints the same either way. What needs the database itself is refused against a server.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import click

from tokenledger.cli.defaults import DEFAULT_DATABASE_URL, DEFAULT_ISSUER, ISSUER_ENV
from tokenledger.cli.lazy import LazyCommand, LazyGroup
from tokenledger.errors import (
    Conflict,
    IntegrityViolation,
    LedgerError,
    NotFound,
    PermissionDenied,
    StorageError,
    ValidationError,
)

if TYPE_CHECKING:
    from tokenledger.client.remote import RemoteLedger
    from tokenledger.domain import commands as c
    from tokenledger.domain.model import Actor
    from tokenledger.service import CommandResult, Ledger
    from tokenledger.service.commands import CommandPreview
    from tokenledger.store import EventStore

__all__ = ["EXIT_CODES", "TOKEN_ENV", "CliContext", "cli", "ledger_type", "main"]

#: Exit codes, one per error category (2 is also click's own for usage errors).
EXIT_CODES: dict[type[LedgerError], int] = {
    ValidationError: 2,
    NotFound: 3,
    PermissionDenied: 4,
    Conflict: 5,
    IntegrityViolation: 6,
    StorageError: 7,
}


def exit_code_for(error: LedgerError) -> int:
    for cls in type(error).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


#: A token secret in this variable makes commands act as the token's principal.
TOKEN_ENV = "TOKENLEDGER_TOKEN"

#: The variable naming the server, as ``--server`` does (``tokenledger.client.urls``).
SERVER_ENV = "TOKENLEDGER_SERVER"

#: What cannot run against a server: the commands (and subcommands) that need the database
#: itself, its log, its projections, its keys or the operator. ``audit export`` is refused
#: where it asks for the operator (``require_operator``).
DATABASE_ONLY: dict[str, frozenset[str] | None] = {
    "db": None,
    "demo": None,
    "events": None,
    "keys": None,
    "log": None,
    "notify": None,
    "relay": None,
    "replay": None,
    "serve": None,
    "endpoints": frozenset({"create", "delete"}),
    "orgs": frozenset({"create"}),
    "users": frozenset({"disable"}),
}


def needs_the_database(what: str) -> PermissionDenied:
    return PermissionDenied(f"'{what}' needs the database (--db); it cannot run against a server")


def ledger_type() -> type[Ledger]:
    """The ledger class the commands open (the one place naming its module)."""
    from tokenledger.service import Ledger

    return Ledger


@dataclass
class CliContext:
    """What every command works on: the database (``database_url``), or, when ``server`` is
    set, the server at that URL."""

    database_url: str
    server: str | None = None
    #: --server or TOKENLEDGER_SERVER as given (``auth`` commands choose their server).
    requested_server: str | None = None
    #: The command was given --dry-run (``cli.dry_run``): ``execute`` previews.
    dry_run: bool = False
    _database: Ledger | None = field(default=None, repr=False)
    _remote: RemoteLedger | None = field(default=None, repr=False)

    @property
    def remote(self) -> bool:
        return self.server is not None

    def store(self) -> EventStore:
        """The ledger's event store (one engine for the whole command)."""
        return self._database_ledger().store

    def ledger(self) -> Ledger | RemoteLedger:
        """The database's ``Ledger``, or the server's ``RemoteLedger``."""
        if self.server is None:
            return self._database_ledger()
        if self._remote is None:
            from tokenledger.client.remote import RemoteLedger

            self._remote = RemoteLedger.open(self.server)
        return self._remote

    def execute(self, command: c.Command) -> CommandResult:
        """Run ``command`` as the caller; with --dry-run, print what it would append instead
        and end the command (exit code 0), appending nothing."""
        ledger, actor = self.ledger(), self.actor()
        if self.dry_run:
            _end_with_preview(ledger.preview(command, actor))
        return ledger.execute(command, actor)

    @contextmanager
    def previewing(self) -> Iterator[None]:
        """Around a call given ``dry_run=self.dry_run`` that runs a command: a dry run's
        preview (``PreviewReady``) is printed and ends the command with exit code 0."""
        from tokenledger.service.commands import PreviewReady

        try:
            yield
        except PreviewReady as ready:
            _end_with_preview(ready.preview)

    def _database_ledger(self) -> Ledger:
        if self.server is not None:
            raise needs_the_database(_command_path())
        if self._database is None:
            self._database = ledger_type().open(self.database_url)
        return self._database

    def actor(self) -> Actor:
        """The principal of ``TOKENLEDGER_TOKEN`` when it is set, else the local operator.
        Against a server, a stand-in: the server takes the caller from the Bearer token."""
        from tokenledger.domain.model import Actor

        if self.server is not None:
            from tokenledger.client.remote import REMOTE_CALLER

            return REMOTE_CALLER
        secret = os.environ.get(TOKEN_ENV, "").strip()
        if not secret:
            return Actor.operator(_os_user())
        ledger = self._database_ledger()
        from tokenledger.domain.secrets import looks_like_jwt

        if looks_like_jwt(secret):
            # An access token (a session's, a client credential's): checked with the signing
            # keys the server uses for this database, and the issuer it signs as.
            from tokenledger.service.keys import KeyStore
            from tokenledger.store import parse_database_url

            keys = KeyStore.from_environment(parse_database_url(self.database_url))
            issuer = os.environ.get(ISSUER_ENV, "").strip() or DEFAULT_ISSUER
            return ledger.authenticate_access_token(secret, keys.ring(), issuer=issuer)
        return ledger.authenticate(secret)

    def require_operator(self, action: str) -> None:
        """Maintenance commands are the operator's: a caller acting through a token (in
        ``TOKENLEDGER_TOKEN``) is refused, whatever the token, and so is every caller of a
        server (there is no operator over HTTP)."""
        if self.server is not None:
            raise needs_the_database(_command_path())
        from tokenledger.domain.authority import require_operator

        require_operator(self.actor(), action)

    def close(self) -> None:
        if self._database is not None:
            self._database.close()
        if self._remote is not None:
            self._remote.close()


def _end_with_preview(preview: CommandPreview) -> NoReturn:
    from tokenledger.cli.dry_run import show_preview

    ctx = click.get_current_context()
    show_preview(preview, as_json=bool(ctx.params.get("as_json")))
    ctx.exit(0)


def _command_path() -> str:
    """The running command's words, as the user typed them ('log verify')."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return "this command"
    return ctx.command_path.partition(" ")[2] or ctx.command_path


def _os_user() -> str:
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError, ImportError):
        return "unknown"


class LedgerGroup(LazyGroup):
    """Turns every expected failure into one line on stderr and a category's exit code."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_HELP_ASKED] = _asks_for_help(args, ctx.help_option_names)
        return super().parse_args(ctx, args)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        # The root's callback, which runs next, decides whether the command may run
        # against a server: it needs the subcommand's words too.
        ctx.meta[_COMMAND_WORDS] = (name, rest)
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LedgerError as error:
            fail(str(error), exit_code_for(error))
        except Exception as error:
            failure = _database_failure(error)
            if failure is None:
                raise
            fail(*failure)


#: ``ctx.meta`` key: the command line asks a subcommand for its help.
_HELP_ASKED = "tokenledger.help_asked"

#: ``ctx.meta`` key: the top-level command's name and the arguments after it.
_COMMAND_WORDS = "tokenledger.command_words"


def _asks_for_help(args: list[str], help_names: list[str]) -> bool:
    for arg in args:
        if arg == "--":
            return False
        if arg in help_names:
            return True
    return False


def _database_failure(error: Exception) -> tuple[str, int] | None:
    """The line and exit code for a database error that reached the command line, else None."""
    # SQLAlchemy is looked up, not imported: an error can only be one of its exceptions
    # when a command has imported it already, and most --help and usage paths never do.
    exc = sys.modules.get("sqlalchemy.exc")
    if exc is None:
        return None
    if isinstance(error, exc.OperationalError):
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        return f"database error: {reason}", EXIT_CODES[StorageError]
    if isinstance(error, exc.DataError):
        # A value the database cannot hold (PostgreSQL refuses NUL bytes in text) that
        # reached a query without a rule of its own: bad input, said in one line.
        reason = str(error.orig).strip().splitlines()[0] if error.orig else "invalid value"
        return f"invalid input: {reason}", EXIT_CODES[ValidationError]
    return None


def fail(message: str, code: int) -> None:
    click.echo(f"tokenledger: error: {message}", err=True)
    sys.exit(code)


def _command(module: str, attribute: str, summary: str) -> LazyCommand:
    return LazyCommand(f"tokenledger.cli.{module}", attribute, summary)


#: Every top-level command: its module, and its one-line help for 'tokenledger --help'.
COMMANDS: dict[str, LazyCommand] = {
    "accounts": _command(
        "accounts", "accounts", "Create and list Dyff-style accounts (users with an account id)."
    ),
    "audit": _command(
        "audit", "audit", "Who did what, when and why: the events matching every filter given."
    ),
    "auth": _command("auth", "auth", "Log in to a server, and present tokens to other tools."),
    "db": _command("db", "db", "Create or migrate the ledger's database."),
    "demo": _command(
        "demo",
        "demo",
        "Walk through the ledger on a fresh SQLite file (./tokenledger-demo.db).",
    ),
    "events": _command(
        "log",
        "events_command",
        "Print the log as JSON lines, one event each, in log order (the operator's: admins "
        "and auditors read their org's events with 'audit').",
    ),
    "endpoints": _command(
        "data_plane",
        "endpoints",
        "Register, list and delete endpoints (data proxies: S3-compatible gateways).",
    ),
    "grants": _command("grants", "grants", "Grant users permissions on resources."),
    "keys": _command("keys", "keys", "Rotate and list the keys that sign access tokens."),
    "log": _command("log", "log", "Inspect the event log and prove it has not been altered."),
    "orgs": _command("orgs", "orgs", "Create organizations and manage their members."),
    "relay": _command(
        "relay",
        "relay",
        "Publish every event, once and in log order, to a NATS JetStream stream as CloudEvents, "
        "then each commit as it lands (until --once's head, or Ctrl-C / SIGTERM).",
    ),
    "replay": _command(
        "replay",
        "replay",
        "Rebuild every projection from the log and swap the result in atomically.",
    ),
    "resources": _command(
        "resources",
        "resources",
        "Resources (org/project/...): create, delete, list, show; set license and data class.",
    ),
    "roles": _command(
        "roles",
        "roles",
        "Create, list and delete roles, their policies and their keys (admin, auditor and "
        "member are predefined).",
    ),
    "s3-credentials": _command(
        "data_plane",
        "s3_credentials",
        "Issue, list and revoke service accounts' S3 credentials at their trusted endpoints.",
    ),
    "serve": _command(
        "serve",
        "serve",
        "Serve the HTTP API (management, OAuth2 token, introspection, revocation).",
    ),
    "sessions": _command("sessions", "sessions", "List and end users' login sessions."),
    "service-accounts": _command(
        "service_accounts",
        "service_accounts",
        "Create, re-permission, delete and list service accounts.",
    ),
    "tokens": _command("tokens", "tokens", "Issue, list, revoke and verify tokens."),
    "users": _command("users", "users", "Create, disable and list users."),
    "webhooks": _command(
        "webhooks",
        "webhooks",
        "Create, list and delete an org's webhooks, and see their deliveries.",
    ),
    "notify": _command(
        "webhooks",
        "notify",
        "Deliver webhooks: follow the log, send each delivery signed, retry failures (until "
        "--once's round is done, or Ctrl-C / SIGTERM).",
    ),
}


@click.group(
    cls=LedgerGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "--db",
    "database_url",
    envvar="TOKENLEDGER_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    help="Database URL (sqlite:///FILE, postgresql://...) or a SQLite file path.",
)
@click.option(
    "--server",
    "server",
    envvar=SERVER_ENV,
    metavar="URL",
    help="Work through this server's HTTP API instead of a database (default: the server "
    "'tokenledger auth login' saved, unless --db is given).",
)
@click.version_option(package_name="tokenledger")
@click.pass_context
def cli(ctx: click.Context, database_url: str, server: str | None) -> None:
    """TokenLedger: an event-sourced ledger of accounts, permissions and tokens."""
    context = CliContext(database_url=database_url, requested_server=server)
    ctx.obj = context
    ctx.call_on_close(context.close)
    if ctx.meta.get(_HELP_ASKED):
        return  # help needs neither a database nor a server (nor their modules)
    name, rest = ctx.meta.get(_COMMAND_WORDS, (None, []))
    if name == "auth":
        return  # logging in and out names its server itself
    database_only = _database_only(name, rest)
    asked_for_a_server = server is not None and bool(server.strip())
    # A command that needs the database works on it whatever a login saved: only a server
    # asked for (--server, TOKENLEDGER_SERVER) is refused, and the credentials file is not read.
    context.server = (
        None if database_only and not asked_for_a_server else _chosen_server(ctx, server)
    )
    if context.server is not None:
        if database_only is not None:
            raise needs_the_database(database_only)
        return
    # A malformed URL fails before any command runs. Not when a command is only asked for
    # its help, which needs no database (and checking would import SQLAlchemy): a command
    # that opens the database checks the URL then.
    from tokenledger.store.engine import parse_database_url

    parse_database_url(database_url)


def _chosen_server(ctx: click.Context, server: str | None) -> str | None:
    """The server to work through, or None for the database.

    The command line comes before the environment, which comes before the credentials file;
    --db and --server from the same place contradict each other.
    """
    database_rank, server_rank = _rank(ctx, "database_url"), _rank(ctx, "server")
    if server is not None and server.strip():
        if server_rank == database_rank:
            where = "on the command line" if server_rank == 2 else "in the environment"
            raise ValidationError(
                f"give --db or --server, not both ({where}: TOKENLEDGER_DATABASE_URL and "
                f"{SERVER_ENV} are their variables)"
            )
        if server_rank < database_rank:
            return None
        from tokenledger.client.urls import server_url

        return server_url(server)
    if database_rank > 0:
        return None
    from tokenledger.client.credentials import load_credentials

    saved = load_credentials()
    return saved.server if saved is not None else None


def _rank(ctx: click.Context, parameter: str) -> int:
    """2 for the command line, 1 for the environment, 0 for a default."""
    source = ctx.get_parameter_source(parameter)
    if source is click.core.ParameterSource.COMMANDLINE:
        return 2
    return 1 if source is click.core.ParameterSource.ENVIRONMENT else 0


def _database_only(name: str | None, rest: list[str]) -> str | None:
    """The words of the command when it cannot run against a server, else None."""
    if name is None or name not in DATABASE_ONLY:
        return None
    subcommands = DATABASE_ONLY[name]
    first = rest[0] if rest and not rest[0].startswith("-") else None
    if subcommands is None:
        return f"{name} {first}" if first is not None and name in _GROUPS else name
    return f"{name} {first}" if first in subcommands else None


#: The database-only commands that are groups (their subcommand names the refusal).
_GROUPS = frozenset({"db", "keys", "log"})


def main() -> None:
    cli(prog_name="tokenledger")
