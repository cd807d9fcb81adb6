"""The blast radius of a token (``audit blast-radius``, ``GET /v2/audit/blast-radius/{id}``)
and revoking what is live in it, on SQLite and PostgreSQL, through the command line and
HTTP; time moved with freezegun.

The world: ann (admin of acme) holds ``root``. Acting through it she minted a token for the
service account ci (``ci``), which minted a token in turn (``grandchild``); two more for
ci, one since expired (``short``) and one since revoked (``revoked``); a client credential
for ci, and S3 credentials for ci at the endpoint the operator made it trust; she set a
grant, changed bob's role and created an account. The operator derived
``derived`` from ``root``. Through another token of hers (``other``) she set a grant that is
none of ``root``'s doing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command as migration
from alembic.config import Config
from fastapi.testclient import TestClient
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory

from helpers import assert_one_line_error, cli_run, tamper
from tokenledger.api import ApiSettings, create_asgi_app
from tokenledger.domain import commands as c
from tokenledger.domain.model import AccessVia, Actor, ActorKind
from tokenledger.domain.permissions import Level
from tokenledger.errors import LedgerError
from tokenledger.service import Ledger
from tokenledger.service.keys import KeyStore
from tokenledger.store import open_event_store
from tokenledger.store.engine import WRITE_OPTION
from tokenledger.store.migrate import migrations_dir

OPERATOR = Actor.operator("root")
ANN = "ann@acme.io"
BOB = "bob@acme.io"
CAROL = "carol@other.io"
CI = "ci@acme.service.tokenledger"
START = datetime(2026, 5, 1, tzinfo=UTC)

#: What ``root`` reached: how, from which, and whether it is live, by name.
EXPECTED = {
    "root": ("root", None, True),
    "ci": ("issued through", "root", True),
    "short": ("issued through", "root", False),
    "revoked": ("issued through", "root", False),
    "client": ("issued through", "root", True),
    "s3": ("issued through", "root", True),
    "derived": ("derived from", "root", True),
    "grandchild": ("issued through", "ci", True),
}
LIVE_TOKENS = {"root", "ci", "derived", "grandchild"}
LIVE_CREDENTIALS = ["client", "s3"]


@dataclass
class World:
    url: str
    ledger: Ledger
    clock: FrozenDateTimeFactory
    ids: dict[str, str]
    secrets: dict[str, str]

    def name_of(self, credential_id: str) -> str:
        return {v: k for k, v in self.ids.items()}[credential_id]

    def head(self) -> int:
        return self.ledger.store.head().position

    def cli(self, *args: str, who: str | None = "root") -> Any:
        token = self.secrets[who] if who is not None else None
        result = cli_run(self.url, *args, "--json", token=token)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def refused(self, code: int, args: list[str], *fragments: str, who: str | None) -> None:
        before = self.head()
        token = self.secrets[who] if who is not None else None
        assert_one_line_error(cli_run(self.url, *args, token=token), code, *fragments)
        assert self.head() == before


def _issue(ledger: Ledger, actor: Actor, principal: str | None, grant: str, **extra: Any):
    resource, level = grant.rsplit(":", 1)
    extra.setdefault("expires_in", timedelta(days=7))
    command = c.IssueToken(
        principal=principal, grants=[{"resource": resource, "level": level}], **extra
    )
    result = ledger.execute(command, actor)
    assert result.issued is not None
    assert result.secret is not None
    return result.issued.token_id, result.secret


def build_world(url: str, clock: FrozenDateTimeFactory) -> World:
    ledger = Ledger(open_event_store(url, auto_upgrade=True))
    for command in (
        c.CreateOrg(org="acme"),
        c.CreateOrg(org="other"),
        c.CreateResource(path="acme/alpha"),
        c.CreateResource(path="acme/beta"),
        c.CreateUser(email=ANN),
        c.CreateUser(email=BOB),
        c.CreateUser(email=CAROL),
        c.AddMember(org="acme", email=ANN, role="admin"),
        c.AddMember(org="acme", email=BOB),
        c.AddMember(org="other", email=CAROL, role="admin"),
        c.SetGrant(principal=BOB, resource="acme/alpha", level=Level.WRITE),
        c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level=Level.WRITE),
    ):
        ledger.execute(command, OPERATOR)
    ids: dict[str, str] = {}
    secrets: dict[str, str] = {}
    ids["root"], secrets["root"] = _issue(ledger, OPERATOR, ANN, "acme:admin")
    ids["other"], secrets["other"] = _issue(ledger, OPERATOR, ANN, "acme:admin")
    ids["bob"], secrets["bob"] = _issue(ledger, OPERATOR, BOB, "acme/alpha:read")
    ids["carol"], secrets["carol"] = _issue(ledger, OPERATOR, CAROL, "other:admin")
    through_root = Actor.through_token(ANN, ids["root"])
    ids["ci"], secrets["ci"] = _issue(ledger, through_root, CI, "acme/alpha:write")
    ids["grandchild"], _ = _issue(
        ledger, Actor.through_token(CI, ids["ci"]), None, "acme/alpha:read", parent_id=ids["ci"]
    )
    ids["short"], _ = _issue(
        ledger, through_root, CI, "acme/alpha:read", expires_in=timedelta(hours=1)
    )
    ids["revoked"], _ = _issue(ledger, through_root, CI, "acme/alpha:read")
    ledger.execute(c.RevokeToken(token_id=ids["revoked"]), OPERATOR)
    ids["derived"], _ = _issue(ledger, OPERATOR, None, "acme/beta:read", parent_id=ids["root"])
    ledger.execute(c.SetGrant(principal=BOB, resource="acme/beta", level=Level.WRITE), through_root)
    ledger.execute(c.AddMember(org="acme", email=BOB, role="admin"), through_root)
    ledger.execute(
        c.CreateServiceAccount(name="etl", org="acme", resource="acme/beta", level=Level.READ),
        through_root,
    )
    client = ledger.execute(c.IssueClientCredential(account_id=CI), through_root)
    ids["client"] = client.events[0].client_id  # type: ignore[attr-defined]
    ledger.execute(c.CreateEndpoint(name="gateway", url="http://gateway.test"), OPERATOR)
    ledger.execute(c.TrustEndpoint(account_id=CI, endpoint="gateway"), OPERATOR)
    s3 = ledger.execute(c.IssueS3Credential(account_id=CI, endpoint="gateway"), through_root)
    ids["s3"] = s3.events[0].access_key_id  # type: ignore[attr-defined]
    ledger.execute(
        c.SetGrant(principal=BOB, resource="acme/alpha", level=Level.ADMIN),
        Actor.through_token(ANN, ids["other"]),
    )
    clock.tick(timedelta(hours=2))  # ``short`` has expired
    return World(url=url, ledger=ledger, clock=clock, ids=ids, secrets=secrets)


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    with freeze_time(START) as clock:
        built = build_world(database_url, clock)
        yield built
        built.ledger.close()


def reached(world: World, answer: dict[str, Any]) -> dict[str, tuple[str, str | None, bool]]:
    return {
        world.name_of(r["id"]): (
            r["how"],
            world.name_of(r["source"]) if r["source"] else None,
            r["live"],
        )
        for r in answer["credentials"]
    }


def changes(answer: dict[str, Any]) -> dict[str, list[tuple[str, bool | None]]]:
    found: dict[str, list[tuple[str, bool | None]]] = {}
    for command in answer["commands"]:
        for change in command["changes"]:
            found.setdefault(change["event_type"], []).append((change["kind"], change["live"]))
    return found


# -- the radius ------------------------------------------------------------------------------


def test_the_radius_holds_what_the_token_minted_transitively_and_what_is_live(
    world: World,
) -> None:
    before = world.head()
    answer = world.cli("audit", "blast-radius", world.ids["root"])
    assert world.head() == before
    assert answer["token_id"] == world.ids["root"]
    assert reached(world, answer) == EXPECTED
    assert {world.name_of(i) for i in answer["live_tokens"]} == LIVE_TOKENS
    assert [world.name_of(i) for i in answer["live_credentials"]] == LIVE_CREDENTIALS
    statuses = {world.name_of(r["id"]): r["status"] for r in answer["credentials"]}
    assert (statuses["short"], statuses["revoked"]) == ("expired", "revoked")


def test_the_commands_acted_through_it_and_what_they_changed(world: World) -> None:
    answer = world.cli("audit", "blast-radius", world.ids["root"], who=None)  # the operator
    assert {world.name_of(command["via"]) for command in answer["commands"]} == {"root", "ci"}
    found = changes(answer)
    assert found["GrantSet"] == [("grant", True)]  # only the grant set through root
    assert found["MemberRoleChanged"] == [("role", True)]
    assert found["ServiceAccountCreated"] == [("account", True)]
    assert found["ClientCredentialIssued"] == [("credential", True)]
    assert found["S3CredentialIssued"] == [("credential", True)]
    # ci, grandchild (through ci), short (expired), revoked: in log order.
    assert found["TokenIssued"] == [
        ("credential", True),
        ("credential", True),
        ("credential", False),
        ("credential", False),
    ]
    positions = [command["changes"][0]["position"] for command in answer["commands"]]
    assert positions == sorted(positions)


def test_a_change_undone_since_is_shown_as_not_live(world: World) -> None:
    world.ledger.execute(c.AddMember(org="acme", email=BOB, role="member"), OPERATOR)
    world.ledger.execute(
        c.DeleteServiceAccount(account_id="etl@acme.service.tokenledger"), OPERATOR
    )
    found = changes(world.cli("audit", "blast-radius", world.ids["root"]))
    assert found["MemberRoleChanged"] == [("role", False)]
    assert found["ServiceAccountCreated"] == [("account", False)]


def test_the_text_is_a_tree_of_what_it_reached(world: World) -> None:
    result = cli_run(
        world.url, "audit", "blast-radius", world.ids["root"], token=world.secrets["root"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    ids = world.ids
    assert lines[0] == f"{ids['root']}  {ANN}  active"
    ci_line = next(line for line in lines if ids["ci"] in line)
    grandchild_line = next(line for line in lines if ids["grandchild"] in line)
    # The grandchild hangs one level below ci.
    assert grandchild_line.index(ids["grandchild"]) > ci_line.index(ids["ci"])
    assert f"(issued through {ids['ci']})" in grandchild_line
    assert f"{ids['revoked']}  {CI}  revoked" in result.stdout
    assert f"{ids['short']}  {CI}  expired" in result.stdout
    assert f"client credential {ids['client']}  {CI}  active" in result.stdout
    assert "granted" in result.stdout
    assert "[live]" in result.stdout
    assert f"S3 credentials {ids['s3']}  {CI}  active" in result.stdout
    assert "live: 4 token(s), 2 other credential(s)" in lines
    # What --revoke leaves in force, each with the command undoing it by hand.
    left = lines[lines.index("not withdrawn by --revoke:") + 1 :]
    assert f"(by hand: tokenledger grants set {BOB} acme/beta none)" in left[0]
    assert f"(by hand: tokenledger orgs add-member acme {BOB} --role member)" in left[1]


def test_a_leaf_token_reaches_nothing_but_itself(world: World) -> None:
    answer = world.cli("audit", "blast-radius", world.ids["bob"], who="bob")
    assert reached(world, answer) == {"bob": ("root", None, True)}
    assert answer["commands"] == []


def test_a_walk_past_its_bound_stops_and_says_so(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tokenledger.domain.blast_radius.MAX_CREDENTIALS", 3)
    answer = world.cli("audit", "blast-radius", world.ids["root"])
    assert answer["truncated"] is True
    assert len(answer["credentials"]) == 3
    text = cli_run(
        world.url, "audit", "blast-radius", world.ids["root"], token=world.secrets["root"]
    )
    assert "(cut short at 3 credentials)" in text.stdout


def test_an_issuer_trust_made_through_it_is_reached_and_followed(world: World) -> None:
    """A trust outlives the token that made it: whoever holds ID tokens of the issuer gets
    the account's access tokens. It is in the radius, live until withdrawn, and what was
    done through it (its access tokens act ``via`` it) is followed in turn."""
    ledger = world.ledger
    made = ledger.execute(
        c.TrustIssuer(
            account_id=CI,
            issuer="https://ci.example",
            subject="repo:acme/site:*",
            audience="ledger",
        ),
        Actor.through_token(ANN, world.ids["root"]),
    )
    trust = made.events[0].trust_id  # type: ignore[attr-defined]
    exchanged = AccessVia(
        source=trust,
        jti="jti-1",
        grants=(),
        issued_at=datetime.now(UTC),
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    ledger.execute(
        c.RevokeToken(token_id=world.ids["ci"]), Actor.through_access_token(CI, exchanged)
    )
    root = world.ids["root"]
    answer = world.cli("audit", "blast-radius", root, who=None)
    found = {r["id"]: r for r in answer["credentials"]}
    assert found[trust]["kind"] == "issuer trust"
    assert (found[trust]["source"], found[trust]["how"], found[trust]["live"]) == (
        root,
        "issued through",
        True,
    )
    assert trust in answer["live_credentials"]
    through_trust = [command for command in answer["commands"] if command["via"] == trust]
    assert [change["event_type"] for change in through_trust[0]["changes"]] == [
        "TokenRevoked",  # ci's token
        "TokenRevoked",  # and the one derived from it, its cascade
    ]
    text = cli_run(world.url, "audit", "blast-radius", root, "--revoke")
    assert f"issuer trust {trust}" in text.stdout

    ledger.execute(c.UntrustIssuer(account_id=CI, issuer="https://ci.example"), OPERATOR)
    after = world.cli("audit", "blast-radius", root, who=None)
    assert trust not in after["live_credentials"]
    assert {r["id"]: r["live"] for r in after["credentials"]}[trust] is False


def test_a_webhook_or_provider_set_through_it_is_judged_live_until_undone(world: World) -> None:
    """A webhook sends an org's events to whoever made it, and a provider decides who logs
    in, long after the token is revoked: each is shown live while it stands."""
    ledger = world.ledger
    through_root = Actor.through_token(ANN, world.ids["root"])
    hook = ledger.execute(
        c.CreateWebhook(org="acme", url="https://hooks.example/in", events=("token.issued",)),
        through_root,
    ).events[0]
    ledger.execute(
        c.SetIdentityProvider(org="acme", issuer="https://login.evil.example", oidc_client_id="x"),
        through_root,
    )
    root = world.ids["root"]
    shown = changes(world.cli("audit", "blast-radius", root, who=None))
    assert shown["WebhookCreated"] == [("webhook", True)]
    assert shown["IdentityProviderSet"] == [("identity provider", True)]

    ledger.execute(c.DeleteWebhook(webhook_id=hook.webhook_id), OPERATOR)  # type: ignore[attr-defined]
    ledger.execute(
        c.SetIdentityProvider(org="acme", issuer="https://login.acme.example", oidc_client_id="x"),
        OPERATOR,
    )
    shown = changes(world.cli("audit", "blast-radius", root, who=None))
    assert shown["WebhookCreated"] == [("webhook", False)]
    assert shown["IdentityProviderSet"] == [("identity provider", False)]


def test_a_walk_cut_short_is_not_revoked_in_part(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the bound, live tokens go unseen (here ``late``, minted last): revoking what was
    seen would leave them live, and a second run would find nothing left and say so. The
    revocation is refused whole, and appends nothing."""
    world.ids["late"], _ = _issue(
        world.ledger, Actor.through_token(ANN, world.ids["root"]), CI, "acme/alpha:read"
    )
    monkeypatch.setattr("tokenledger.domain.blast_radius.MAX_CREDENTIALS", 3)
    root = world.ids["root"]
    assert world.cli("audit", "blast-radius", root, who=None)["truncated"] is True
    for extra in ([], ["--yes"], ["--yes", "--json"]):
        world.refused(2, ["audit", "blast-radius", root, "--revoke", *extra], "cut short", who=None)


