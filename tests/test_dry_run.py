"""A dry run of any change: ``--dry-run`` on every command line that appends, ``?dry_run=true``
on every mutating call of the HTTP API, ``Ledger.preview`` under both.

A dry run appends nothing (the log's head does not move), answers with the very events the
real run then appends (the same types, streams, positions and data, once the ids and secret
hashes minted afresh are numbered in order), refuses what the real run refuses in the same
words and exit code or status, shows no secret, writes no key file and holds no write lock.
On SQLite and PostgreSQL, time frozen with freezegun so that both runs record the same times.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import msgspec
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from freezegun import freeze_time

from api_helpers import SA as CI_OF_API
from api_helpers import Api, make_api
from helpers import assert_one_line_error
from tokenledger.api import create_app
from tokenledger.cli import cli
from tokenledger.domain import commands as c
from tokenledger.domain.model import Actor, ActorKind
from tokenledger.domain.permissions import Level
from tokenledger.service import Ledger
from tokenledger.store import open_event_store
from tokenledger.store.chain import format_timestamp

NOW = "2031-03-04 05:06:07"
OPERATOR = Actor.operator("root")
ORG = "acme"
ANN, BOB, CAROL = "ann@acme.io", "bob@acme.io", "carol@acme.io"
CI = "ci@acme.service.tokenledger"
LOADER = "loader@acme.service.tokenledger"
SESSION = "ses_0123456789abcdef01234567"
IDP = "https://login.acme.example"


# -- a seeded ledger and the command line over it ----------------------------------------------


@dataclass
class Seeded:
    url: str
    keys_file: Path
    ids: dict[str, str]

    def run(self, *args: str, token: str | None = None, server: str | None = None) -> Result:
        env = {"TOKENLEDGER_TOKEN": token, "TOKENLEDGER_KEYS_FILE": str(self.keys_file)}
        where = ["--server", server] if server is not None else ["--db", self.url]
        return CliRunner().invoke(cli, [*where, *args], env=env)

    def head(self) -> int:
        store = open_event_store(self.url)
        try:
            return store.head().position
        finally:
            store.engine.dispose()

    def log(self, after: int = 0) -> list[dict[str, Any]]:
        """The log's events after position ``after``, each as a dry run shows one."""
        store = open_event_store(self.url)
        try:
            return [_record_dict(r) for r in store.read_all(from_position=after + 1)]
        finally:
            store.engine.dispose()


def _record_dict(record: Any) -> dict[str, Any]:
    fields = msgspec.structs.asdict(record)
    fields["data"] = msgspec.json.decode(record.data)
    fields["recorded_at"] = format_timestamp(record.recorded_at)
    return fields


def _seed(ledger: Ledger) -> dict[str, str]:
    for command in (
        c.CreateOrg(org=ORG),
        c.CreateResource(path="acme/alpha"),
        c.CreateResource(path="acme/beta"),
        c.CreateUser(email=ANN),
        c.CreateUser(email=BOB),
        c.AddMember(org=ORG, email=ANN, role="admin"),
        c.AddMember(org=ORG, email=BOB),
        c.SetGrant(principal=BOB, resource="acme/alpha", level=Level.WRITE),
        c.CreateServiceAccount(name="ci", org=ORG, resource="acme/alpha", level=Level.WRITE),
        c.CreateRole(org=ORG, role="reader", grants=[{"resource": "acme/alpha", "level": "read"}]),
        c.CreateEndpoint(name="gateway", url="http://gateway.test"),
        c.SetIdentityProvider(org=ORG, issuer=IDP, oidc_client_id="ledger"),
    ):
        ledger.execute(command, OPERATOR)

    def issue(principal: str, resource: str, level: str) -> tuple[str, str]:
        grants = [{"resource": resource, "level": level}]
        result = ledger.execute(c.IssueToken(principal=principal, grants=grants), OPERATOR)
        assert result.issued is not None
        assert result.secret is not None
        return result.issued.token_id, result.secret

    _, ann_secret = issue(ANN, ORG, "admin")
    ci_token, _ = issue(CI, "acme/alpha", "write")
    bob_token, bob_secret = issue(BOB, "acme/alpha", "write")
    # A token through which an issuer trust, an endpoint trust (with S3 credentials there)
    # and a webhook were made: its blast radius withdraws them all.
    leaked, _ = issue(ANN, ORG, "admin")
    through_leaked = Actor.through_token(ANN, leaked)
    ledger.execute(c.CreateEndpoint(name="depot", url="http://depot.test"), OPERATOR)
    for made in (
        c.TrustEndpoint(account_id=CI, endpoint="depot"),
        c.IssueS3Credential(account_id=CI, endpoint="depot"),
        c.TrustIssuer(
            account_id=CI, issuer="https://build.example", subject="repo:acme/*", audience="x"
        ),
        c.CreateWebhook(org=ORG, url="https://hooks.example/leak", events=("token.issued",)),
    ):
        ledger.execute(made, through_leaked)
    ledger.execute(
        c.StartSession(
            session_id=SESSION,
            org=ORG,
            email=BOB,
            issuer=IDP,
            subject="bob",
            refresh_hash="ab" * 32,
        ),
        Actor(kind=ActorKind.USER, principal=BOB),
    )
    return {
        "ci_token": ci_token,
        "bob_token": bob_token,
        "bob_secret": bob_secret,
        "ann_secret": ann_secret,
        "leaked": leaked,
    }


