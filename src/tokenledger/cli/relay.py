"""``tokenledger relay``: publish the log to a NATS JetStream stream and keep following it."""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.defaults import (
    DEFAULT_RELAY_SOURCE,
    DEFAULT_RELAY_STREAM,
    DEFAULT_RELAY_SUBJECT,
)

if TYPE_CHECKING:
    from tokenledger.service.relay import Relay


@click.command("relay")
@click.option(
    "--to",
    "url",
    required=True,
    metavar="nats://HOST:PORT",
    help="The NATS server (with JetStream) to publish to.",
)
@click.option(
    "--stream",
    default=DEFAULT_RELAY_STREAM,
    show_default=True,
    help="The JetStream stream; created (storing --subject) when missing.",
)
@click.option(
    "--subject",
    default=DEFAULT_RELAY_SUBJECT,
    show_default=True,
    help="The subject every event is published on.",
)
@click.option(
    "--source",
    default=DEFAULT_RELAY_SOURCE,
    show_default=True,
    help="The CloudEvents source attribute.",
)
@click.option(
    "--once",
    is_flag=True,
    help="Publish up to the log's current head, then exit.",
)
@click.option("--quiet", is_flag=True, help="Say nothing when caught up; failures are still said.")
@click.pass_obj
def relay(
    obj: CliContext, url: str, stream: str, subject: str, source: str, once: bool, quiet: bool
) -> None:
    """Publish every event, once and in log order, to a NATS JetStream stream as CloudEvents,
    then each commit as it lands (until --once's head, or Ctrl-C / SIGTERM).

    The stream is the checkpoint: each start resumes after the last event it holds."""
    from tokenledger.service.relay import Relay, relay_target

    obj.require_operator("relay the whole log")
    target = relay_target(url, stream=stream, subject=subject, source=source)
    relayer = Relay(
        obj.store(),
        target,
        progress=(lambda _line: None) if quiet else _say,
        trouble=_say,
    )
    asyncio.run(_until_signalled(relayer, once))


def _say(line: str) -> None:
    click.echo(f"tokenledger: relay: {line}", err=True)


async def _until_signalled(relayer: Relay, once: bool) -> None:
    """Run the relay; SIGINT and SIGTERM stop it once the publish under way is acknowledged."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await relayer.run(stop, once=once)