def test_a_log_that_records_via_is_not_migrated_below_it(world: World) -> None:
    """The chain covers ``via``: dropping the column would break it, so the downgrade past
    the revision that added it is refused, and the log stays as it was and verifies."""
    store = world.ledger.store
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with (
        store.engine.connect().execution_options(**{WRITE_OPTION: True}) as connection,
        connection.begin(),
    ):
        config.attributes["connection"] = connection
        with pytest.raises(RuntimeError, match="break the chain"):
            migration.downgrade(config, "0015")
    columns = {column["name"] for column in sa.inspect(store.engine).get_columns("events")}
    assert "via" in columns
    assert store.verify_chain().ok


def test_tokens_minted_before_the_log_kept_via_are_found_by_issued_by(world: World) -> None:
    # A log recorded before ``via``: the minted tokens and credentials are still found
    # (their issue events name what their issuer acted through), the other commands not.
    tamper(world.ledger.store.engine, "UPDATE events SET via = NULL")
    answer = world.cli("audit", "blast-radius", world.ids["root"], who=None)
    assert reached(world, answer) == EXPECTED
    assert answer["commands"] == []


def test_commands_record_what_they_acted_through(world: World) -> None:
    result = world.cli("grants", "set", BOB, "acme/alpha", "read", who="other")
    entries = world.cli("audit", "--correlation-id", result["correlation_id"], who=None)
    assert {entry["via"] for entry in entries} == {world.ids["other"]}
    assert world.ledger.store.verify_chain().ok


