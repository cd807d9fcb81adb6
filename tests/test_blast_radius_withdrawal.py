"""``audit blast-radius --revoke`` withdraws every live thing of the radius, not only its
credentials: the issuer trusts it reached, and the webhooks and endpoint trusts made through
it, each as its own removal command decides it; what no command removes (an identity
provider) and what it leaves on purpose (grants, roles, accounts) is listed with how to undo
it by hand. On SQLite and PostgreSQL (the world of ``test_blast_radius``), time frozen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from freezegun import freeze_time

from helpers import cli_run
from test_blast_radius import ANN, CI, OPERATOR, START, World, _issue, build_world
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor, ActorKind
from tokenledger.errors import LedgerError

ISSUER = "https://ci.example"
SUBJECT = "repo:acme/site:*"
HOOK_URL = "https://hooks.example/in"
PROVIDER = "https://login.evil.example"


@pytest.fixture(name="world")
def _world(database_url: str) -> Iterator[World]:
    with freeze_time(START) as clock:
        built = build_world(database_url, clock)
        yield built
        built.ledger.close()


def made_through_root(world: World) -> dict[str, str]:
    """Through ``root``: an issuer trust, a webhook, an endpoint trusted with S3 credentials
    there, and the org's identity provider."""
    ledger = world.ledger
    through_root = Actor.through_token(ANN, world.ids["root"])
    ledger.execute(c.CreateEndpoint(name="depot", url="http://depot.test"), OPERATOR)
    trust = ledger.execute(
        c.TrustIssuer(account_id=CI, issuer=ISSUER, subject=SUBJECT, audience="ledger"),
        through_root,
    ).events[0]
    hook = ledger.execute(
        c.CreateWebhook(org="acme", url=HOOK_URL, events=("token.issued",)), through_root
    ).events[0]
    trusted = ledger.execute(c.TrustEndpoint(account_id=CI, endpoint="depot"), through_root)
    s3 = ledger.execute(c.IssueS3Credential(account_id=CI, endpoint="depot"), through_root)
    ledger.execute(
        c.SetIdentityProvider(org="acme", issuer=PROVIDER, oidc_client_id="x"), through_root
    )
    return {
        "trust": trust.trust_id,  # type: ignore[attr-defined]
        "webhook": hook.webhook_id,  # type: ignore[attr-defined]
        "endpoint": trusted.events[0].endpoint_id,  # type: ignore[attr-defined]
        "depot_s3": s3.events[0].access_key_id,  # type: ignore[attr-defined]
    }


