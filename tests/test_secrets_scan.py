"""No secret leaks, on SQLite and PostgreSQL.

A session through the command line issues tokens of every kind (a user's, a service
account's, a derived one, one from a grant config on standard input, one minted through an
acting token) and a client credential, then uses them, lists them, verifies them, revokes them,
pastes them where they do not belong, and moves the account (a cascade). Afterwards each secret
and its base62 body are searched for in:

* every table of the database, every column, bytes decoded (and, for SQLite, the raw database,
  WAL and shared-memory files);
* the event log as ``tokenledger events`` prints it;
* the output (stdout and stderr) of every command except the ``tokens create`` (or
  ``credentials create``) that made that secret;
* the application's logs, captured at DEBUG (SQLAlchemy's statement and parameter logging
  included);
* every file in the working directory and the database's directory.

Zero hits. ``auth header`` is the one other command that prints a secret: the one its caller
put in TOKENLEDGER_TOKEN, by design; it is checked to print that one and nothing else.
The only secret the ledger's tools write to disk, the signing-key file, has mode 0600.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result

from helpers import cli_run

ORG = "acme"
ALICE = "alice@acme.io"
BOB = "bob@acme.io"
SA = "ci@acme.service.tokenledger"


@dataclass
class Transcript:
    """Every command run, its output, and which run created which secret."""

    url: str
    outputs: list[tuple[str, str]] = field(default_factory=list)  # (label, stdout + stderr)
    created_by: dict[str, int] = field(default_factory=dict)  # secret -> index in outputs
    ids: dict[str, str] = field(default_factory=dict)  # secret -> token or client id
    header_outputs: list[tuple[str, str]] = field(default_factory=list)  # auth header runs

    def run(
        self, *args: str, token: str | None = None, stdin: str | None = None, ok: bool = True
    ) -> Result:
        result = cli_run(self.url, *args, token=token, stdin=stdin)
        self.outputs.append((" ".join(a[:40] for a in args), result.stdout + result.stderr))
        assert "Traceback" not in result.output
        if ok:
            assert result.exit_code == 0, (args, result.output)
        return result

    def json(self, *args: str, token: str | None = None, stdin: str | None = None) -> Any:
        return json.loads(self.run(*args, "--json", token=token, stdin=stdin).stdout)

    def issue(self, *args: str, token: str | None = None, stdin: str | None = None) -> str:
        """``tokens create`` (human output, the secret on its last line) or with --json."""
        if "--json" in args:
            result = self.run("tokens", "create", *args, token=token, stdin=stdin)
            issued = json.loads(result.stdout)
            secret, token_id = issued["secret"], issued["token_id"]
        else:
            result = self.run("tokens", "create", *args, token=token, stdin=stdin)
            secret = result.stdout.strip().splitlines()[-1]
            token_id = result.stdout.split()[3]
        assert token_id.startswith("tok_")
        self.created_by[secret] = len(self.outputs) - 1
        self.ids[secret] = token_id
        return secret


def body(secret: str) -> str:
    """The base62 part of a secret (random part and checksum), without the prefix."""
    return secret.split("_", 1)[1]


def needles(secret: str) -> list[str]:
    return [secret, body(secret)]


@pytest.fixture
def transcript(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> Transcript:
    caplog.set_level(logging.DEBUG)  # every logger...
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # ...SQL and parameters too
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.delenv("TOKENLEDGER_KEYS_FILE", raising=False)
    monkeypatch.delenv("TOKENLEDGER_SIGNING_KEYS", raising=False)
    return Transcript(url=database_url)


def session(t: Transcript) -> list[str]:
    """Issue, use, list, verify, misplace and revoke secrets; return every secret."""
    t.run("db", "upgrade")
    for args in (
        ["orgs", "create", ORG],
        ["users", "create", ALICE],
        ["users", "create", BOB],
        ["orgs", "add-member", ORG, ALICE, "--role", "admin"],
        ["orgs", "add-member", ORG, BOB],
        ["resources", "create", "acme/alpha"],
        ["resources", "create", "acme/alpha/raw"],
        ["resources", "create", "acme/beta"],
        ["grants", "set", BOB, "acme/alpha", "write"],
        ["service-accounts", "create", "ci", "--org", ORG, "--resource", "acme/alpha",
         "--level", "write"],
    ):  # fmt: skip
        t.run(*args)

    bob = t.issue("--principal", BOB, "--resource", "acme/alpha", "--level", "write")
    account = t.issue("--principal", SA, "--json")
    derived = t.issue("--parent", t.ids[bob], "--resource", "acme/alpha/raw", "--level", "read")
    config = json.dumps({"account": SA, "grants": [{"policy": "data:get@acme/alpha/raw"}]})
    from_config = t.issue("-c", "-", "--json", stdin=config)
    admin = t.issue("--principal", ALICE, "--role", "admin", "--expires-in", "1h", "--json")
    minted = t.issue(
        "--principal", BOB, "--resource", "acme/alpha/raw", "--level", "read", token=bob
    )
    credential = t.run("service-accounts", "credentials", "create", SA)
    client_secret = credential.stdout.strip().splitlines()[-1]
    assert client_secret.startswith("tlc_")
    t.created_by[client_secret] = len(t.outputs) - 1
    t.ids[client_secret] = credential.stdout.split()[2]
    secrets = [bob, account, derived, from_config, admin, minted, client_secret]
    tokens = secrets[:-1]

    # Using them: acting through each, verifying each (piped and from the environment).
    t.run("orgs", "list", token=admin)
    t.run("resources", "create", "acme/alpha/by-bob", token=bob)
    t.run("resources", "list", "acme", token=derived)
    t.run("tokens", "list", "--principal", SA, token=account)
    for secret in tokens:
        t.run("tokens", "verify", "--resource", "acme/alpha", stdin=secret + "\n", ok=False)
        t.run("tokens", "verify", "--json", stdin=secret, ok=False)
        t.run("tokens", "verify", token=secret, ok=False)
        header = cli_run(t.url, "auth", "header", token=secret)
        assert header.exit_code == 0
        t.header_outputs.append((secret, header.output))

    # Looking at them.
    for principal in (BOB, SA, ALICE):
        t.run("tokens", "list", "--principal", principal, "--all")
        t.json("tokens", "list", "--principal", principal, "--all")
        t.run("grants", "list", principal)
    for secret in tokens:
        t.run("tokens", "get", t.ids[secret])
        t.json("tokens", "get", t.ids[secret])
    t.run("service-accounts", "credentials", "list", SA, "--all")
    for args in (["users", "list"], ["orgs", "members", ORG], ["roles", "list", ORG],
                 ["service-accounts", "list"], ["resources", "list"], ["log", "head"],
                 ["log", "verify"]):  # fmt: skip
        t.run(*args)

    # Putting them where they do not belong: refused, never repeated.
    for secret in secrets:
        typo = secret[:-1] + ("A" if secret[-1] != "A" else "B")
        for args in (["tokens", "get", secret], ["tokens", "revoke", secret],
                     ["tokens", "create", "--parent", secret], ["users", "create", secret],
                     ["orgs", "create", secret], ["grants", "list", secret],
                     ["tokens", "list", "--principal", secret],
                     ["resources", "create", f"acme/{secret}"],
                     ["tokens", "create", "--principal", BOB, "--name", secret, "--resource",
                      "acme/alpha", "--level", "nope"]):  # fmt: skip
            refused = t.run(*args, ok=False)
            assert refused.exit_code != 0
        refused = t.run("orgs", "list", token=typo, ok=False)
        assert refused.exit_code == 4
        assert typo not in refused.output
        assert body(typo)[:-1] not in refused.output
        misplaced = json.dumps({"principal": secret, "grants": [{"policy": "data:get@acme"}]})
        assert t.run("tokens", "create", "-c", "-", stdin=misplaced, ok=False).exit_code == 2

    # Revoking them: directly, by a cascade (the move), and everything of a user.
    t.run("tokens", "revoke", t.ids[bob], "--reason", "rotated")
    t.run("service-accounts", "credentials", "revoke", t.ids[client_secret])
    t.run("service-accounts", "set-permission", SA, "acme/beta", "write")
    t.run("tokens", "revoke", "--all", "--principal", ALICE)
    for secret in tokens:
        t.run("tokens", "verify", stdin=secret, ok=False)
    t.run("events")
    t.run("log", "verify", "--json")
    return secrets


def database_dump(url: str) -> tuple[str, bytes]:
    """Every value of every table, as text and as raw bytes."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    texts: list[str] = []
    raw: list[bytes] = []
    try:
        with engine.connect() as connection:
            tables = sa.inspect(connection).get_table_names()
            assert {"events", "tokens", "users"} <= set(tables)
            for table in tables:
                for row in connection.execute(sa.text(f'SELECT * FROM "{table}"')):
                    for value in row:
                        if isinstance(value, bytes | memoryview):
                            data = bytes(value)
                            raw.append(data)
                            texts.append(data.decode("utf-8", errors="replace"))
                        else:
                            texts.append(str(value))
    finally:
        engine.dispose()
    return "\n".join(texts), b"\n".join(raw)