# -- who may ask -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "code", "said"),
    # bob and ci belong to the token's org and are told why; carol, of another org, is told
    # what an unknown id gets, so that she learns neither that it exists nor whose it is.
    [("bob", 4, "may not"), ("ci", 4, "may not"), ("carol", 3, "no token")],
)
def test_whoever_may_not_see_the_token_is_refused(
    world: World, who: str, code: int, said: str
) -> None:
    world.refused(code, ["audit", "blast-radius", world.ids["root"]], said, who=who)
    world.refused(
        code, ["audit", "blast-radius", world.ids["root"], "--revoke", "--yes"], said, who=who
    )


def test_the_commands_shown_are_only_those_the_caller_may_see_of_the_log(world: World) -> None:
    """Ann leaves acme (her token is revoked with it) but stays a member of another org: she
    may still ask her old token's radius, and is shown none of acme's events, not even what
    the service account's token did there after she left; the operator is shown all."""
    ledger = world.ledger
    ledger.execute(c.CreateResource(path="other/docs"), OPERATOR)
    ledger.execute(c.AddMember(org="other", email=ANN), OPERATOR)
    ledger.execute(c.SetGrant(principal=ANN, resource="other/docs", level=Level.READ), OPERATOR)
    world.ids["elsewhere"], world.secrets["elsewhere"] = _issue(
        ledger, OPERATOR, ANN, "other/docs:read"
    )
    ledger.execute(c.RemoveMember(org="acme", email=ANN), OPERATOR)
    ci = Actor.through_token(CI, world.ids["ci"])
    world.ids["later"], _ = _issue(
        ledger,
        ci,
        None,
        "acme/alpha:read",
        parent_id=world.ids["ci"],
        expires_in=timedelta(hours=1),
    )

    root = world.ids["root"]
    everything = world.cli("audit", "blast-radius", root, who=None)
    assert "later" in {world.name_of(r["id"]) for r in everything["credentials"]}
    assert len(everything["commands"]) == 10  # the world's commands through the radius
    shown = world.cli("audit", "blast-radius", root, who="elsewhere")
    assert shown["commands"] == []
    changed = sum(len(command["changes"]) for command in everything["commands"])
    assert (shown["hidden_changes"], everything["hidden_changes"]) == (changed, 0)
    # The walk is whole all the same: of what was reached she is shown her own tokens, as
    # her token list would show them, and told how many more there are.
    own = [r for r in everything["credentials"] if r["principal"] == ANN]
    assert shown["credentials"] == own
    assert shown["hidden_credentials"] == len(everything["credentials"]) - len(own)
    assert world.cli("audit", "--actor", CI, who="elsewhere") == []