def revoke(world: World, *extra: str, who: str | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = world.cli(
        "audit", "blast-radius", world.ids["root"], "--revoke", *extra, who=who
    )
    return answer


def test_revoke_withdraws_trusts_webhooks_and_endpoint_trusts_in_the_same_command(
    world: World,
) -> None:
    made = made_through_root(world)
    before = world.head()
    preview = revoke(world)
    assert world.head() == before
    assert preview["withdrawn_trust_ids"] == [made["trust"]]
    assert preview["deleted_webhook_ids"] == [made["webhook"]]
    pair = {"account_id": CI, "endpoint_id": made["endpoint"]}
    assert preview["untrusted_endpoints"] == [pair]
    text = cli_run(world.url, "audit", "blast-radius", world.ids["root"], "--revoke")
    assert f"  issuer trust {made['trust']}" in text.stdout
    assert f"  webhook {made['webhook']}" in text.stdout
    assert f"  endpoint trust {CI} {made['endpoint']}" in text.stdout

    done = revoke(world, "--yes", "--reason", "leak")
    for key in ("withdrawn_trust_ids", "deleted_webhook_ids", "untrusted_endpoints"):
        assert done[key] == preview[key]
    # The S3 credentials at the endpoint are revoked once, though named and held there both.
    assert done["revoked_access_key_ids"].count(made["depot_s3"]) == 1
    entries = world.cli("audit", "--correlation-id", done["correlation_id"], who=None)
    assert len(entries) == world.head() - before  # one command, all of it
    with world.ledger.view() as view:
        trust = view.issuer_trust(made["trust"])
        assert trust is not None
        assert trust.revoked
        webhook = view.webhook(made["webhook"])
        assert webhook is not None
        assert webhook.deleted
        assert made["endpoint"] not in {t.endpoint_id for t in view.trusted_endpoints_of(CI)}

    again = revoke(world, "--yes")
    assert again["count"] == 0


def test_each_withdrawal_is_the_ordinary_removal_s_decision(world: World) -> None:
    """The events for a trust, a webhook and an endpoint trust are those ``UntrustIssuer``,
    ``DeleteWebhook`` and ``UntrustEndpoint`` decide alone (the endpoint's cascade too)."""
    made = made_through_root(world)
    ledger = world.ledger
    alone = [
        c.UntrustIssuer(account_id=CI, issuer=ISSUER, subject=SUBJECT, reason="leak"),
        c.DeleteWebhook(webhook_id=made["webhook"]),
        c.UntrustEndpoint(account_id=CI, endpoint=made["endpoint"], reason="leak"),
    ]
    expected = [event for command in alone for event in ledger.preview(command, OPERATOR).events]
    command = ledger.blast_radius(OPERATOR, world.ids["root"]).revocation("leak")
    assert command is not None
    together = ledger.preview(command, OPERATOR).events
    for event in expected:
        if type(event).__name__ != "S3CredentialRevoked":  # revoked as named, once
            assert event in together


def test_what_no_command_withdraws_is_listed_with_how_to_undo_it(world: World) -> None:
    made_through_root(world)
    answer = world.cli("audit", "blast-radius", world.ids["root"], who=None)
    by_hand = {entry["undo"] for entry in answer["by_hand"]}
    assert any("tokenledger orgs set-idp acme" in undo for undo in by_hand)
    assert "tokenledger grants set bob@acme.io acme/beta none" in by_hand
    assert "tokenledger orgs add-member acme bob@acme.io --role member" in by_hand
    done = revoke(world, "--yes")
    assert any("set-idp acme" in line for line in done["not_withdrawn"])
    # Grants and roles changed through it stand: undoing them could remove legitimate access.
    with world.ledger.view() as view:
        assert view.memberships("bob@acme.io")["acme"] == "admin"
        provider = view.identity_provider("acme")
        assert provider is not None
        assert provider.issuer == PROVIDER


def test_what_the_caller_sees_but_may_not_withdraw_is_said_in_the_preview(
    world: World,
) -> None:
    """A service account sees its own S3 credentials but never manages them: in the radius
    of its token, the preview names them with the refusal their own revocation gives, and
    --revoke withdraws the rest (its tokens), leaving them live."""
    ledger = world.ledger
    # S3 credentials the log records as made through ci's token (which only an operator's
    # hand could do: no service account may issue them).
    ledger.execute(c.RevokeS3Credential(account_id=CI, access_key_id=world.ids["s3"]), OPERATOR)
    s3 = ledger.execute(
        c.IssueS3Credential(account_id=CI, endpoint="gateway"),
        Actor(kind=ActorKind.OPERATOR, principal="root", token_id=world.ids["ci"]),
    ).events[0]
    key = s3.access_key_id  # type: ignore[attr-defined]
    through_ci = Actor.through_token(CI, world.ids["ci"])
    with pytest.raises(LedgerError) as alone:
        ledger.execute(c.RevokeS3Credential(account_id=CI, access_key_id=key), through_ci)
    refusal = str(alone.value)

    answer = world.cli("audit", "blast-radius", world.ids["ci"], who="ci")
    refused = {w["id"]: w["refused"] for w in answer["withdrawals"]}
    assert refused[key] == refusal
    assert refused[world.ids["ci"]] is None
    text = cli_run(
        world.url, "audit", "blast-radius", world.ids["ci"], "--revoke", token=world.secrets["ci"]
    )
    assert f"S3 credentials {key}: {refusal}" in text.stdout

    before = world.head()
    done = world.cli("audit", "blast-radius", world.ids["ci"], "--revoke", "--yes", who="ci")
    assert world.ids["ci"] in done["revoked"]
    assert done["revoked_access_key_ids"] == []
    assert f"S3 credentials {key}: {refusal}" in done["not_withdrawn"]
    assert world.head() > before
    with ledger.view() as view:
        credential = view.s3_credential(key)
        assert credential is not None
        assert not credential.revoked


def test_a_webhook_deleted_or_trust_withdrawn_since_the_preview_is_skipped(
    world: World,
) -> None:
    made = made_through_root(world)
    command = world.ledger.blast_radius(OPERATOR, world.ids["root"]).revocation(None)
    assert command is not None
    world.ledger.execute(c.DeleteWebhook(webhook_id=made["webhook"]), OPERATOR)
    world.ledger.execute(c.UntrustIssuer(account_id=CI, issuer=ISSUER), OPERATOR)
    result = world.ledger.execute(command, OPERATOR)
    types = {type(event).__name__ for event in result.events}
    assert "WebhookDeleted" not in types
    assert "IssuerUntrusted" not in types
    assert "EndpointUntrusted" in types


def test_a_token_issued_since_for_no_one_in_the_radius_is_not_touched(world: World) -> None:
    made_through_root(world)
    world.ids["unrelated"], _ = _issue(world.ledger, OPERATOR, ANN, "acme:read")
    done = revoke(world, "--yes")
    assert world.ids["unrelated"] not in done["revoked"]
