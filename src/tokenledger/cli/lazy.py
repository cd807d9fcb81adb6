"""Command groups that import a subcommand's module only when that subcommand is used.

Importing every command module up front would import the ledger, SQLAlchemy and the HTTP
API for ``tokenledger --help``; a lazy group names each subcommand's module instead, and
imports it when the subcommand is looked up.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

__all__ = ["LazyCommand", "LazyGroup"]


@dataclass(frozen=True, slots=True)
class LazyCommand:
    """Where a subcommand is defined, and (optionally) its one-line help for the listing.

    With a ``summary`` the group's ``--help`` lists the command without importing its module;
    the summary must be the first paragraph of the command's help (a test checks it is).
    """

    module: str
    attribute: str
    summary: str | None = None


class LazyGroup(click.Group):
    """A group whose subcommands named in ``lazy_commands`` are imported on first use."""

    def __init__(
        self,
        *args: Any,
        lazy_commands: Mapping[str, LazyCommand] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, LazyCommand] = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in self.lazy_commands:
            command = self.load(cmd_name)
        return command

    def load(self, name: str) -> click.Command:
        """Import the subcommand ``name`` and keep it as an ordinary subcommand."""
        spec = self.lazy_commands[name]
        command = getattr(importlib.import_module(spec.module), spec.attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{spec.module}.{spec.attribute} is not a click command")
        self.add_command(command, name)
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.NoSuchCommand as error:
            # click suggests close names from the commands it holds, which need not include
            # those not imported yet: suggest from every name instead.
            raise click.NoSuchCommand(
                error.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The listing shows each command's one-line help only: stand-ins carrying the known
        # summaries let click lay it out without importing those commands' modules.
        listed: dict[str, click.Command] = {}
        for name in self.list_commands(ctx):
            spec = self.lazy_commands.get(name)
            if name not in self.commands and spec is not None and spec.summary is not None:
                listed[name] = click.Command(name, help=spec.summary)
            else:
                command = self.get_command(ctx, name)
                if command is not None:
                    listed[name] = command
        stand_in = click.Group(self.name, commands=listed)
        click.Group.format_commands(stand_in, ctx, formatter)