def test_an_unknown_or_malformed_token_id_is_one_line(world: World) -> None:
    unknown = "tok_" + "0" * 16
    world.refused(3, ["audit", "blast-radius", unknown], "no token", who=None)
    world.refused(2, ["audit", "blast-radius", "not a token"], "token", who=None)
    world.refused(2, ["audit", "blast-radius", world.secrets["bob"]], "secret", who=None)
    world.refused(2, ["audit", "blast-radius", world.ids["root"], "--yes"], "--revoke", who=None)


# -- revoking what is live -------------------------------------------------------------------


def revoked_names(world: World, answer: dict[str, Any]) -> tuple[set[str], list[str]]:
    """The tokens, then the other credentials (client, then S3) an answer says revoked."""
    others = [*answer["revoked_client_ids"], *answer["revoked_access_key_ids"]]
    return (
        {world.name_of(i) for i in answer["revoked"]},
        [world.name_of(i) for i in others],
    )


def live_in_radius(world: World) -> list[str]:
    answer = world.cli("audit", "blast-radius", world.ids["root"], who=None)
    return sorted(world.name_of(r["id"]) for r in answer["credentials"] if r["live"])


def test_revoke_previews_then_revokes_every_live_credential_in_one_command(
    world: World,
) -> None:
    root = world.ids["root"]
    before = world.head()
    preview = world.cli("audit", "blast-radius", root, "--revoke", who=None)
    assert preview["dry_run"] is True
    assert revoked_names(world, preview) == (LIVE_TOKENS, LIVE_CREDENTIALS)
    assert preview["count"] == len(LIVE_TOKENS) + len(LIVE_CREDENTIALS)
    text = cli_run(world.url, "audit", "blast-radius", root, "--revoke")
    assert text.exit_code == 0, text.output
    assert "nothing was revoked (add --yes to revoke them)" in text.stdout
    listed = text.stdout.split("nothing was revoked")[1]
    for name in LIVE_TOKENS:
        assert f"  token {world.ids[name]}" in listed
    assert f"  client credential {world.ids['client']}" in listed
    assert f"  S3 credentials {world.ids['s3']}" in listed
    assert world.head() == before

    done = world.cli(
        "audit", "blast-radius", root, "--revoke", "--yes", "--reason", "leak", who=None
    )
    assert revoked_names(world, done) == (LIVE_TOKENS, LIVE_CREDENTIALS)
    entries = world.cli("audit", "--correlation-id", done["correlation_id"], who=None)
    assert len(entries) == world.head() - before  # everything it appended, in one command
    keys = ("token_id", "client_id", "access_key_id")
    named = {world.name_of(next(e["data"][k] for k in keys if k in e["data"])) for e in entries}
    assert named == LIVE_TOKENS | set(LIVE_CREDENTIALS)
    assert {e["data"]["detail"] for e in entries if e["data"]["reason"] == "requested"} == {"leak"}
    assert live_in_radius(world) == []


