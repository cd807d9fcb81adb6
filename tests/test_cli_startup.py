"""What the command line imports: --help and the commands stay clear of what they do not use.

Each check runs the command in a fresh Python process and looks at ``sys.modules`` after
it: the import sets, not times (those are ``scripts/bench --startup``'s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from tokenledger.cli import cli

#: Never imported by --help (of any group or command).
HEAVY = ("sqlalchemy", "fastapi", "uvicorn", "alembic", "psycopg", "httpx", "nats")
LEDGER = ("tokenledger.api", "tokenledger.service", "tokenledger.store", "tokenledger.client")
#: Never imported by a command that neither serves HTTP, migrates, uses PostgreSQL nor talks
#: to a server.
NOT_FOR_SQLITE_READS = (
    "nats",  # the relay's client
    "fastapi",
    "uvicorn",
    "alembic",
    "psycopg",
    "httpx",
    "jwt",  # signing keys and OpenID Connect load with an access token or a login only
    "cryptography",
    "tokenledger.api",
    "tokenledger.client",
    "tokenledger.service.oidc",
)

# Runs each argv of argv[1] (a JSON list) through the command line in this one process, then
# writes the exit codes and the names of every imported module to argv[2].
_PROBE = """
import contextlib, io, json, sys
from tokenledger.cli import cli
runs, out = json.loads(sys.argv[1]), sys.argv[2]
codes = []
for args in runs:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            cli.main(args, prog_name="tokenledger")
        except SystemExit as exit:
            codes.append(exit.code or 0)
with open(out, "w") as f:
    json.dump({"codes": codes, "modules": sorted(sys.modules)}, f)
"""


def imported_by(tmp_path: Path, *runs: list[str], stdin: str = "") -> set[str]:
    """The modules a fresh process has imported after running ``runs``; each must exit 0."""
    out = tmp_path / "probe.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOKENLEDGER_")}
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(list(runs)), str(out)],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    probe = json.loads(out.read_text())
    assert probe["codes"] == [0] * len(runs), probe["codes"]
    return set(probe["modules"])


def among(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """The packages of ``packages`` that ``modules`` holds (themselves or a submodule)."""
    return sorted(p for p in packages if any(m == p or m.startswith(p + ".") for m in modules))


@pytest.mark.parametrize(
    "args",
    [["--help"], ["tokens", "--help"], ["tokens", "create", "--help"]],
    ids=" ".join,
)
def test_help_imports_no_database_api_or_ledger(tmp_path: Path, args: list[str]) -> None:
    assert among(imported_by(tmp_path, args), HEAVY + LEDGER) == []


def test_serve_help_imports_neither_uvicorn_nor_the_api(tmp_path: Path) -> None:
    assert among(imported_by(tmp_path, ["serve", "--help"]), HEAVY + LEDGER) == []


def _every_help(group: click.Group, path: list[str]) -> list[list[str]]:
    runs = [[*path, "--help"]]
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            runs += _every_help(command, [*path, name])
        else:
            runs.append([*path, name, "--help"])
    return runs


def test_no_help_of_any_group_or_command_imports_them(tmp_path: Path) -> None:
    runs = _every_help(cli, [])
    assert len(runs) > 40
    assert among(imported_by(tmp_path, *runs), HEAVY + LEDGER) == []


@pytest.fixture(scope="module")
def sqlite_ledger(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A migrated SQLite ledger holding a service account's token: (its path, the secret)."""
    db = str(tmp_path_factory.mktemp("startup") / "ledger.db")

    def run(*args: str) -> str:
        result = CliRunner().invoke(cli, ["--db", db, *args])
        assert result.exit_code == 0, result.output
        return result.output

    run("orgs", "create", "acme")
    run("resources", "create", "acme/alpha")
    account = ["ingest", "--org", "acme", "--resource", "acme/alpha", "--level", "write"]
    run("service-accounts", "create", *account)
    issued = run("tokens", "create", "--principal", "ingest@acme.service.tokenledger", "--json")
    return db, json.loads(issued)["secret"]


def test_verify_on_a_current_sqlite_ledger_imports_no_api_alembic_or_psycopg(
    tmp_path: Path, sqlite_ledger: tuple[str, str]
) -> None:
    db, secret = sqlite_ledger
    modules = imported_by(tmp_path, ["--db", db, "tokens", "verify"], stdin=secret + "\n")
    assert among(modules, NOT_FOR_SQLITE_READS) == []


# -- what the fast paths rely on ----------------------------------------------------------------


