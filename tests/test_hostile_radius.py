"""``audit blast-radius`` under attack, on SQLite and PostgreSQL: a member of another org, a
member without the rights, a service account's token, odd ids and bodies, a preview and a dry
run, the Python client against a real server. The world is ``test_blast_radius``'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from helpers import assert_one_line_error, cli_run
from test_api_serve import Server
from test_blast_radius import World, world  # noqa: F401  (the fixture)
from test_blast_radius_server import served  # noqa: F401  (the fixture)
from tokenledger.api import ApiSettings, create_asgi_app
from tokenledger.client import Auth, Client
from tokenledger.errors import LedgerError
from tokenledger.service.keys import KeyStore

#: What a member of ``other`` must never read about acme.
ACME_NAMES = ("acme", "ann@", "ci@")


@pytest.fixture
def http(world: World, tmp_path: Path) -> Iterator[TestClient]:  # noqa: F811
    keys = KeyStore(tmp_path / "keys.json")
    app = create_asgi_app(world.ledger, ApiSettings(issuer="https://ledger.test", keys=keys))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _bearer(world: World, who: str) -> dict[str, str]:  # noqa: F811
    return {"Authorization": f"Bearer {world.secrets[who]}"}


# -- another org -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["root", "ci"])
def test_another_orgs_token_reads_as_one_that_does_not_exist(
    world: World,  # noqa: F811
    http: TestClient,
    name: str,
) -> None:
    made_up = "tok_AAAAAAAAAAAAAAAA"
    before = world.head()
    absent = cli_run(world.url, "audit", "blast-radius", made_up, token=world.secrets["carol"])
    for extra in ([], ["--revoke", "--yes"]):
        result = cli_run(
            world.url,
            "audit",
            "blast-radius",
            world.ids[name],
            *extra,
            token=world.secrets["carol"],
        )
        assert_one_line_error(result, absent.exit_code, "no token")
        assert not any(leak in result.stderr for leak in ACME_NAMES), result.stderr
    for method, suffix in (("GET", ""), ("POST", "/revoke")):
        response = http.request(
            method,
            f"/v2/audit/blast-radius/{world.ids[name]}{suffix}",
            headers=_bearer(world, "carol"),
        )
        assert response.status_code == 404, response.text
        assert not any(leak in response.text for leak in ACME_NAMES), response.text
    assert world.head() == before


# -- odd input -------------------------------------------------------------------------------

ODD_IDS = [
    "",
    " ",
    "..",
    "../../v2/tokens",
    "x" * 100_000,
    "ü€😀",
    "a\x00b",
    "tok_" + "\u0660" * 16,
]


@pytest.mark.parametrize("odd", ODD_IDS)
def test_an_odd_id_is_one_line_and_touches_nothing(world: World, odd: str) -> None:  # noqa: F811
    before = world.head()
    for extra in ([], ["--revoke"], ["--revoke", "--yes"], ["--revoke", "--yes", "--dry-run"]):
        result = cli_run(
            world.url, "audit", "blast-radius", odd, *extra, token=world.secrets["root"]
        )
        assert_one_line_error(result, 2, "invalid token id")
    assert world.head() == before


@pytest.mark.parametrize("odd", ["%2e%2e", "%00", "%C3%BC", "x" * 5000, "tok_AAAAAAAAAAAAAAA%20"])
def test_an_odd_id_over_http_is_a_4xx(world: World, http: TestClient, odd: str) -> None:  # noqa: F811
    before = world.head()
    for method, suffix in (("GET", ""), ("POST", "/revoke"), ("POST", "/revoke?dry_run=true")):
        response = http.request(
            method, f"/v2/audit/blast-radius/{odd}{suffix}", headers=_bearer(world, "root")
        )
        assert 400 <= response.status_code < 500, response.text
    assert world.head() == before


@pytest.mark.parametrize("body", ["[]", '{"reason": 5}', '{"reason": "x", "more": 1}', "garbage"])
def test_an_odd_revoke_body_is_a_400(world: World, http: TestClient, body: str) -> None:  # noqa: F811
    before = world.head()
    response = http.post(
        f"/v2/audit/blast-radius/{world.ids['root']}/revoke",
        headers={**_bearer(world, "root"), "content-type": "application/json"},
        content=body,
    )
    assert response.status_code == 400, response.text
    assert world.head() == before


# -- what a preview promises -----------------------------------------------------------------


def _preview_dry_run_and_yes(world: World, token: str) -> None:  # noqa: F811
    before = world.head()
    preview = world.cli("audit", "blast-radius", token, "--revoke")
    dry = world.cli("audit", "blast-radius", token, "--revoke", "--yes", "--dry-run")
    assert world.head() == before
    done = world.cli("audit", "blast-radius", token, "--revoke", "--yes")
    for kind in ("revoked", "revoked_client_ids", "revoked_access_key_ids"):
        assert sorted(preview[kind]) == sorted(done[kind]) == sorted(dry[kind]), kind
    assert world.head() > before


def test_the_preview_and_the_dry_run_are_what_yes_withdraws(world: World) -> None:  # noqa: F811
    """A careless ``--revoke`` (the preview) and ``--dry-run`` append nothing, and list
    exactly what ``--yes`` then withdraws."""
    _preview_dry_run_and_yes(world, world.ids["ci"])


def test_yes_withdraws_a_radius_holding_a_client_credential(world: World) -> None:  # noqa: F811
    _preview_dry_run_and_yes(world, world.ids["root"])


def test_a_service_accounts_token_withdraws_only_its_own(world: World) -> None:  # noqa: F811
    """Through ci's token: its own radius is withdrawn; ann's token's is refused, and nothing
    is appended by the refusal."""
    before = world.head()
    world.refused(4, ["audit", "blast-radius", world.ids["root"], "--revoke", "--yes"], who="ci")
    assert world.head() == before
    done = world.cli("audit", "blast-radius", world.ids["ci"], "--revoke", "--yes", who="ci")
    assert sorted(done["revoked"]) == sorted([world.ids["ci"], world.ids["grandchild"]])
    assert world.ids["root"] in world.cli("audit", "blast-radius", world.ids["root"])["live_tokens"]


# -- the Python client -----------------------------------------------------------------------


@pytest.mark.parametrize("odd", ["..", "."])
def test_the_client_never_sends_a_dot_segment_to_another_route(
    served: tuple[World, Server],  # noqa: F811
    odd: str,
) -> None:
    """``..`` in a path is resolved away before it is sent: ``/v2/audit/blast-radius/..``
    reaches the audit search, ``.../../revoke`` another route. The client asks about the id
    it was given, and the server refuses it."""
    built, server = served
    client = Client(server.base, Auth(server=server.base, token=built.secrets["root"]))
    try:
        with pytest.raises(LedgerError, match="invalid token id"):
            client.blast_radius(odd)
        with pytest.raises(LedgerError, match="invalid token id"):
            client.revoke_blast_radius(odd)
    finally:
        client.close()