def test_a_second_revoke_finds_nothing_to_revoke(world: World) -> None:
    root = world.ids["root"]
    world.cli("audit", "blast-radius", root, "--revoke", "--yes", who=None)
    head = world.head()
    again = world.cli("audit", "blast-radius", root, "--revoke", "--yes", who=None)
    assert again["count"] == 0
    assert again["token_id"] == root
    withdrawn = {key: value for key, value in again.items() if isinstance(value, list)}
    assert withdrawn.pop("not_withdrawn")  # the grants and roles changed through it
    assert withdrawn == {
        "revoked": [],
        "revoked_client_ids": [],
        "revoked_access_key_ids": [],
        "withdrawn_trust_ids": [],
        "deleted_webhook_ids": [],
        "untrusted_endpoints": [],
    }
    text = cli_run(world.url, "audit", "blast-radius", root, "--revoke", "--yes")
    assert text.exit_code == 0, text.output
    assert f"nothing live in the blast radius of {root}: nothing to revoke" in text.stdout
    assert world.head() == head


def test_revoke_text_names_what_it_revoked_and_its_correlation_id(world: World) -> None:
    text = cli_run(world.url, "audit", "blast-radius", world.ids["root"], "--revoke", "--yes")
    assert text.exit_code == 0, text.output
    assert "revoked (correlation " in text.stdout
    assert f"  client credential {world.ids['client']}" in text.stdout
    assert f"  S3 credentials {world.ids['s3']}" in text.stdout
    assert live_in_radius(world) == []