@pytest.fixture
def seeded(database_url: str, tmp_path: Path) -> Seeded:
    keys_file = tmp_path / "keys.json"
    with freeze_time(NOW):
        ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
        try:
            ids = _seed(ledger)
        finally:
            ledger.close()
    return Seeded(database_url, keys_file, ids)


# -- comparing a dry run's events with the real run's ------------------------------------------

#: Ids and hashes a command mints afresh (tokens, client credentials, Dyff account ids, secret
#: hashes): a dry run's are its own, numbered in order of appearance on each side.
_MINTED = re.compile(r"\b(tok_[0-9A-Za-z]{16}|cid_[0-9A-Za-z]{16}|[0-9a-f]{32}|[0-9a-f]{64})\b")

#: A secret as the ledger hands one out (a token's, a client's, a role key's, a refresh one's).
_SECRET = re.compile(r"\btl[a-z]_[0-9A-Za-z]{38}\b")

#: The envelope's fields a real run gives its own values: its ids, and the hashes they enter.
_OWN_TO_EACH_RUN = ("event_id", "command_id", "correlation_id", "hash")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _known_ids(events: list[dict[str, Any]]) -> set[str]:
    """The ids and hashes the log holds already (which a command names, never mints)."""
    return {m for event in events for s in _strings(event) for m in _MINTED.findall(s)}


def _normalised(events: list[dict[str, Any]], known: set[str]) -> list[dict[str, Any]]:
    numbered: dict[str, str] = {}

    def number(match: re.Match[str]) -> str:
        found = match.group(0)
        if found in known:
            return found
        return numbered.setdefault(found, f"<minted #{len(numbered) + 1}>")

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return _MINTED.sub(number, value)
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return [walk({k: v for k, v in event.items() if k not in _OWN_TO_EACH_RUN}) for event in events]


