"""The root command group, shared options, and the mapping of errors to exit codes."""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import click
from sqlalchemy.exc import DataError, OperationalError

from tokenledger.domain.authority import require_operator
from tokenledger.domain.model import Actor
from tokenledger.errors import (
    Conflict,
    IntegrityViolation,
    LedgerError,
    NotFound,
    PermissionDenied,
    StorageError,
    ValidationError,
)
from tokenledger.ledger import Ledger
from tokenledger.store import DEFAULT_DATABASE_URL, EventStore
from tokenledger.store.engine import parse_database_url

__all__ = ["EXIT_CODES", "TOKEN_ENV", "CliContext", "cli", "main"]

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


@dataclass
class CliContext:
    database_url: str
    _ledger: Ledger | None = field(default=None, repr=False)

    def store(self) -> EventStore:
        """The ledger's event store (one engine for the whole command)."""
        return self.ledger().store

    def ledger(self) -> Ledger:
        if self._ledger is None:
            self._ledger = Ledger.open(self.database_url)
        return self._ledger

    def actor(self) -> Actor:
        """The principal of ``TOKENLEDGER_TOKEN`` when it is set, else the local operator."""
        secret = os.environ.get(TOKEN_ENV, "").strip()
        if secret:
            return self.ledger().authenticate(secret)
        return Actor.operator(_os_user())

    def require_operator(self, action: str) -> None:
        """Maintenance commands are the operator's: a caller acting through a token (in
        ``TOKENLEDGER_TOKEN``) is refused, whatever the token."""
        require_operator(self.actor(), action)

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()


def _os_user() -> str:
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError, ImportError):
        return "unknown"


class LedgerGroup(click.Group):
    """Turns every expected failure into one line on stderr and a category's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LedgerError as error:
            fail(str(error), exit_code_for(error))
        except OperationalError as error:
            reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
            fail(f"database error: {reason}", EXIT_CODES[StorageError])
        except DataError as error:
            # A value the database cannot hold (PostgreSQL refuses NUL bytes in text) that
            # reached a query without a rule of its own: bad input, said in one line.
            reason = str(error.orig).strip().splitlines()[0] if error.orig else "invalid value"
            fail(f"invalid input: {reason}", EXIT_CODES[ValidationError])


def fail(message: str, code: int) -> None:
    click.echo(f"tokenledger: error: {message}", err=True)
    sys.exit(code)


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    parse_database_url(database_url)  # a malformed URL fails before any command runs
    context = CliContext(database_url=database_url)
    ctx.obj = context
    ctx.call_on_close(context.close)


def _register() -> None:
    from tokenledger.cli import (
        audit,
        auth,
        db,
        demo,
        grants,
        keys,
        log,
        orgs,
        replay,
        resources,
        roles,
        serve,
        service_accounts,
        tokens,
        users,
    )

    cli.add_command(db.db)
    cli.add_command(demo.demo)
    cli.add_command(log.log)
    cli.add_command(log.events_command)
    cli.add_command(replay.replay)
    cli.add_command(audit.audit)
    for group in (
        orgs.orgs,
        users.users,
        resources.resources,
        grants.grants,
        roles.roles,
        service_accounts.service_accounts,
        tokens.tokens,
        auth.auth,
    ):
        cli.add_command(group)
    service_accounts.service_accounts.add_command(keys.credentials)
    cli.add_command(keys.keys)
    cli.add_command(serve.serve)


_register()


def main() -> None:
    cli(prog_name="tokenledger")