def test_revoke_by_the_token_s_own_holder_revokes_all_of_it(world: World) -> None:
    done = world.cli("audit", "blast-radius", world.ids["root"], "--revoke", "--yes")
    assert revoked_names(world, done) == (LIVE_TOKENS, LIVE_CREDENTIALS)


def test_what_is_no_longer_live_when_it_runs_is_skipped(world: World) -> None:
    # Revoked between the preview and the command: the command revokes the rest.
    command = world.ledger.blast_radius(OPERATOR, world.ids["root"]).revocation(None)
    assert command is not None
    world.ledger.execute(c.RevokeClientCredential(client_id=world.ids["client"]), OPERATOR)
    world.ledger.execute(c.RevokeToken(token_id=world.ids["grandchild"]), OPERATOR)
    result = world.ledger.execute(command, OPERATOR)
    assert {world.name_of(i) for i in result.revoked} == LIVE_TOKENS - {"grandchild"}
    assert result.outcome.revoked_client_ids == ()
    assert result.outcome.revoked_access_key_ids == (world.ids["s3"],)


def test_what_the_caller_may_not_see_is_counted_and_never_revoked(world: World) -> None:
    # No longer an admin of acme, ann still sees her token's radius, but of the service
    # account's credentials in it (which her token list would no longer show her) only how
    # many there are: --revoke revokes her own tokens and leaves those, saying so.
    world.ledger.execute(c.AddMember(org="acme", email=ANN, role="member"), OPERATOR)
    hidden = len(EXPECTED) - 2  # all but root and derived
    shown = world.cli("audit", "blast-radius", world.ids["root"])
    assert {world.name_of(r["id"]) for r in shown["credentials"]} == {"root", "derived"}
    assert shown["hidden_credentials"] == hidden
    text = cli_run(
        world.url,
        "audit",
        "blast-radius",
        world.ids["root"],
        "--revoke",
        token=world.secrets["root"],
    )
    assert f"({hidden} more credential(s) you may not see)" in text.stdout
    assert world.ids["ci"] not in text.stdout

    done = world.cli("audit", "blast-radius", world.ids["root"], "--revoke", "--yes")
    assert revoked_names(world, done) == ({"root", "derived"}, [])
    assert f"{hidden} more credential(s) you may not see" in done["not_withdrawn"]
    args = ["audit", "blast-radius", world.ids["root"], "--revoke", "--yes"]
    again = cli_run(world.url, *args, token=world.secrets["other"])
    assert "that you may withdraw: nothing to revoke" in again.stdout
    assert live_in_radius(world) == sorted(LIVE_TOKENS - {"root", "derived"} | {*LIVE_CREDENTIALS})