# -- every command line that appends -----------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A command line that appends, run on the seeded ledger after the cases before it.
    ``{name}`` in an argument is a seeded id or one an earlier case saved (``save`` maps
    names to keys of the real run's ``--json`` answer)."""

    args: tuple[str, ...]
    save: dict[str, str] = field(default_factory=dict)
    cascade: bool = False  # it revokes or ends more than its own subject


def case(*args: str, save: dict[str, str] | None = None, cascade: bool = False) -> Case:
    return Case(args, save or {}, cascade)


# fmt: off
APPENDING: list[Case] = [
    case("orgs", "create", "beta-org"),
    case("users", "create", CAROL, "--name", "Carol"),
    case("accounts", "create", "--name", "dave@acme.io"),
    case("orgs", "add-member", ORG, CAROL),
    case("orgs", "remove-member", ORG, CAROL),
    case("resources", "create", "acme/gamma"),
    case("resources", "set", "acme/gamma", "--license", "MIT"),
    case("resources", "delete", "acme/gamma"),
    case("grants", "set", BOB, "acme/beta", "read"),
    case("roles", "create", ORG, "writer", "--grant", "acme/beta=write"),
    case("roles", "policy", "new", "acme:writer", "data:get@acme/alpha"),
    case("roles", "policy", "delete", "acme:writer", "data:get@acme/alpha"),
    case("roles", "key", "new", "acme:reader", save={"role_key": "access"}),
    case("roles", "key", "revoke", "acme:reader", "{role_key}"),
    case("roles", "delete", "acme:writer"),
    case("service-accounts", "create", "loader", "--org", ORG, "--resource", "acme/beta",
         "--level", "read"),
    case("service-accounts", "credentials", "create", CI, save={"client": "client_id"}),
    case("service-accounts", "credentials", "disable", "{client}"),
    case("service-accounts", "credentials", "enable", "{client}"),
    case("service-accounts", "credentials", "rotate", "{client}", "--overlap", "1h"),
    case("service-accounts", "credentials", "revoke", "{client}"),
    case("service-accounts", "disable", LOADER),
    case("service-accounts", "enable", LOADER),
    case("service-accounts", "trust-issuer", CI, "--issuer", "https://ci.example",
         "--subject", "repo:acme/*", "--audience", "tokenledger"),
    case("service-accounts", "untrust-issuer", CI, "--issuer", "https://ci.example"),
    case("endpoints", "create", "proxy", "--url", "http://proxy.test"),
    case("service-accounts", "trust-endpoint", CI, "gateway"),
    case("s3-credentials", "create", CI, "gateway", save={"access_key": "access_key_id"}),
    case("s3-credentials", "revoke", CI, "--access-key-id", "{access_key}"),
    case("service-accounts", "untrust-endpoint", CI, "gateway"),
    case("endpoints", "delete", "proxy"),
    case("tokens", "create", "--principal", LOADER, "--name", "first", save={"first": "token_id"}),
    case("tokens", "create", "--parent", "{first}", "--resource", "acme/beta", "--level", "read"),
    case("tokens", "disable", "{first}", cascade=True),
    case("tokens", "enable", "{first}", cascade=True),
    case("tokens", "rotate", "{first}", "--overlap", "1h", save={"second": "token_id"}),
    case("tokens", "revoke", "{first}", cascade=True),
    case("tokens", "revoke", "--where", "principal=" + LOADER, "--yes"),
    case("tokens", "create", "--principal", LOADER, save={"third": "token_id"}),
    case("tokens", "revoke", "--all", "--principal", LOADER),
    case("tokens", "create", "--principal", LOADER, save={"fourth": "token_id"}),
    case("audit", "blast-radius", "{fourth}", "--revoke", "--yes"),
    case("audit", "blast-radius", "{leaked}", "--revoke", "--yes", cascade=True),
    case("orgs", "policy", "set", ORG, "--max-live-tokens", "50"),
    case("orgs", "policy", "clear", ORG),
    case("sessions", "end", SESSION),
    case("orgs", "set-idp", ORG, "--issuer", "https://other-login.example", "--client-id", "x"),
    case("webhooks", "create", ORG, "--url", "https://hooks.example/in", "--events",
         "token.issued", save={"webhook": "id"}),
    case("webhooks", "rotate-secret", "{webhook}"),
    case("webhooks", "delete", "{webhook}"),
    case("service-accounts", "set-permission", CI, "acme/beta", "write", cascade=True),
    case("tokens", "create", "--principal", LOADER, "--name", "last"),
    case("service-accounts", "delete", LOADER, cascade=True),
    case("users", "disable", BOB, cascade=True),
]
# fmt: on

#: Commands that never append to the log: no --dry-run.
READ_ONLY = frozenset(
    {
        "accounts list", "audit explain", "audit export", "audit who-can", "auth header",
        "auth status",
        "auth token", "db upgrade", "endpoints get", "endpoints list", "events", "grants list",
        "keys list", "keys rotate", "log checkpoint", "log head", "log key",
        "log prove consistency", "log prove inclusion", "log verify", "notify", "orgs get",
        "orgs list",
        "orgs members", "orgs policy get", "relay", "replay", "resources get", "resources list",
        "roles key list", "roles list", "roles policy list", "s3-credentials list", "serve",
        "service-accounts credentials list", "service-accounts list",
        "service-accounts trusted-endpoints", "service-accounts trusts", "sessions list",
        "tokens expiring", "tokens get", "tokens list", "tokens live", "tokens unused",
        "tokens verify",
        "users list", "webhooks deliveries", "webhooks get", "webhooks list",
    }
)  # fmt: skip

#: Commands that append without a dry run, and why: logging in and out is the server's OAuth
#: protocol (which refuses dry runs), and the walkthrough writes a file of its own.
NO_DRY_RUN = frozenset({"auth login", "auth logout", "auth refresh", "demo"})


def _filled(args: tuple[str, ...], names: dict[str, str]) -> list[str]:
    return [arg.format(**names) for arg in args]


def test_every_appending_command_previews_exactly_what_it_then_appends(seeded: Seeded) -> None:
    names = dict(seeded.ids)
    with freeze_time(NOW):
        for each in APPENDING:
            args = _filled(each.args, names)
            line = " ".join(args)
            before = seeded.log()
            known = _known_ids(before)
            head = before[-1]["position"]

            dry = seeded.run(*args, "--dry-run", "--json")
            assert dry.exit_code == 0, f"{line}: {dry.output}"
            preview = json.loads(dry.stdout)
            assert preview["dry_run"] is True, line
            assert preview["log_position"] == head, line
            assert seeded.head() == head, f"{line}: the dry run appended"
            plain = seeded.run(*args, "--dry-run")
            assert plain.exit_code == 0, f"{line}: {plain.output}"
            assert "nothing was appended" in plain.stdout, line
            assert seeded.head() == head, f"{line}: the dry run appended"

            real = seeded.run(*args, "--json")
            assert real.exit_code == 0, f"{line}: {real.output}"
            appended = seeded.log(after=head)
            assert appended, f"{line}: appended nothing"
            assert preview["events"][0]["prev_hash"] == before[-1]["hash"], line
            assert _normalised(preview["events"], known) == _normalised(appended, known), line
            assert not _SECRET.search(dry.stdout + plain.stdout), f"{line}: a secret shown"
            if each.cascade:
                assert len(appended) > 1, f"{line}: no cascade to compare"
            answer = json.loads(real.stdout)
            for name, key in each.save.items():
                names[name] = answer[key]


def _commands(group: click.Group, words: list[str]) -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            yield from _commands(command, [*words, name])
        else:
            yield " ".join([*words, name]), command


def test_every_command_but_the_read_only_ones_has_a_dry_run() -> None:
    lacking, needless = [], []
    for line, command in _commands(cli, []):
        has = any("--dry-run" in p.opts for p in command.params)
        if not has and line not in READ_ONLY | NO_DRY_RUN:
            lacking.append(line)
        if has and line in READ_ONLY:
            needless.append(line)
    assert not lacking, f"commands that append without --dry-run: {lacking}"
    assert not needless, f"read-only commands listed with --dry-run: {needless}"
    # The table above runs every appending command.
    run = {_command_words(each.args) for each in APPENDING}
    every = {line for line, _ in _commands(cli, []) if line not in READ_ONLY | NO_DRY_RUN}
    assert every <= run, f"appending commands missing from the table: {sorted(every - run)}"


def _command_words(args: tuple[str, ...]) -> str:
    lines = {line for line, _ in _commands(cli, [])}
    for size in (3, 2, 1):
        words = " ".join(args[:size])
        if words in lines:
            return words
    raise AssertionError(f"no command {args}")


# -- refusals ----------------------------------------------------------------------------------

REFUSED = [
    # (what, arguments, acting as bob, exit code, fragment of the one-line error)
    ("an unknown user", ("users", "disable", "nobody@acme.io"), False, 3, "no user"),
    ("an existing org", ("orgs", "create", ORG), False, 5, "exists"),
    ("a member creating a project", ("resources", "create", "acme/zeta"), True, 4, ""),
    ("a webhook of an unknown org", ("webhooks", "create", "nowhere", "--url",
     "https://hooks.example/in", "--events", "token.issued"), False, 3, "nowhere"),
    ("S3 credentials at an endpoint not trusted", ("s3-credentials", "create", CI, "gateway"),
     False, 5, "does not trust endpoint gateway"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "as_bob", "code", "fragment"),
    [pytest.param(*rest, id=what) for what, *rest in REFUSED],
)
def test_a_refused_dry_run_is_refused_as_the_real_run_is(
    seeded: Seeded, args: tuple[str, ...], as_bob: bool, code: int, fragment: str
) -> None:
    token = seeded.ids["bob_secret"] if as_bob else None
    head = seeded.head()
    dry = seeded.run(*args, "--dry-run", token=token)
    real = seeded.run(*args, token=token)
    assert real.exit_code == code, real.output
    assert_one_line_error(dry, code, fragment)
    assert dry.stderr == real.stderr
    assert seeded.head() == head


def test_policy_dry_run_lists_breaches_and_what_setting_it_would_append(seeded: Seeded) -> None:
    head = seeded.head()
    refused = seeded.run("orgs", "policy", "set", ORG, "--max-lifetime", "service=1d", "--dry-run")
    assert refused.exit_code == 0, refused.output
    assert "live token(s) break this policy" in refused.stdout
    assert "setting it would be refused" in refused.stdout
    capped = seeded.run(
        "orgs", "policy", "set", ORG, "--max-lifetime", "service=1d", "--existing", "cap",
        "--dry-run", "--json",
    )  # fmt: skip
    assert capped.exit_code == 0, capped.output
    answer = json.loads(capped.stdout)
    assert answer["dry_run"] is True
    assert answer["refused"] is None
    assert [b["token_id"] for b in answer["breaches"]] == [seeded.ids["ci_token"]]
    types = [e["event_type"] for e in answer["events"]]
    assert types == ["OrgPolicySet", "TokenExpiryShortened"]
    assert seeded.head() == head


def test_revoke_where_dry_run_shows_the_cascade_it_would_append(seeded: Seeded) -> None:
    head = seeded.head()
    dry = seeded.run("tokens", "revoke", "--where", f"principal={CI}", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["revoked"] == [seeded.ids["ci_token"]]
    listing = seeded.run("tokens", "revoke", "--where", f"principal={CI}", "--json")
    assert json.loads(listing.stdout)["dry_run"] is True  # the listing without --yes stays
    assert seeded.head() == head


def test_dry_run_of_a_provider_secret_rotation_keeps_no_secret(
    seeded: Seeded, tmp_path: Path
) -> None:
    """Giving only a new secret for the provider already set records nothing and keeps the
    secret with the keys: its dry run says nothing would be appended, and keeps nothing."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text("the-first-secret\n")
    second.write_text("the-second-secret\n")
    provider = ("orgs", "set-idp", ORG, "--issuer", IDP, "--client-id", "ledger")
    kept = seeded.run(*provider, "--client-secret-file", str(first))
    assert kept.exit_code == 0, kept.output
    head, keys = seeded.head(), seeded.keys_file.read_bytes()
    dry = seeded.run(*provider, "--client-secret-file", str(second), "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["events"] == []
    assert "the-second-secret" not in dry.output
    assert seeded.keys_file.read_bytes() == keys
    assert seeded.head() == head
    rotated = seeded.run(*provider, "--client-secret-file", str(second))
    assert rotated.exit_code == 0, rotated.output
    assert seeded.keys_file.read_bytes() != keys  # the real run keeps the new secret
    assert seeded.head() == head


# -- against a server --------------------------------------------------------------------------


def test_against_a_server_a_dry_run_is_the_apis(seeded: Seeded) -> None:
    """``--server`` passes ``--dry-run`` to the API: the same events as the database's own
    preview, nothing appended, no secret and no webhook key made, the same refusals."""
    from test_api_serve import Server

    ann, bob = seeded.ids["ann_secret"], seeded.ids["bob_secret"]
    server = Server(seeded.url, seeded.keys_file)
    try:
        head = seeded.head()
        move = ("service-accounts", "set-permission", CI, "acme/beta", "write")
        remote = seeded.run(*move, "--dry-run", "--json", token=ann, server=server.base)
        local = seeded.run(*move, "--dry-run", "--json", token=ann)
        assert remote.exit_code == 0, remote.output
        assert local.exit_code == 0, local.output
        remote_events, local_events = json.loads(remote.stdout), json.loads(local.stdout)
        assert remote_events["revoked"] == [seeded.ids["ci_token"]]
        assert _compared(remote_events["events"]) == _compared(local_events["events"])

        keys_before = seeded.keys_file.read_bytes()
        hook = ("webhooks", "create", ORG, "--url", "https://hooks.example/in")
        created = seeded.run(
            *hook, "--events", "token.issued", "--dry-run", token=ann, server=server.base
        )
        assert created.exit_code == 0, created.output
        assert "WebhookCreated" in created.stdout
        assert "secret" not in created.stdout
        assert seeded.keys_file.read_bytes() == keys_before

        refused = ("resources", "create", "acme/zeta")
        dry = seeded.run(*refused, "--dry-run", token=bob, server=server.base)
        real = seeded.run(*refused, token=bob, server=server.base)
        assert_one_line_error(dry, 4)
        assert dry.stderr == real.stderr
        assert seeded.head() == head
    finally:
        server.stop()


def _compared(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What two previews of one command on one state share (times and ids are their own)."""
    return [(e["position"], e["stream_id"], e["event_type"], e["data"]) for e in events]


# -- no write lock -----------------------------------------------------------------------------


def test_a_preview_takes_no_write_lock(seeded: Seeded) -> None:
    """Another connection holds the write lock throughout; the preview still answers, and
    not one of its statements asks for the lock (PostgreSQL's advisory lock, SQLite's
    BEGIN IMMEDIATE)."""
    url = seeded.url
    if url.startswith("postgresql"):
        # Were the preview to wait for the lock, it would fail here rather than hang.
        url = url.replace("?options=", "?options=-clock_timeout%3D5000%20")
    ledger = Ledger(open_event_store(url))
    statements: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    try:
        with ledger.store.transaction(actor="test:holder") as holder:
            if ledger.store.backend.name == "postgresql":
                held = holder.connection.exec_driver_sql(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND pid = pg_backend_pid() AND granted"
                ).scalar()
                assert held == 1
            sa.event.listen(ledger.store.engine, "before_cursor_execute", note)
            try:
                preview = ledger.preview(
                    c.SetServiceAccountPermission(
                        account_id=CI, resource="acme/beta", level=Level.WRITE
                    ),
                    OPERATOR,
                )
            finally:
                sa.event.remove(ledger.store.engine, "before_cursor_execute", note)
            assert preview.outcome.revoked == (seeded.ids["ci_token"],)
    finally:
        ledger.close()
    assert statements
    assert not [s for s in statements if "advisory" in s or "IMMEDIATE" in s.upper()]


# -- the HTTP API ------------------------------------------------------------------------------


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    with freeze_time(NOW):
        yield from make_api(database_url, tmp_path)


def _log_after(ledger: Ledger, head: int) -> list[dict[str, Any]]:
    return [_record_dict(r) for r in ledger.store.read_all(from_position=head + 1)]


def _dry_then_real(
    api: Api, method: str, path: str, body: dict[str, Any] | None, status: int
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    ledger = api.ledger
    before = _log_after(ledger, 0)
    known = _known_ids(before)
    head = before[-1]["position"]
    dry = api.client.request(method, path, params={"dry_run": "true"}, json=body, headers=api.admin)
    assert dry.status_code == 200, dry.text
    assert ledger.store.head().position == head
    preview = dry.json()
    assert preview["dry_run"] is True
    assert preview["log_position"] == head
    real = api.client.request(method, path, json=body, headers=api.admin)
    assert real.status_code == status, real.text
    appended = _log_after(ledger, head)
    assert _normalised(preview["events"], known) == _normalised(appended, known)
    return preview, real.json(), appended


def test_http_dry_run_of_a_move_shows_its_cascade(api: Api) -> None:
    with freeze_time(NOW):
        body = {"resource": "acme/beta", "level": "write"}
        path = f"/v2/service_accounts/{CI_OF_API}/permission"
        preview, real, appended = _dry_then_real(api, "PUT", path, body, 200)
    assert [e["event_type"] for e in appended] == ["ServiceAccountPermissionMoved", "TokenRevoked"]
    assert preview["revoked"] == real["revoked"]
    assert len(real["revoked"]) == 1


def test_http_dry_run_of_a_webhook_shows_no_secret_and_writes_no_key(api: Api) -> None:
    keys_file = api.keys.path
    assert keys_file is not None
    keys_before = keys_file.read_bytes()
    body = {"org": "acme", "url": "https://hooks.example/in", "events": ["token.issued"]}
    head = api.ledger.store.head().position
    with freeze_time(NOW):
        dry = api.client.post("/v2/webhooks?dry_run=true", json=body, headers=api.admin)
    assert dry.status_code == 200, dry.text
    assert "secret" not in dry.text
    assert [e["event_type"] for e in dry.json()["events"]] == ["WebhookCreated"]
    assert keys_file.read_bytes() == keys_before  # no webhook key made for it
    assert api.ledger.store.head().position == head
    with freeze_time(NOW):
        _, real, _ = _dry_then_real(api, "POST", "/v2/webhooks", body, 201)
    assert real["secret"]


def test_http_dry_run_of_a_token_shows_no_secret(api: Api) -> None:
    body = {"grants": [{"resource": "acme/alpha", "level": "read"}]}
    with freeze_time(NOW):
        path = f"/v2/service_accounts/{CI_OF_API}/tokens"
        preview, real, _ = _dry_then_real(api, "POST", path, body, 201)
    assert not _SECRET.search(json.dumps(preview))
    assert real["secret"].startswith("tl")


def test_http_refused_dry_run_answers_as_the_real_call(api: Api) -> None:
    head = api.ledger.store.head().position
    bob = api.bearer(api.bob)
    body = {"path": "acme/zeta"}
    dry = api.client.post("/v2/resources?dry_run=true", json=body, headers=bob)
    real = api.client.post("/v2/resources", json=body, headers=bob)
    assert real.status_code == 403
    assert (dry.status_code, dry.json()) == (real.status_code, real.json())
    assert api.ledger.store.head().position == head


def test_http_dry_run_that_cannot_be_honoured_is_refused_and_changes_nothing(api: Api) -> None:
    head = api.ledger.store.head().position
    revoke = api.client.post(
        "/oauth2/revoke?dry_run=true", data={"token": api.bob}, headers=api.admin
    )
    assert revoke.status_code == 400, revoke.text
    assert "dry_run" in revoke.json()["error_description"]
    login = api.client.get("/oauth2/authorize?dry_run=true", follow_redirects=False)
    assert login.status_code == 400, login.text
    # Introspection changes nothing: answered as usual.
    introspected = api.client.post(
        "/oauth2/introspect?dry_run=true", data={"token": api.bob}, headers=api.admin
    )
    assert introspected.status_code == 200, introspected.text
    assert introspected.json()["active"] is True
    body = {"path": "acme/gamma"}
    malformed = api.client.post("/v2/resources?dry_run=maybe", json=body, headers=api.admin)
    assert malformed.status_code == 400
    assert malformed.json()["error"] == "invalid_request"
    assert api.ledger.store.head().position == head
    assert api.ledger.verify(api.bob).active
    # Asked for no dry run, the call runs.
    created = api.client.post("/v2/resources?dry_run=false", json=body, headers=api.admin)
    assert created.status_code == 201, created.text


def test_a_call_that_does_not_honour_a_dry_run_changes_nothing(api: Api) -> None:
    """A route running its command any other way than through the preview (here, straight
    through ``Ledger.execute``) is refused in a dry run, and appends nothing."""
    ledger = api.ledger
    app = create_app(ledger)

    @app.post("/v2/direct")
    def direct() -> dict[str, int]:
        result = ledger.execute(c.CreateOrg(org="direct"), OPERATOR)
        return {"appended": len(result.events)}

    head = ledger.store.head().position
    with TestClient(app) as client:
        refused = client.post("/v2/direct?dry_run=true")
        assert refused.status_code == 400, refused.text
        assert "no dry run" in refused.json()["error_description"]
        assert ledger.store.head().position == head
        made = client.post("/v2/direct")
        assert made.json() == {"appended": 1}
    assert ledger.store.head().position == head + 1


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("dry_run", "expected true or false"),
        ("dry_run=", "expected true or false"),
        ("dry_run=true&dry_run=false", "more than once"),
        ("dry_run=false&dry_run=true", "more than once"),
        ("dry-run=true", "dry-run"),
        ("DRY_RUN=true", "DRY_RUN"),
        ("Dry_Run=1", "Dry_Run"),
    ],
)
def test_http_a_dry_run_asked_for_unclearly_is_refused_and_changes_nothing(
    api: Api, query: str, fragment: str
) -> None:
    """A bare or empty ``dry_run``, one given twice or a misspelt name might be meant as a dry
    run: each is refused (400), never taken for the call itself."""
    head = api.ledger.store.head().position
    made = api.client.post(f"/v2/resources?{query}", json={"path": "acme/gamma"}, headers=api.admin)
    assert made.status_code == 400, made.text
    assert made.json()["error"] == "invalid_request"
    assert fragment in made.json()["error_description"]
    assert "\n" not in made.json()["error_description"]
    assert api.ledger.store.head().position == head


@pytest.mark.parametrize("value", ["TRUE", "1", "yes", " true "])
def test_http_dry_run_accepts_each_spelling_of_true(api: Api, value: str) -> None:
    head = api.ledger.store.head().position
    dry = api.client.post(
        "/v2/resources", params={"dry_run": value}, json={"path": "acme/gamma"}, headers=api.admin
    )
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True
    assert api.ledger.store.head().position == head
