"""The root command group, shared options, and the mapping of errors to exit codes.

The commands live in their own modules, imported only when one of them runs (or shows its
help): ``tokenledger --help`` and every command's ``--help`` stay clear of SQLAlchemy, the
ledger and the HTTP API, and a command imports what it uses.
"""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from tokenledger.cli.defaults import DEFAULT_DATABASE_URL
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
    from tokenledger.domain.model import Actor
    from tokenledger.service import Ledger
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


def ledger_type() -> type[Ledger]:
    """The ledger class the commands open (the one place naming its module)."""
    from tokenledger.service import Ledger

    return Ledger


@dataclass
class CliContext:
    database_url: str
    _ledger: Ledger | None = field(default=None, repr=False)

    def store(self) -> EventStore:
        """The ledger's event store (one engine for the whole command)."""
        return self.ledger().store

    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = ledger_type().open(self.database_url)
        return self._ledger

    def actor(self) -> Actor:
        """The principal of ``TOKENLEDGER_TOKEN`` when it is set, else the local operator."""
        from tokenledger.domain.model import Actor

        secret = os.environ.get(TOKEN_ENV, "").strip()
        if secret:
            return self.ledger().authenticate(secret)
        return Actor.operator(_os_user())

    def require_operator(self, action: str) -> None:
        """Maintenance commands are the operator's: a caller acting through a token (in
        ``TOKENLEDGER_TOKEN``) is refused, whatever the token."""
        from tokenledger.domain.authority import require_operator

        require_operator(self.actor(), action)

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()


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
    "audit": _command(
        "audit", "audit", "Who did what, when and why: the events matching every filter given."
    ),
    "auth": _command("auth", "auth", "Present the token in TOKENLEDGER_TOKEN to other tools."),
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
    "grants": _command("grants", "grants", "Grant users permissions on resources."),
    "keys": _command("keys", "keys", "Rotate and list the keys that sign access tokens."),
    "log": _command("log", "log", "Inspect the event log and prove it has not been altered."),
    "orgs": _command("orgs", "orgs", "Create organizations and manage their members."),
    "replay": _command(
        "replay",
        "replay",
        "Rebuild every projection from the log and swap the result in atomically.",
    ),
    "resources": _command(
        "resources",
        "resources",
        "Create, delete and list resources (org/project/collection/dataset/object).",
    ),
    "roles": _command(
        "roles", "roles", "Create and list roles (admin, auditor and member are predefined)."
    ),
    "serve": _command(
        "serve",
        "serve",
        "Serve the HTTP API (management, OAuth2 token, introspection, revocation).",
    ),
    "service-accounts": _command(
        "service_accounts",
        "service_accounts",
        "Create, re-permission, delete and list service accounts.",
    ),
    "tokens": _command("tokens", "tokens", "Issue, list, revoke and verify tokens."),
    "users": _command("users", "users", "Create, disable and list users."),
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
@click.version_option(package_name="tokenledger")
@click.pass_context
def cli(ctx: click.Context, database_url: str) -> None:
    """TokenLedger: an event-sourced ledger of accounts, permissions and tokens."""
    if not ctx.meta.get(_HELP_ASKED):
        # A malformed URL fails before any command runs. Not when a command is only asked
        # for its help, which needs no database (and checking would import SQLAlchemy): a
        # command that opens the database checks the URL then.
        from tokenledger.store.engine import parse_database_url

        parse_database_url(database_url)
    context = CliContext(database_url=database_url)
    ctx.obj = context
    ctx.call_on_close(context.close)


def main() -> None:
    cli(prog_name="tokenledger")