def test_one_reached_through_a_credential_hidden_from_the_caller_does_not_name_it(
    world: World,
) -> None:
    # A token of ann's the log records as issued through ci's token (an operator's hand):
    # ann, no longer an admin, sees it but not ci's token, whose id is not shown.
    ledger = world.ledger
    through_ci = Actor(kind=ActorKind.OPERATOR, principal="root", token_id=world.ids["ci"])
    world.ids["via ci"], _ = _issue(ledger, through_ci, ANN, "acme:read")
    ledger.execute(c.AddMember(org="acme", email=ANN, role="member"), OPERATOR)
    shown = world.cli("audit", "blast-radius", world.ids["root"])
    found = {world.name_of(r["id"]): (r["source"], r["how"]) for r in shown["credentials"]}
    assert found["via ci"] == (None, "issued through one you may not see")
    text = cli_run(
        world.url, "audit", "blast-radius", world.ids["root"], token=world.secrets["root"]
    )
    assert world.ids["via ci"] in text.stdout
    assert world.ids["ci"] not in text.stdout
    assert "via one you may not see" in text.stdout


@pytest.mark.parametrize("refused_one", ["client", "s3"])
def test_a_credential_the_actor_may_not_revoke_refuses_the_whole_command_alike(
    world: World, refused_one: str
) -> None:
    # ci, through its own token, may revoke its tokens but no S3 credentials (a service
    # account manages none), and no credential of another account: each refusal is the
    # one that credential's own revocation gives, and nothing is revoked.
    through_ci = Actor.through_token(CI, world.ids["ci"])
    etl = "etl@acme.service.tokenledger"
    if refused_one == "client":
        other = world.ledger.execute(c.IssueClientCredential(account_id=etl), OPERATOR)
        credential_id = other.events[0].client_id  # type: ignore[attr-defined]
        alone: c.Command = c.RevokeClientCredential(client_id=credential_id)
        named = {"client_ids": [credential_id]}
    else:
        alone = c.RevokeS3Credential(account_id=CI, access_key_id=world.ids["s3"])
        named = {"access_key_ids": [world.ids["s3"]]}
    command = c.build(c.RevokeCredentials, token_ids=[world.ids["ci"]], **named)
    before = world.head()
    with pytest.raises(LedgerError) as single:
        world.ledger.execute(alone, through_ci)
    with pytest.raises(LedgerError) as together:
        world.ledger.execute(command, through_ci)
    assert str(together.value) == str(single.value)
    assert type(together.value) is type(single.value)
    assert world.head() == before


def test_dry_run_shows_every_event_and_appends_nothing(world: World) -> None:
    before = world.head()
    preview = world.cli(
        "audit", "blast-radius", world.ids["root"], "--revoke", "--yes", "--dry-run", who=None
    )
    assert preview["dry_run"] is True
    assert revoked_names(world, preview) == (LIVE_TOKENS, LIVE_CREDENTIALS)
    types = sorted(event["event_type"] for event in preview["events"])
    assert types == sorted(
        ["TokenRevoked"] * len(LIVE_TOKENS) + ["ClientCredentialRevoked", "S3CredentialRevoked"]
    )
    assert len({event["correlation_id"] for event in preview["events"]}) == 1
    text = cli_run(world.url, "audit", "blast-radius", world.ids["root"], "--revoke", "--dry-run")
    assert text.exit_code == 0, text.output
    assert "S3CredentialRevoked" in text.stdout
    assert world.head() == before


