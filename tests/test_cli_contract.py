"""The command line against a server answers as it does against the database.

One list of cases runs twice, on two copies of one ledger: with ``--db`` (acting as the
principal of ``TOKENLEDGER_TOKEN``), and with ``--server`` (a real ``tokenledger serve`` on a
loopback port over the copy, the same database kind) with the same token. Both runs must print
the same stdout, plain and ``--json`` (once the ids, secrets and times that differ between
runs are masked alike), exit with the same codes and refuse with the same one-line errors. On
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from helpers import assert_one_line_error
from test_api_serve import Server, free_port
from tokenledger.cli import cli

ORG = "acme"
ALICE = "alice@acme.example"
BOB = "bob@acme.example"
CAROL = "carol@acme.example"
INGEST = "ingest@acme.service.tokenledger"
LOADER = "loader@acme.service.tokenledger"

#: Unset for every run: only what a case gives counts.
ENVIRONMENT = (
    "TOKENLEDGER_TOKEN",
    "TOKENLEDGER_SERVER",
    "TOKENLEDGER_DATABASE_URL",
    "TOKENLEDGER_CLIENT_ID",
    "TOKENLEDGER_CLIENT_SECRET",
)


@dataclass(frozen=True)
class Case:
    """One command line. ``{name}`` in an argument or the input is a value an earlier case
    saved: ``save`` maps names to keys of its ``--json`` answer, ``grab`` to a pattern's
    first group in its plain output. ``who`` names the token it acts with."""

    args: tuple[str, ...]
    stdin: str | None = None
    who: str = "alice"
    save: dict[str, str] = field(default_factory=dict)
    grab: dict[str, str] = field(default_factory=dict)


def case(
    *args: str,
    stdin: str | None = None,
    who: str = "alice",
    save: dict[str, str] | None = None,
    grab: dict[str, str] | None = None,
) -> Case:
    return Case(args, stdin, who, save or {}, grab or {})


#: A moment, saved under the name given (a past time for --at).
#:
#: Ids minted within one 10 ms tick sort by their random part, so no listing (nor cascade)
#: below holds two ids minted by consecutive cases: their order would differ between runs.
def now(name: str) -> Case:
    return Case(("#now", name))


SECRET_LINE = r"^(tl[a-z]_\w+)$"

# fmt: off
CASES: list[Case] = [
    # who and what is there
    case("orgs", "list"),
    case("orgs", "list", "--json"),
    case("orgs", "members", ORG),
    case("orgs", "members", ORG, "--json"),
    case("users", "list", "--org", ORG),
    case("users", "list", "--org", ORG, "--json"),
    case("users", "list"),  # every user: the operator's
    case("resources", "list"),
    case("resources", "list", "acme/alpha", "--json"),
    case("grants", "list", BOB),
    case("grants", "list", BOB, "--json"),
    case("roles", "list", ORG),
    case("roles", "list", ORG, "--json"),
    case("service-accounts", "list", "--org", ORG),
    case("service-accounts", "list", "--json"),
    case("roles", "list", "nowhere"),
    case("orgs", "list", who="mistyped"),
    case("orgs", "list", who="unprintable"),
    case("orgs", "members", "Not An Org"),
    # users, members, resources, grants, roles
    case("users", "create", CAROL, "--name", "Carol"),
    case("users", "create", CAROL, "--json"),
    case("users", "create", "not-an-email"),
    case("orgs", "add-member", ORG, CAROL),
    case("orgs", "add-member", ORG, CAROL, "--role", "auditor", "--json"),
    case("orgs", "add-member", ORG, "nobody@acme.example"),
    case("resources", "create", "acme/gamma"),
    case("resources", "create", "acme/gamma/raw", "--kind", "collection", "--json"),
    case("resources", "create", "acme/gamma"),
    case("resources", "create", "acme/Bad Path!"),
    case("resources", "create", "acme/delta", who="bob"),
    case("resources", "list", "acme/gamma"),
    case("resources", "set", "acme/gamma", "--license", "CC-BY-4.0", "--data-class",
         "DATA_CLASS_PUBLIC"),
    case("resources", "set", "acme/gamma", "--data-class", "private", "--json"),
    case("resources", "set", "acme/gamma", "--license", "CC-BY-4.0"),
    case("resources", "set", "acme/gamma", "--license", "not a license"),
    case("resources", "set", "acme/alpha", "--license", "MIT", who="bob"),
    case("resources", "create", "acme/gamma/cooked", "--license", "MIT", "--data-class",
         "workspace", "--json"),
    case("resources", "get", "acme/gamma"),
    case("resources", "get", "acme/gamma", "--json"),
    case("resources", "get", "acme/nowhere"),
    case("resources", "list", "acme/gamma", "--json"),
    case("grants", "set", CAROL, "acme/gamma", "read"),
    case("grants", "set", CAROL, "acme/gamma/raw", "write", "--json"),
    case("grants", "set", CAROL, "acme/gamma", "mighty"),
    case("grants", "list", CAROL, "--json"),
    case("roles", "create", ORG, "reader", "--grant", "acme/alpha=read", "--grant",
         "acme/beta=read"),
    case("roles", "create", ORG, "writer", "--grant", "acme/gamma=write", "--json"),
    case("roles", "create", ORG, "reader", "--grant", "acme/alpha=read"),
    case("roles", "list", ORG),
    # service accounts and their client credentials
    case("service-accounts", "create", "loader", "--org", ORG, "--resource", "acme/gamma",
         "--level", "write"),
    case("service-accounts", "create", "loader", "--org", ORG, "--resource", "acme/gamma",
         "--level", "write"),
    case("service-accounts", "create", "spy", "--org", ORG, "--resource", "acme/alpha",
         "--level", "read", who="bob"),
    case("service-accounts", "list", "--org", ORG),
    case("service-accounts", "credentials", "create", LOADER, "--name", "ci", "--json",
         save={"client": "client_id"}),
    case("service-accounts", "credentials", "create", INGEST, "--expires-in", "90d"),
    case("service-accounts", "credentials", "list", LOADER),
    case("service-accounts", "credentials", "list", LOADER, "--json"),
    case("service-accounts", "credentials", "revoke", "{client}", "--reason", "rotated"),
    case("service-accounts", "credentials", "revoke", "{client}", "--json"),
    case("service-accounts", "credentials", "list", LOADER, "--all", "--json"),
    case("service-accounts", "credentials", "revoke", "cid_0000000000000000"),
    # tokens
    case("tokens", "create", "--principal", LOADER, "--name", "first", "--json",
         save={"first": "token_id", "first_secret": "secret"}),
    case("tokens", "create", "--principal", INGEST, "--resource", "acme/alpha/raw", "--level",
         "read", "--expires-in", "7d", grab={"second_secret": SECRET_LINE}),
    case("tokens", "create", "--principal", LOADER, "--resource", "acme/alpha", "--level",
         "read"),
    case("tokens", "create", "--principal", CAROL, "--role", "writer"),
    case("tokens", "create", "--principal", ALICE, "--resource", "acme/gamma/raw", "--level",
         "write", "--name", "own", "--json", save={"alices": "token_id"}),
    case("tokens", "create", "--parent", "{acting}", "--resource", "acme/gamma", "--level", "read",
         "--json", save={"derived": "token_id"}),
    case("tokens", "create", "--parent", "{first}", "--resource", "acme/gamma", "--level", "read"),
    case("tokens", "create", "--principal", LOADER, "--expires-in", "soon"),
    case("tokens", "list", "--principal", LOADER),
    case("tokens", "list", "--principal", LOADER, "--json"),
    case("tokens", "get", "{first}"),
    case("tokens", "get", "{derived}", "--json"),
    case("tokens", "get", "tok_0000000000000000"),
    case("tokens", "get", "{first_secret}"),
    case("tokens", "verify", "--resource", "acme/gamma/raw", "--level", "write", "--json",
         stdin="{first_secret}\n"),
    case("tokens", "verify", "--resource", "acme/beta", stdin="{first_secret}\n"),
    case("tokens", "verify", stdin="{second_secret}\n"),
    case("tokens", "verify", "--json", stdin="tls_notarealsecret\n"),
    case("tokens", "verify", "--resource", "acme/gamma"),  # TOKENLEDGER_TOKEN itself
    # suspension
    case("tokens", "disable", "{first}", "--reason", "investigating"),
    case("tokens", "disable", "{first}"),
    case("tokens", "verify", "--json", stdin="{first_secret}\n"),
    case("tokens", "get", "{first}", "--json"),
    case("tokens", "list", "--principal", LOADER),
    case("tokens", "enable", "{first}", "--json"),
    case("tokens", "enable", "{first}"),
    case("tokens", "disable", "{first}", who="bob"),
    case("service-accounts", "disable", INGEST, "--reason", "audit"),
    case("tokens", "verify", stdin="{second_secret}\n"),
    case("service-accounts", "list", "--org", ORG, "--json"),
    case("service-accounts", "enable", INGEST, "--json"),
    case("service-accounts", "enable", INGEST),
    case("service-accounts", "credentials", "create", LOADER, "--json",
         save={"second_client": "client_id"}),
    case("service-accounts", "credentials", "disable", "{second_client}", "--json"),
    case("service-accounts", "credentials", "list", LOADER),
    case("service-accounts", "credentials", "enable", "{second_client}"),
    now("before_move"),
    case("service-accounts", "set-permission", LOADER, "acme/beta", "write"),
    case("service-accounts", "set-permission", LOADER, "acme/beta", "read", "--json"),
    case("tokens", "verify", "--json", stdin="{first_secret}\n"),
    case("tokens", "verify", stdin="{first_secret}\n"),
    case("tokens", "verify", "--at", "{before_move}", "--json", stdin="{first_secret}\n"),
    case("tokens", "verify", "--at", "{before_move}", stdin="{second_secret}\n"),
    case("tokens", "list", "--principal", LOADER, "--all"),
    case("tokens", "list", "--principal", LOADER, "--at", "{before_move}", "--json"),
    case("tokens", "create", "--principal", LOADER, "--name", "third", "--json",
         save={"third": "token_id"}),
    case("tokens", "revoke", "{third}", "--reason", "done"),
    case("tokens", "revoke", "{third}", "--json"),
    case("tokens", "revoke", "{alices}", who="bob"),
    case("tokens", "revoke", "--all", "--principal", CAROL, "--json"),
    case("tokens", "revoke", "--all", "--principal", INGEST),
    case("tokens", "revoke", "{alices}", "--json"),
    # audit
    case("audit", "--subject", "{first}"),
    case("audit", "--subject", "{first}", "--json"),
    case("audit", "--subject", LOADER, "--limit", "5", "--oldest-first"),
    case("audit", "--type", "TokenRevoked", "--limit", "3", "--jsonl"),
    case("audit", "--actor", ALICE, "--limit", "4", "--json"),
    case("audit", "--type", "NoSuchEvent"),
    case("audit", "--limit", "3", who="bob"),
    case("audit", "explain", "{first}"),
    case("audit", "explain", "{first}", "--json"),
    case("audit", "explain", "{alices}", who="bob"),
    # logging in: the org's provider, issuer trusts, sessions
    case("orgs", "get", ORG),
    case("orgs", "set-idp", ORG, "--issuer", "https://login.acme.example", "--client-id",
         "ledger", "--session-lifetime", "7d"),
    case("orgs", "get", ORG, "--json"),
    case("orgs", "set-idp", ORG, "--issuer", "http://login.acme.example", "--client-id", "x"),
    case("orgs", "set-idp", ORG, "--issuer", "https://login.acme.example", "--client-id",
         "ledger", who="bob"),
    case("orgs", "get", ORG, who="bob"),
    case("service-accounts", "trust-issuer", INGEST, "--issuer", "https://ci.example",
         "--subject", "repo:acme/site:*", "--audience", "tokenledger"),
    case("service-accounts", "trust-issuer", INGEST, "--issuer", "https://ci.example",
         "--subject", "repo:acme/docs:*", "--audience", "tokenledger", "--json"),
    case("service-accounts", "trust-issuer", INGEST, "--issuer", "https://ci.example",
         "--subject", "*", "--audience", "tokenledger"),
    case("service-accounts", "trusts", INGEST),
    case("service-accounts", "untrust-issuer", INGEST, "--issuer", "https://ci.example",
         "--subject", "repo:acme/docs:*", "--json"),
    case("service-accounts", "trusts", INGEST, "--all", "--json"),
    case("sessions", "list", BOB),
    case("sessions", "list", BOB, "--all", "--json"),
    case("sessions", "end", "ses_000000000000000000000000"),
    case("audit", "--type", "IdentityProviderSet", "--json"),
    # rotation and org policies
    case("tokens", "create", "--principal", INGEST, "--name", "rotating", "--expires-in", "30d",
         "--json", save={"rot": "token_id"}),
    case("tokens", "rotate", "{rot}", "--overlap", "2h", "--json", save={"rot2": "token_id"}),
    case("tokens", "rotate", "{rot}"),
    case("tokens", "rotate", "{rot2}", "--overlap", "40d"),
    case("tokens", "rotate", "{rot2}", who="bob"),
    case("audit", "explain", "{rot2}", "--json"),
    case("service-accounts", "credentials", "create", INGEST, "--name", "rotating",
         "--expires-in", "30d", "--json", save={"rotc": "client_id"}),
    case("service-accounts", "credentials", "rotate", "{rotc}", "--overlap", "1h"),
    case("service-accounts", "credentials", "rotate", "{rotc}", "--json"),
    case("orgs", "policy", "get", ORG),
    case("orgs", "policy", "set", ORG, "--max-lifetime", "service=10d", "--dry-run"),
    case("orgs", "policy", "set", ORG, "--max-lifetime", "service=10d", "--dry-run", "--json"),
    case("orgs", "policy", "set", ORG, "--max-lifetime", "service=10d"),
    case("orgs", "policy", "set", ORG, "--max-lifetime", "service=10d", "--existing", "leave",
         "--json"),
    case("orgs", "policy", "get", ORG),
    case("orgs", "policy", "get", ORG, "--json"),
    case("tokens", "create", "--principal", INGEST, "--expires-in", "11d"),
    case("orgs", "policy", "set", ORG, "--max-live-tokens", "0"),
    case("orgs", "policy", "get", ORG, who="bob"),
    case("orgs", "policy", "clear", ORG, "--json"),
    case("orgs", "policy", "get", ORG, "--json"),
    # deletions and their cascades
    case("orgs", "remove-member", ORG, CAROL),
    case("orgs", "remove-member", ORG, CAROL, "--json"),
    case("service-accounts", "delete", LOADER, "--json"),
    case("service-accounts", "delete", LOADER),
    case("resources", "delete", "acme/gamma"),
    case("resources", "delete", "acme/gamma", "--recursive", "--json"),
    case("service-accounts", "list", "--org", ORG, "--json"),
]
# fmt: on


# -- masking what differs between runs --------------------------------------------------------


class Masker:
    """Replaces each id, secret, hash and time with a placeholder numbered in order of first
    appearance (times and epoch seconds with a fixed one), so that two runs doing the same
    compare equal while the structure (which id is which) still has to match."""

    NUMBERED = (
        ("secret", re.compile(r"\btl[a-z]_[0-9A-Za-z]{38}\b")),
        ("token", re.compile(r"\btok_[0-9A-Za-z]{16}\b")),
        ("client", re.compile(r"\bcid_[0-9A-Za-z]{16}\b")),
        ("trust", re.compile(r"\bwif_[0-9a-f]{24}\b")),
        ("uuid", re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")),
        ("hash", re.compile(r"\b[0-9a-f]{64}\b")),
    )
    TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
    EPOCH = re.compile(r'"(iat|exp)":\d+')

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        for kind, pattern in self.NUMBERED:
            text = pattern.sub(lambda m, kind=kind: self._number(kind, m.group(0)), text)
        text = self.TIME.sub("<time>", text)
        return self.EPOCH.sub(lambda m: f'"{m.group(1)}":<epoch>', text)

    def _number(self, kind: str, value: str) -> str:
        if value not in self.seen:
            count = sum(1 for v in self.seen.values() if v.startswith(f"<{kind}#"))
            self.seen[value] = f"<{kind}#{count + 1}>"
        return self.seen[value]


@dataclass
class Outcome:
    line: str
    exit_code: int
    stdout: str
    stderr: str


def play(ledgers: Ledgers, target: list[str], credentials: Path) -> list[Outcome]:
    """Every case against ``target`` (``--db URL`` or ``--server URL``), masked."""
    tokens = ledgers.tokens
    saved: dict[str, str] = {"acting": ledgers.acting}
    mask = Masker()
    played: list[Outcome] = []
    for one in CASES:
        if one.args[0] == "#now":
            saved[one.args[1]] = datetime.now(UTC).isoformat()
            continue
        args = [arg.format(**saved) for arg in one.args]
        stdin = one.stdin.format(**saved) if one.stdin is not None else None
        env: dict[str, str | None] = dict.fromkeys(ENVIRONMENT)
        env["TOKENLEDGER_TOKEN"] = tokens[one.who]
        env["TOKENLEDGER_CREDENTIALS_PATH"] = str(credentials)
        result = CliRunner().invoke(cli, [*target, *args], env=env, input=stdin)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{' '.join(args)} raised") from result.exception
        if one.save or one.grab:
            assert result.exit_code == 0, (target, args, result.output)
        for name, key in one.save.items():
            saved[name] = json.loads(result.stdout)[key]
        for name, pattern in one.grab.items():
            found = re.search(pattern, result.stdout, re.MULTILINE)
            assert found is not None, (args, result.stdout)
            saved[name] = found.group(1)
        played.append(
            Outcome(" ".join(one.args), result.exit_code, mask(result.stdout), mask(result.stderr))
        )
    return played


# -- the two ledgers -----------------------------------------------------------------------------


def operator(url: str, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["--db", url, *args], env=dict.fromkeys(ENVIRONMENT))
    assert result.exit_code == 0, result.output
    return result


def issued(url: str, *args: str) -> dict[str, str]:
    answer: dict[str, str] = json.loads(operator(url, "tokens", "create", *args, "--json").stdout)
    return answer


@dataclass
class Ledgers:
    """Two copies of one ledger (the same events, hashes and token secrets): one used
    through the database, one behind a server."""

    database: str
    server: str
    tokens: dict[str, str]
    acting: str  # the id of alice's token, which the cases act through


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def ledgers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ledgers]:
    directory = tmp_path_factory.mktemp("contract")
    if request.param == "sqlite":
        first, copy = f"sqlite:///{directory / 'a.db'}", f"sqlite:///{directory / 'b.db'}"
    else:
        postgres = request.getfixturevalue("postgres_server")
        first, copy = postgres.fresh_schema(), postgres.fresh_schema()
    operator(first, "db", "upgrade")
    operator(first, "orgs", "create", ORG)
    for email in (ALICE, BOB):
        operator(first, "users", "create", email)
    operator(first, "orgs", "add-member", ORG, ALICE, "--role", "admin")
    operator(first, "orgs", "add-member", ORG, BOB)
    for path in ("acme/alpha", "acme/alpha/raw", "acme/beta"):
        operator(first, "resources", "create", path)
    operator(first, "grants", "set", BOB, "acme/alpha/raw", "read")
    operator(first, "service-accounts", "create", "ingest", "--org", ORG, "--resource",
             "acme/alpha", "--level", "write")  # fmt: skip
    alice = issued(first, "--principal", ALICE, "--resource", ORG, "--level", "admin")
    bob = issued(first, "--principal", BOB, "--resource", "acme/alpha/raw", "--level", "read")
    tokens = {
        "alice": alice["secret"],
        "bob": bob["secret"],
        "mistyped": alice["secret"][:-1] + ("A" if alice["secret"][-1] != "A" else "B"),
        "unprintable": "tlp_\u00e9 and a space",
    }
    # The copy: the same log (events, hashes, token hashes) built into another database.
    operator(first, "replay", "--into", copy)
    # No uses recorded: a use written when an hour ends mid-run would show on one side only.
    server = Server(copy, directory / "keys.json", "--usage-interval", "off")
    try:
        yield Ledgers(first, server.base, tokens, acting=alice["token_id"])
    finally:
        server.stop()


def test_the_same_cases_answer_the_same_against_the_database_and_a_server(
    ledgers: Ledgers, tmp_path: Path
) -> None:
    credentials = tmp_path / "credentials.json"  # none: the token is what acts
    local = play(ledgers, ["--db", ledgers.database], credentials)
    remote = play(ledgers, ["--server", ledgers.server], credentials)
    assert len(local) == len(remote)
    for here, there in zip(local, remote, strict=True):
        assert here == there, f"{here.line}:\n  --db:     {here}\n  --server: {there}"
    # The list holds every kind of answer: successes, refusals of every category, and "no".
    codes = {outcome.exit_code for outcome in local}
    assert codes >= {0, 1, 2, 3, 4, 5}, codes
    for outcome in local:
        if outcome.exit_code not in (0, 1):
            assert len(outcome.stderr.splitlines()) == 1, outcome
            assert outcome.stderr.startswith("tokenledger: error: "), outcome
            assert "Traceback" not in outcome.stderr


# -- what only the database can do --------------------------------------------------------------


def remote(server: str, *args: str, token: str | None, credentials: Path) -> Result:
    env: dict[str, str | None] = dict.fromkeys(ENVIRONMENT)
    env["TOKENLEDGER_TOKEN"] = token
    env["TOKENLEDGER_CREDENTIALS_PATH"] = str(credentials)
    return CliRunner().invoke(cli, ["--server", server, *args], env=env)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["db", "upgrade"], "db upgrade"),
        (["log", "verify"], "log verify"),
        (["log", "head", "--json"], "log head"),
        (["events", "--limit", "1"], "events"),
        (["relay", "--to", "nats://127.0.0.1:4222", "--once"], "relay"),
        (["notify", "--once"], "notify"),
        (["replay", "--check"], "replay"),
        (["keys", "list"], "keys list"),
        (["demo"], "demo"),
        (["serve"], "serve"),
        (["orgs", "create", "other"], "orgs create"),
        (["users", "disable", BOB], "users disable"),
        (["audit", "export"], "audit export"),
    ],
)
def test_what_needs_the_database_says_so_against_a_server(
    ledgers: Ledgers, tmp_path: Path, args: list[str], words: str
) -> None:
    result = remote(
        ledgers.server, *args, token=ledgers.tokens["alice"], credentials=tmp_path / "c.json"
    )
    assert_one_line_error(result, 4)
    assert result.stderr.strip() == (
        f"tokenledger: error: '{words}' needs the database (--db); it cannot run against a server"
    )


def test_an_unreachable_server_is_one_line(tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    result = remote(base, "orgs", "list", token="tlp_whatever", credentials=tmp_path / "c.json")
    assert_one_line_error(result, 7, f"cannot reach the server at {base}: ")


def test_without_a_token_or_a_session_say_how_to_log_in(ledgers: Ledgers, tmp_path: Path) -> None:
    result = remote(ledgers.server, "orgs", "list", token=None, credentials=tmp_path / "c.json")
    assert_one_line_error(result, 4)
    assert result.stderr.strip() == (
        f"tokenledger: error: not logged in: run 'tokenledger auth login --server "
        f"{ledgers.server}' (or set TOKENLEDGER_TOKEN)"
    )


def test_the_server_saved_by_a_login_is_the_default_and_db_overrides_it(
    ledgers: Ledgers, tmp_path: Path
) -> None:
    from tokenledger.client.credentials import Credentials, save_credentials

    credentials = tmp_path / "c.json"
    save_credentials(Credentials(version=1, server=ledgers.server), credentials)
    env: dict[str, str | None] = dict.fromkeys(ENVIRONMENT)
    env["TOKENLEDGER_TOKEN"] = ledgers.tokens["alice"]
    env["TOKENLEDGER_CREDENTIALS_PATH"] = str(credentials)
    # What needs the database is refused only when a server is asked for: with none asked
    # for, it works on the database (tests/test_cli_logins.py).
    asked = CliRunner().invoke(cli, ["--server", ledgers.server, "log", "head"], env=env)
    assert_one_line_error(asked, 4, "'log head' needs the database (--db)")
    listed = CliRunner().invoke(cli, ["orgs", "list"], env=env)
    assert (listed.exit_code, listed.stdout) == (0, f"{ORG}\n")
    on_disk = CliRunner().invoke(cli, ["--db", ledgers.database, "log", "head"], env=env)
    assert on_disk.exit_code == 0, on_disk.output
    assert on_disk.stdout.startswith("position ")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--db", "x.db", "--server", "http://127.0.0.1:1"], {}, "give --db or --server"),
        (
            [],
            {"TOKENLEDGER_DATABASE_URL": "x.db", "TOKENLEDGER_SERVER": "http://127.0.0.1:1"},
            "give --db or --server",
        ),
        (["--server", "http://ledger.example"], {}, "plain http"),
        (["--server", "ledger.example"], {}, "expected https://HOST"),
    ],
)
def test_a_contradictory_or_bad_server_is_refused(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    environment: dict[str, str | None] = {**dict.fromkeys(ENVIRONMENT), **env}
    environment["TOKENLEDGER_CREDENTIALS_PATH"] = str(tmp_path / "c.json")
    result = CliRunner().invoke(cli, [*args, "orgs", "list"], env=environment)
    assert_one_line_error(result, 2, message)


def test_the_command_line_wins_over_the_environment(ledgers: Ledgers, tmp_path: Path) -> None:
    environment: dict[str, Any] = dict.fromkeys(ENVIRONMENT)
    environment.update(
        TOKENLEDGER_TOKEN=ledgers.tokens["alice"],
        TOKENLEDGER_SERVER="http://127.0.0.1:1",
        TOKENLEDGER_CREDENTIALS_PATH=str(tmp_path / "c.json"),
    )
    result = CliRunner().invoke(cli, ["--db", ledgers.database, "orgs", "list"], env=environment)
    assert (result.exit_code, result.stdout) == (0, f"{ORG}\n")
