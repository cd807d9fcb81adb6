"""``tokenledger webhooks``: an org's webhook subscriptions (docs/webhooks.md), and
``tokenledger notify``, the deliverer."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

import click

from tokenledger.cli.app import CliContext
from tokenledger.cli.dry_run import dry_run_option
from tokenledger.cli.output import echo_json, format_timestamp

if TYPE_CHECKING:
    from tokenledger.domain.webhooks import WebhookView
    from tokenledger.service.keys import KeyStore
    from tokenledger.service.webhooks import DeliveryView

__all__ = ["notify", "webhooks"]


def _webhook_dict(webhook: WebhookView) -> dict[str, object]:
    return {
        "id": webhook.webhook_id,
        "org": webhook.org,
        "url": webhook.url,
        "events": list(webhook.events),
        "created_at": format_timestamp(webhook.created_at),
    }


def _delivery_dict(delivery: DeliveryView) -> dict[str, object]:
    def when(moment: Any) -> str | None:
        return format_timestamp(moment) if moment is not None else None

    return {
        "id": delivery.delivery_id,
        "webhook_id": delivery.webhook_id,
        "type": delivery.event_type,
        "position": delivery.position,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "created_at": when(delivery.created_at),
        "next_attempt_at": when(delivery.next_attempt_at),
        "delivered_at": when(delivery.delivered_at),
        "last_error": delivery.last_error,
    }


def _key_store(obj: CliContext) -> KeyStore | None:
    """The key file beside the database (None against a server, which has its own: the
    secret is made there)."""
    if obj.remote:
        return None
    from tokenledger.service.keys import KeyStore
    from tokenledger.store import parse_database_url

    return KeyStore.from_environment(parse_database_url(obj.database_url))


@click.group()
def webhooks() -> None:
    """Create, list and delete an org's webhooks, and see their deliveries."""