def test_the_ids_criterion_selects_only_the_live_tokens_it_names(world: World) -> None:
    named = ",".join(world.ids[n] for n in ("root", "short", "revoked", "grandchild"))
    preview = world.cli("tokens", "revoke", "--where", f"ids={named}", who=None)
    assert {world.name_of(t["token_id"]) for t in preview["tokens"]} == {"root", "grandchild"}
    world.refused(2, ["tokens", "revoke", "--where", "ids=tok_nonsense"], "token id", who=None)
    world.refused(2, ["tokens", "revoke", "--where", "ids= , "], "ids", who=None)


# -- HTTP ------------------------------------------------------------------------------------


@pytest.fixture
def http(world: World, tmp_path: Path) -> Iterator[TestClient]:
    keys = KeyStore(tmp_path / "keys.json")
    keys.rotate(datetime.now(UTC))
    app = create_asgi_app(world.ledger, ApiSettings(issuer="https://ledger.test", keys=keys))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def bearer(world: World, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.secrets[who]}"}


def test_http_answers_the_radius_as_the_command_line_does(world: World, http: TestClient) -> None:
    root = world.ids["root"]
    response = http.get(f"/v2/audit/blast-radius/{root}", headers=bearer(world, "root"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert reached(world, body) == EXPECTED
    assert changes(body) == changes(world.cli("audit", "blast-radius", root))


@pytest.mark.parametrize(
    ("who", "token", "status"),
    [
        ("carol", "root", 404),  # another org's token reads as an unknown id
        ("bob", "root", 403),
        ("root", "tok_" + "0" * 16, 404),
        ("root", "nonsense", 400),
    ],
)
def test_http_refusals_are_one_line_errors_and_append_nothing(
    world: World, http: TestClient, who: str, token: str, status: int
) -> None:
    token_id = world.ids.get(token, token)
    before = world.head()
    response = http.get(f"/v2/audit/blast-radius/{token_id}", headers=bearer(world, who))
    assert response.status_code == status, response.text
    body = response.json()
    expected = {403: "insufficient_scope", 404: "not_found", 400: "invalid_request"}[status]
    assert body["error"] == expected
    assert "\n" not in body["error_description"]
    assert world.head() == before


def test_http_revokes_the_whole_radius_in_one_call(world: World, http: TestClient) -> None:
    headers = bearer(world, "root")
    path = f"/v2/audit/blast-radius/{world.ids['root']}/revoke"
    before = world.head()
    preview = http.post(path, params={"dry_run": "true"}, headers=headers)
    assert preview.status_code == 200, preview.text
    assert preview.json()["dry_run"] is True
    assert revoked_names(world, preview.json()) == (LIVE_TOKENS, LIVE_CREDENTIALS)
    assert len(preview.json()["events"]) == len(LIVE_TOKENS) + len(LIVE_CREDENTIALS)
    assert world.head() == before

    done = http.post(path, json={"reason": "leak"}, headers=headers)
    assert done.status_code == 200, done.text
    assert revoked_names(world, done.json()) == (LIVE_TOKENS, LIVE_CREDENTIALS)
    assert {e["data"].get("detail") for e in done.json()["events"]} >= {"leak"}
    entries = world.cli("audit", "--correlation-id", done.json()["correlation_id"], who=None)
    assert len(entries) == len(done.json()["events"]) == world.head() - before
    assert live_in_radius(world) == []

    head = world.head()  # root is revoked now: another of ann's tokens asks again
    again = http.post(path, headers=bearer(world, "other"))
    assert again.status_code == 404, again.text
    assert "nothing to revoke" in again.json()["error_description"]
    assert world.head() == head


def test_http_revoke_leaves_what_the_caller_may_not_see(world: World, http: TestClient) -> None:
    world.ledger.execute(c.AddMember(org="acme", email=ANN, role="member"), OPERATOR)
    headers = bearer(world, "root")
    path = f"/v2/audit/blast-radius/{world.ids['root']}/revoke"
    before = world.head()
    assert http.post(path, headers=bearer(world, "carol")).status_code == 404
    bad = http.post(path, json={"reason": "x", "other": 1}, headers=headers)
    assert bad.status_code in (400, 422), bad.text
    assert world.head() == before
    done = http.post(path, headers=headers)
    assert done.status_code == 200, done.text
    assert revoked_names(world, done.json()) == ({"root", "derived"}, [])
    assert live_in_radius(world) == sorted(LIVE_TOKENS - {"root", "derived"} | {*LIVE_CREDENTIALS})
