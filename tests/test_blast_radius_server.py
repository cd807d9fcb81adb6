"""``tokenledger --server URL audit blast-radius``: the same text and JSON as against the
database, ``--revoke`` (its preview, ``--dry-run`` and ``--yes``) through the HTTP routes, and
``Client.blast_radius`` / ``Client.revoke_blast_radius``; against a real ``serve`` process, on
SQLite and PostgreSQL.

The server keeps real time, so the world of ``test_blast_radius`` is built a few hours ago
(its frozen clock ending an hour before now) and both sides are asked now.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from freezegun import freeze_time

from helpers import assert_one_line_error, cli_head
from test_api_serve import Server
from test_blast_radius import EXPECTED, World, build_world
from tokenledger.cli import cli
from tokenledger.client import Auth, Client
from tokenledger.errors import NotFound


@pytest.fixture
def served(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[World, Server]]:
    for name in ("TOKENLEDGER_TOKEN", "TOKENLEDGER_SERVER", "TOKENLEDGER_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOKENLEDGER_CREDENTIALS_PATH", str(tmp_path / "credentials.json"))
    with freeze_time(datetime.now(UTC) - timedelta(hours=3)) as clock:
        world = build_world(database_url, clock)
    world.ledger.close()
    server = Server(database_url, tmp_path / "keys.json")
    try:
        yield world, server
    finally:
        server.stop()


def run(world: World, server: Server | None, *args: str, who: str = "root") -> Result:
    where = ["--server", server.base] if server is not None else ["--db", world.url]
    env = {"TOKENLEDGER_TOKEN": world.secrets[who]}
    return CliRunner().invoke(cli, [*where, *args], env=env)


def both(world: World, server: Server, *args: str) -> tuple[Result, Result]:
    remote, local = run(world, server, *args), run(world, None, *args)
    assert remote.exit_code == 0, remote.output
    assert local.exit_code == 0, local.output
    return remote, local


def _events(answer: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(e["position"], e["stream_id"], e["event_type"], e["data"]) for e in answer["events"]]


def test_against_a_server_the_radius_and_its_revocation_read_as_against_the_database(
    served: tuple[World, Server],
) -> None:
    world, server = served
    root = world.ids["root"]
    head = cli_head(world.url)

    remote, local = both(world, server, "audit", "blast-radius", root, "--json")
    assert json.loads(remote.stdout) == json.loads(local.stdout)
    names = {world.name_of(r["id"]) for r in json.loads(remote.stdout)["credentials"]}
    assert names == set(EXPECTED)
    remote, local = both(world, server, "audit", "blast-radius", root)
    assert remote.stdout == local.stdout

    remote, local = both(world, server, "audit", "blast-radius", root, "--revoke", "--json")
    assert json.loads(remote.stdout) == json.loads(local.stdout)
    assert json.loads(remote.stdout)["dry_run"] is True
    remote, local = both(world, server, "audit", "blast-radius", root, "--revoke")
    assert remote.stdout == local.stdout
    assert "nothing was revoked (add --yes to revoke them)" in remote.stdout

    dry = ("audit", "blast-radius", root, "--revoke", "--yes", "--dry-run", "--json")
    remote, local = both(world, server, *dry)
    assert _events(json.loads(remote.stdout)) == _events(json.loads(local.stdout))
    assert cli_head(world.url) == head

    refused = run(world, server, "audit", "blast-radius", root, who="carol")
    assert_one_line_error(refused, 3, "no token")  # another org's reads as an unknown id

    done = run(world, server, "audit", "blast-radius", root, "--revoke", "--yes", "--json")
    assert done.exit_code == 0, done.output
    answer = json.loads(done.stdout)
    assert answer["correlation_id"]
    assert {world.name_of(i) for i in answer["revoked"]} == {"root", "ci", "derived", "grandchild"}
    assert [world.name_of(i) for i in answer["revoked_client_ids"]] == ["client"]
    assert cli_head(world.url) > head
    again = run(world, None, "audit", "blast-radius", root, "--json", who="other")
    assert again.exit_code == 0, again.output
    assert not [r for r in json.loads(again.stdout)["credentials"] if r["live"]]


def test_the_python_client_asks_and_revokes_a_radius(served: tuple[World, Server]) -> None:
    world, server = served
    client = Client(server.base, Auth(server=server.base, token=world.secrets["root"]))
    try:
        found = client.blast_radius(world.ids["root"])
        local = json.loads(
            run(world, None, "audit", "blast-radius", world.ids["root"], "--json").stdout
        )
        shown = found.to_dict()
        for key in ("credentials", "withdrawals", "by_hand", "hidden_credentials", "live_tokens"):
            assert shown[key] == local[key], key
        assert [c.command_id for c in found.commands] == [
            c["command_id"] for c in local["commands"]
        ]
        assert {world.name_of(r.credential_id) for r in found.credentials} == set(EXPECTED)
        command = found.revocation("leak")
        assert command is not None
        assert world.ids["ci"] in command.token_ids

        receipt = client.revoke_blast_radius(world.ids["derived"], reason="leak")
        assert receipt.revoked == [world.ids["derived"]]
        with pytest.raises(NotFound, match="nothing to revoke"):
            client.revoke_blast_radius(world.ids["derived"])
    finally:
        client.close()