@webhooks.command("create")
@click.argument("org")
@click.option("--url", required=True, help="Where deliveries are POSTed (http or https).")
@click.option(
    "--events",
    required=True,
    metavar="TYPE,...",
    help="The event types to deliver, e.g. token.revoked,token.expiring (docs/webhooks.md).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def create_webhook(obj: CliContext, org: str, url: str, events: str, as_json: bool) -> None:
    """A webhook delivering ORG's events of the --events types to --url.

    The signing secret is printed this once: the ledger keeps no copy of it (it derives it
    again, from its key file, only to sign deliveries).
    """
    with obj.previewing():
        created = obj.ledger().create_webhook(
            obj.actor(),
            _key_store(obj),
            org=org,
            url=url,
            events=tuple(events.split(",")),
            dry_run=obj.dry_run,
        )
    if as_json:
        echo_json(
            {
                **_webhook_dict(created.webhook),
                "secret": created.secret,
                "correlation_id": created.result.correlation_id,
            }
        )
        return
    webhook = created.webhook
    click.echo(f"created webhook {webhook.webhook_id} for {webhook.org} at {webhook.url}")
    click.echo(f"events: {','.join(webhook.events)}")
    click.echo(f"secret: {created.secret}")
    click.echo("(shown once; keep it where the receiver checks signatures)", err=True)


@webhooks.command("list")
@click.option("--org", default=None, help="Only this org's webhooks.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_webhooks(obj: CliContext, org: str | None, as_json: bool) -> None:
    """The webhooks of --org, or of every org you manage webhooks of."""
    found = obj.ledger().webhooks(obj.actor(), org)
    if as_json:
        echo_json([_webhook_dict(webhook) for webhook in found])
        return
    for webhook in found:
        click.echo(
            f"{webhook.webhook_id}  {webhook.org:<16} {webhook.url}  {','.join(webhook.events)}"
        )


@webhooks.command("get")
@click.argument("webhook_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def get_webhook(obj: CliContext, webhook_id: str, as_json: bool) -> None:
    """One webhook."""
    webhook = obj.ledger().get_webhook(obj.actor(), webhook_id)
    if as_json:
        echo_json(_webhook_dict(webhook))
        return
    click.echo(f"id:      {webhook.webhook_id}")
    click.echo(f"org:     {webhook.org}")
    click.echo(f"url:     {webhook.url}")
    click.echo(f"events:  {','.join(webhook.events)}")
    click.echo(f"created: {format_timestamp(webhook.created_at)}")


@webhooks.command("delete")
@click.argument("webhook_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def delete_webhook(obj: CliContext, webhook_id: str, as_json: bool) -> None:
    """Delete a webhook: nothing more is sent to it, pending deliveries included."""
    from tokenledger.domain import commands as c  # pydantic loads with a command only

    result = obj.execute(c.build(c.DeleteWebhook, webhook_id=webhook_id))
    if as_json:
        echo_json({"id": webhook_id, "deleted": True, "correlation_id": result.correlation_id})
    else:
        click.echo(f"deleted webhook {webhook_id}")


@webhooks.command("rotate-secret")
@click.argument("webhook_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@dry_run_option
@click.pass_obj
def rotate_secret(obj: CliContext, webhook_id: str, as_json: bool) -> None:
    """Give the webhook a new signing secret, printed this once.

    For a day deliveries carry the previous secret's signature too, so that the receiver
    keeps accepting them while it is given the new one.
    """
    with obj.previewing():
        rotated = obj.ledger().rotate_webhook_secret(
            obj.actor(), _key_store(obj), webhook_id, dry_run=obj.dry_run
        )
    if as_json:
        echo_json(
            {
                **_webhook_dict(rotated.webhook),
                "secret": rotated.secret,
                "correlation_id": rotated.result.correlation_id,
            }
        )
        return
    click.echo(f"new secret for webhook {rotated.webhook.webhook_id}")
    click.echo(f"secret: {rotated.secret}")
    click.echo("(shown once; the previous one also signs deliveries for a day)", err=True)


@webhooks.command("deliveries")
@click.argument("webhook_id")
@click.option("--limit", default=50, show_default=True, help="How many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def list_deliveries(obj: CliContext, webhook_id: str, limit: int, as_json: bool) -> None:
    """The webhook's latest deliveries and where each stands (delivered, pending,
    retrying)."""
    ledger = obj.ledger()
    found = ledger.webhook_deliveries(obj.actor(), webhook_id, limit=limit)
    if as_json:
        echo_json([_delivery_dict(delivery) for delivery in found])
        return
    for delivery in found:
        line = f"{delivery.delivery_id}  {delivery.event_type:<24} {delivery.state:<9}"
        line += f" attempts={delivery.attempts}"
        if delivery.last_error:
            line += f"  last error: {delivery.last_error}"
        click.echo(line)


# -- the deliverer -------------------------------------------------------------------------


@click.command("notify")
@click.option(
    "--once",
    is_flag=True,
    help="Queue what the log holds, try each due delivery once, then exit.",
)
@click.option(
    "--expiry-warnings",
    default="14d,7d,1d",
    show_default=True,
    metavar="DURATION,...",
    help="How long before a token's expiry each token.expiring warning goes out.",
)
@click.option(
    "--unused-after",
    default="90d",
    show_default=True,
    metavar="DURATION",
    help="How long a live token goes unused (last used, or issued if never) before a "
    "token.unused notice ('off': none).",
)
@click.option(
    "--source",
    default="urn:tokenledger",
    show_default=True,
    help="The CloudEvents source attribute.",
)
@click.option("--quiet", is_flag=True, help="Say nothing of deliveries; failures are still said.")
@click.pass_obj
def notify(
    obj: CliContext,
    once: bool,
    expiry_warnings: str,
    unused_after: str,
    source: str,
    quiet: bool,
) -> None:
    """Deliver webhooks: follow the log, send each delivery signed, retry failures (until
    --once's round is done, or Ctrl-C / SIGTERM).

    Each start resumes from the checkpoint kept in the database. At least once: a delivery
    interrupted by a crash is sent again with the same webhook-id."""
    from tokenledger.domain.commands import parse_duration
    from tokenledger.service.notify import Notifier, parse_warnings

    obj.require_operator("deliver webhooks")
    warnings = parse_warnings(expiry_warnings)
    unused = None if unused_after.strip().lower() == "off" else parse_duration(unused_after)
    keys = _key_store(obj)
    assert keys is not None  # the operator works on the database
    notifier = Notifier(
        obj.store(),
        keys.webhook_key(),
        warnings=warnings,
        unused_after=unused,
        source=source,
        progress=(lambda _line: None) if quiet else say_notify,
        trouble=say_notify,
    )
    try:
        if once:
            notifier.run_once()
            return
        stop = threading.Event()

        def stopping(_signum: int, _frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, stopping)
        signal.signal(signal.SIGINT, stopping)
        say_notify("delivering webhooks (Ctrl-C or SIGTERM stops)")
        notifier.run(stop)
    finally:
        notifier.close()


def say_notify(line: str) -> None:
    click.echo(f"tokenledger: notify: {line}", err=True)