def test_the_copied_names_and_defaults_match_their_owners() -> None:
    from tokenledger.api import app as api_app
    from tokenledger.api import state as api_state
    from tokenledger.cli import defaults
    from tokenledger.projections.rebuild import DEFAULT_BATCH_SIZE
    from tokenledger.service import relay
    from tokenledger.service.keys import KEYS_FILE_ENV
    from tokenledger.store.engine import DEFAULT_DATABASE_URL

    assert defaults.DEFAULT_DATABASE_URL == DEFAULT_DATABASE_URL
    assert defaults.KEYS_FILE_ENV == KEYS_FILE_ENV
    assert defaults.DATABASE_URL_ENV == api_app.DATABASE_URL_ENV
    assert defaults.ISSUER_ENV == api_app.ISSUER_ENV
    assert defaults.ACCESS_TOKEN_LIFETIME_ENV == api_app.ACCESS_TOKEN_LIFETIME_ENV
    assert defaults.CACHE_STALENESS_ENV == api_app.CACHE_STALENESS_ENV
    assert defaults.FOLLOW_LOG_ENV == api_app.FOLLOW_LOG_ENV
    assert defaults.PUBLIC_URL_ENV == api_app.PUBLIC_URL_ENV
    assert defaults.USAGE_INTERVAL_ENV == api_app.USAGE_INTERVAL_ENV
    assert defaults.DEFAULT_ISSUER == api_state.DEFAULT_ISSUER
    assert defaults.DEFAULT_REBUILD_BATCH_SIZE == DEFAULT_BATCH_SIZE
    assert defaults.DEFAULT_RELAY_STREAM == relay.DEFAULT_STREAM
    assert defaults.DEFAULT_RELAY_SUBJECT == relay.DEFAULT_SUBJECT
    assert defaults.DEFAULT_RELAY_SOURCE == relay.DEFAULT_SOURCE


def test_the_listing_shows_each_commands_own_help() -> None:
    from tokenledger.cli.app import COMMANDS
    from tokenledger.cli.lazy import LazyGroup

    assert isinstance(cli, LazyGroup)
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(COMMANDS)
    for name, spec in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None, name
        assert (command.name, command.hidden) == (name, False)
        assert spec.summary is not None
        stand_in = click.Command(name, help=spec.summary)
        for limit in range(10, 200):
            assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), name


def test_an_unknown_command_is_matched_against_every_name() -> None:
    result = CliRunner().invoke(cli, ["tokns"])
    assert result.exit_code == 2
    assert "Did you mean 'tokens'?" in result.output
    result = CliRunner().invoke(cli, ["service-accounts", "credential"])
    assert "Did you mean 'credentials'?" in result.output


def test_the_head_read_from_the_scripts_is_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from tokenledger.store.migrate import head_revision, migrations_dir, scripted_head

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    expected = ScriptDirectory.from_config(config).get_current_head()
    assert scripted_head(migrations_dir()) == expected
    assert head_revision() == expected


def _scripts(tmp_path: Path, *revisions: tuple[str, str]) -> Path:
    (tmp_path / "versions").mkdir()
    for number, (revision, down) in enumerate(revisions):
        (tmp_path / "versions" / f"{number}.py").write_text(
            f'"""Revision ID: {revision}"""\n\nrevision: str = {revision}\n'
            f"down_revision: str | None = {down}\n"
        )
    return tmp_path


@pytest.mark.parametrize(
    ("revisions", "head"),
    [
        ([('"a"', "None"), ('"b"', '"a"'), ('"c"', "'b'")], "c"),
        ([('"a"', "None"), ('"b"', '"a"'), ('"c"', '"a"')], None),  # two heads
        ([('"a"', "None"), ('"b"', '"a"'), ('"c"', '("a", "b")')], "c"),  # a merge
        ([('"a"', "None"), ('"b"', '"x"')], None),  # follows a revision that is not there
        ([('"a"', "None"), ('"b"', "PARENT")], None),  # not a literal
        ([], None),
    ],
)
def test_the_scripts_text_settles_the_head_or_says_it_cannot(
    tmp_path: Path, revisions: list[tuple[str, str]], head: str | None
) -> None:
    from tokenledger.store.migrate import scripted_head

    assert scripted_head(_scripts(tmp_path, *revisions)) == head


def test_the_recorded_revision_is_read_as_alembic_reads_it(tmp_path: Path) -> None:
    from alembic.runtime.migration import MigrationContext

    from tokenledger.store import create_ledger_engine, upgrade
    from tokenledger.store.migrate import current_revision, head_revision

    engine = create_ledger_engine(str(tmp_path / "ledger.db"))
    try:
        for _ in range(2):
            with engine.connect() as connection:
                ours = current_revision(connection)
                assert ours == MigrationContext.configure(connection).get_current_revision()
            upgrade(engine)
        assert ours == head_revision()
    finally:
        engine.dispose()