def files_under(*directories: Path) -> dict[Path, bytes]:
    found = {}
    for directory in directories:
        for path in directory.rglob("*"):
            if path.is_file():
                found[path] = path.read_bytes()
    return found


def test_no_secret_appears_anywhere_but_in_the_output_that_created_it(
    transcript: Transcript, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    secrets = session(transcript)
    assert len(set(secrets)) == len(secrets)
    table_text, table_bytes = database_dump(transcript.url)
    events = next(out for label, out in reversed(transcript.outputs) if label == "events")
    assert "TokenIssued" in table_text  # the scan did read the log
    assert "TokenIssued" in events
    assert "SELECT" in caplog.text  # SQLAlchemy's statement log was captured too
    assert "IssueToken by" in caplog.text  # and the ledger's own log lines
    disk = files_under(tmp_path)
    if transcript.url.startswith("sqlite"):
        assert any(p.suffix == ".db" for p in disk)  # the database file itself is scanned

    hits = []
    for secret in secrets:
        for needle in needles(secret):
            if needle in table_text or needle.encode() in table_bytes:
                hits.append(f"{secret[:4]}: in the database")
            if needle in caplog.text:
                hits.append(f"{secret[:4]}: in the application log")
            for index, (label, output) in enumerate(transcript.outputs):
                if needle in output and index != transcript.created_by[secret]:
                    hits.append(f"{secret[:4]}: in the output of '{label}'")
            for path, content in disk.items():
                if needle.encode() in content:
                    hits.append(f"{secret[:4]}: in the file {path.name}")
        # The output that created it holds it exactly once.
        assert transcript.outputs[transcript.created_by[secret]][1].count(secret) == 1
    assert hits == []

    # auth header prints the one secret it was given, and nothing else.
    for given, output in transcript.header_outputs:
        assert output == f"Authorization: Bearer {given}\n"


def test_the_signing_key_file_is_private(transcript: Transcript, tmp_path: Path) -> None:
    """The only secret the ledger's own tools write to disk is the access tokens' signing key
    (``tokenledger keys rotate``): created with mode 0600, and its private half appears in no
    table, no output and no log."""
    keys_file = tmp_path / "secret" / "keys.json"
    transcript.run("db", "upgrade")
    for _ in range(2):  # the second rotation rewrites the file
        transcript.run("keys", "rotate", "--keys-file", str(keys_file))
        mode = stat.S_IMODE(os.stat(keys_file).st_mode)
        assert mode == 0o600, oct(mode)
    transcript.run("keys", "list", "--keys-file", str(keys_file))
    document = json.loads(keys_file.read_bytes())
    private = [k["private_pem"] for k in document["keys"] if k.get("private_pem")]
    assert private
    pem_lines = [
        line for pem in private for line in pem.splitlines() if line and "-----" not in line
    ]
    table_text, _ = database_dump(transcript.url)
    everything = table_text + "\n".join(out for _, out in transcript.outputs)
    assert not any(line in everything for line in pem_lines)
    # A key file others may read is refused, not used.
    keys_file.chmod(0o644)
    refused = cli_run(transcript.url, "keys", "list", "--keys-file", str(keys_file))
    assert refused.exit_code != 0
    assert "chmod 600" in refused.stderr
