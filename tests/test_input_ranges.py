"""Input the ledger cannot hold, refused at the edge on SQLite and PostgreSQL.

Times whose UTC equivalent falls outside the span the ledger holds (an offset pushing year 1
before its start or year 9999 past its end), lifetimes that would end beyond it, control
characters in audit filters (PostgreSQL cannot bind a NUL byte), and grant files that are not
UTF-8 or that give a key twice: each is refused with one line (exit 2 on the command line,
400 over HTTP), never an ``OverflowError`` traceback or a 500, and the log does not move.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from freezegun import freeze_time

from api_helpers import OPERATOR, SA, Api, make_api
from helpers import assert_one_line_error, cli_head, cli_run
from tokenledger.api import create_app
from tokenledger.cli.grant_files import parse_grant_config
from tokenledger.clock import EARLIEST, LATEST, check_lifetime, checked_utc
from tokenledger.domain import commands as c
from tokenledger.domain.permissions import Level
from tokenledger.errors import ValidationError
from tokenledger.projections.audit_queries import AuditQuery
from tokenledger.service import Ledger
from tokenledger.store import open_event_store

BOB = "bob@acme.io"

#: Times no input may give: the first two cannot even be converted to UTC (the conversion
#: overflows), the others lie in the day the ledger keeps free at each end.
OUT_OF_RANGE = {
    "year 1 pushed before its start": "0001-01-01T00:00:00+01:00",
    "year 9999 pushed past its end": "9999-12-31T23:59:59-01:00",
    "the first day": "0001-01-01T12:00:00Z",
    "the last day": "9999-12-31T00:00:01Z",
}

X = "<TIME>"

#: Every command-line option that takes a time.
TIME_OPTIONS: list[tuple[str, list[str]]] = [
    ("tokens create --expires-at",
     ["tokens", "create", "--principal", SA, "--expires-at", X]),
    ("tokens list --at", ["tokens", "list", "--principal", SA, "--at", X]),
    ("tokens verify --at", ["tokens", "verify", "--at", X]),
    ("audit --since", ["audit", "--since", X]),
    ("audit --until", ["audit", "--until", X]),
    ("audit --subject --since", ["audit", "--subject", "acme", "--since", X]),
    ("audit --actor --until", ["audit", "--actor", "operator:root", "--until", X]),
    ("audit export --since", ["audit", "export", "--since", X, "--output", "{cwd}/out.jsonl"]),
    ("audit export --until", ["audit", "export", "--until", X, "--output", "{cwd}/out.jsonl"]),
    ("replay --until", ["replay", "--until", X, "--into", "sqlite:///{cwd}/into.db"]),
]  # fmt: skip


@dataclass
class Session:
    url: str
    secret: str  # a live token of the service account


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def session(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Session:
    """acme with alpha, bob (member, write on alpha) and the account ci (write on alpha)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('ranges') / 'ledger.db'}"
    else:
        url = request.getfixturevalue("postgres_server").fresh_schema()
    ledger = Ledger(open_event_store(url, auto_upgrade=True))
    try:
        for command in (
            c.CreateOrg(org="acme"),
            c.CreateResource(path="acme/alpha"),
            c.CreateUser(email=BOB),
            c.AddMember(org="acme", email=BOB),
            c.SetGrant(principal=BOB, resource="acme/alpha", level=Level.WRITE),
            c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level="write"),
        ):
            ledger.execute(command, OPERATOR)
        issued = ledger.execute(c.IssueToken(principal=SA), OPERATOR)
    finally:
        ledger.close()
    assert issued.secret is not None
    return Session(url=url, secret=issued.secret)


def refused(
    session: Session, args: list[str], *fragments: str, stdin: str | bytes | None = None
) -> None:
    """Exit 2, one line naming ``fragments``, nothing on stdout, the log head unchanged."""
    before = cli_head(session.url)
    result = cli_run(session.url, *args, stdin=stdin)
    assert_clean_refusal(result, *fragments)
    assert cli_head(session.url) == before


def assert_clean_refusal(result: Result, *fragments: str) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert_one_line_error(result, 2, *fragments)
    assert result.stdout == ""
    assert result.stderr.strip().isprintable()


# -- times on the command line ----------------------------------------------------------------


@pytest.mark.parametrize(("slot", "template"), TIME_OPTIONS, ids=[s for s, _ in TIME_OPTIONS])
def test_out_of_range_times_in_options_are_refused_in_one_line(
    session: Session, slot: str, template: list[str], tmp_path: Path
) -> None:
    option = next(a for a in reversed(template[: template.index(X)]) if a.startswith("--"))
    stdin = session.secret if slot.startswith("tokens verify") else None
    for value in OUT_OF_RANGE.values():
        args = [value if a == X else a.replace("{cwd}", str(tmp_path)) for a in template]
        refused(session, args, f"invalid {option}", "out of range", stdin=stdin)
    assert list(tmp_path.iterdir()) == []  # no export file, no database built


def test_the_edges_of_the_span_are_accepted(session: Session) -> None:
    """The span is closed: its first and last instants are times like any other (the
    security page's far expiry ``--expires-at 9999-12-31`` among them)."""
    for args in (
        ["audit", "--since", "0001-01-02T00:00:00Z"],
        ["audit", "--subject", "acme", "--until", "9999-12-31"],
    ):
        result = cli_run(session.url, *args)
        assert result.exit_code == 0, (args, result.output)
    # A moment is a time like any other, and the log answers only for its own span.
    result = cli_run(session.url, "tokens", "list", "--principal", SA, "--at",
                     "0001-01-02T01:00:00+01:00")  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "0001-01-02T00:00:00+00:00 is before the first event" in result.stderr
    result = cli_run(session.url, "tokens", "create", "--principal", SA, "--expires-at",
                     "9999-12-31", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["expires_at"].startswith("9999-12-31T00:00:00")


def test_checked_utc_converts_and_bounds() -> None:
    assert checked_utc(datetime(2030, 1, 1, 1, tzinfo=UTC)) == datetime(2030, 1, 1, 1, tzinfo=UTC)
    assert checked_utc(datetime(2030, 1, 1)) == datetime(2030, 1, 1, tzinfo=UTC)  # naive: UTC
    assert checked_utc(EARLIEST) == EARLIEST
    assert checked_utc(LATEST) == LATEST
    for text in OUT_OF_RANGE.values():
        with pytest.raises(ValidationError, match="out of range"):
            checked_utc(datetime.fromisoformat(text), "since")


# -- lifetimes ---------------------------------------------------------------------------------


def test_a_lifetime_that_overflows_is_refused_before_anything_is_written(
    database_url: str,
) -> None:
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    try:
        ledger.execute(c.CreateOrg(org="acme"), OPERATOR)
        ledger.execute(c.CreateUser(email=BOB), OPERATOR)
        before = ledger.store.head()
        for command, fields in (
            (c.IssueToken, {"principal": BOB, "expires_in": timedelta.max}),
            (c.IssueToken, {"principal": BOB, "expires_in": timedelta(days=4_000_000)}),
            (c.IssueClientCredential, {"account_id": SA, "expires_in": timedelta.max}),
        ):
            with pytest.raises(ValidationError, match="expires_in: too long"):
                c.build(command, **fields)  # type: ignore[arg-type]
        with pytest.raises(ValidationError, match="too long"):
            check_lifetime(timedelta(days=1), now=LATEST)
        assert ledger.store.head() == before
    finally:
        ledger.close()


def test_a_lifetime_that_ends_past_the_span_is_refused_in_one_line(session: Session) -> None:
    """With the clock in the ledger's last year, a year-long lifetime would end past it:
    refused like any bad input, from the option and from a grant file alike."""
    grants = f"principal: {SA}\nexpires_in: 1y\ngrants:\n  - policy: 'data:get@acme/alpha'\n"
    before = cli_head(session.url)
    with freeze_time("9999-06-01T00:00:00Z"):
        for args, stdin in (
            (["tokens", "create", "--principal", SA, "--expires-in", "1y"], None),
            (["tokens", "create", "--principal", SA, "--expires-in", "100y"], None),
            (["tokens", "create", "-c", "-"], grants),
            (["service-accounts", "credentials", "create", SA, "--expires-in", "1y"], None),
        ):
            result = cli_run(session.url, *args, stdin=stdin)
            assert_clean_refusal(result, "too long")
    assert cli_head(session.url) == before


def test_a_grant_file_with_a_number_of_thousands_of_digits_is_refused(
    session: Session, tmp_path: Path
) -> None:
    digits = "1" * 5000
    policy = "data:get@acme/alpha"
    yaml_file = f"principal: {SA}\nexpires_in: {digits}\ngrants:\n  - policy: '{policy}'\n"
    json_file = json.dumps({"principal": SA, "grants": [{"policy": policy}]})
    json_file = json_file[:-1] + f', "expires_in": {digits}}}'
    for name, content in (("yaml", yaml_file), ("json", json_file)):
        path = tmp_path / f"grants.{name}"
        path.write_text(content)
        refused(session, ["tokens", "create", "-c", str(path)], "too long")
        refused(session, ["tokens", "create", "-c", "-"], "too long", stdin=content)
    # And as a duration written out in thousands of digits: refused as malformed.
    refused(session, ["tokens", "create", "--principal", SA, "--expires-in", digits + "d"],
            "invalid duration")  # fmt: skip


# -- audit filters -----------------------------------------------------------------------------

CONTROL = {"NUL": "acme\x00evil", "escape": "acme\x1b[31m", "newline": "acme\nforged"}
FILTERS = [("--actor", "actor"), ("--subject", "subject"), ("--correlation-id", "correlation id")]


@pytest.mark.parametrize(("option", "label"), FILTERS, ids=[o for o, _ in FILTERS])
def test_control_characters_in_audit_filters_are_refused_on_the_command_line(
    session: Session, option: str, label: str
) -> None:
    for value in CONTROL.values():
        refused(session, ["audit", option, value], f"invalid {label}", "control characters")


def test_audit_query_refuses_control_characters_and_out_of_range_bounds() -> None:
    for field in ("actor", "subject", "correlation_id"):
        with pytest.raises(ValidationError, match="control characters"):
            AuditQuery(**{field: "a\x00b"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="out of range"):
        AuditQuery(until=datetime.fromisoformat(OUT_OF_RANGE["year 9999 pushed past its end"]))
    naive = AuditQuery(since=datetime(2030, 1, 1))
    assert naive.since == datetime(2030, 1, 1, tzinfo=UTC)


# -- over HTTP ---------------------------------------------------------------------------------


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def bad_request(response: object, *fragments: str) -> str:
    """A 400 ``invalid_request`` with a one-line description naming ``fragments``."""
    assert getattr(response, "status_code", None) == 400, getattr(response, "text", "")
    body = response.json()  # type: ignore[attr-defined]
    assert body["error"] == "invalid_request"
    description: str = body["error_description"]
    assert description.isprintable(), description
    assert "Traceback" not in description
    for fragment in fragments:
        assert fragment in description, description
    return description


def test_out_of_range_expiries_in_json_bodies_are_400(api: Api) -> None:
    before = api.ledger.store.head()
    for text in OUT_OF_RANGE.values():
        for path, grants in (
            (f"/v2/users/{BOB}/tokens", [{"resource": "acme/alpha", "level": "read"}]),
            (f"/v2/service_accounts/{SA}/tokens", []),
        ):
            body = {"grants": grants, "expires_at": text}
            response = api.client.post(path, json=body, headers=api.admin)
            bad_request(response, "expires_at", "out of range")
    assert api.ledger.store.head() == before


def test_out_of_range_audit_bounds_are_400(api: Api) -> None:
    for text in OUT_OF_RANGE.values():
        for name, extra in (("since", {}), ("until", {}), ("since", {"subject": "acme"})):
            params = {name: text, **extra}
            response = api.client.get("/v2/audit", params=params, headers=api.admin)
            bad_request(response, f"invalid {name}", "out of range")


@pytest.mark.parametrize(("name", "label"), [("actor", "actor"), ("subject", "subject"),
                                             ("correlation_id", "correlation id")])  # fmt: skip
def test_control_characters_in_audit_filters_are_400(api: Api, name: str, label: str) -> None:
    """A NUL byte reached PostgreSQL and came back a 500; every control character is now
    refused at the edge, on both databases."""
    for value in CONTROL.values():
        response = api.client.get("/v2/audit", params={name: value}, headers=api.admin)
        bad_request(response, f"invalid {label}", "control characters")


def test_a_lifetime_past_the_span_is_400(database_url: str, tmp_path: Path) -> None:
    """With the clock in the ledger's last year, an admin whose token lasts to the end asks
    for a year-long credential and token: refused as bad input, not a 500."""
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    try:
        for command in (
            c.CreateOrg(org="acme"),
            c.CreateResource(path="acme/alpha"),
            c.CreateUser(email="ann@acme.io"),
            c.AddMember(org="acme", email="ann@acme.io", role="admin"),
            c.CreateServiceAccount(name="ci", org="acme", resource="acme/alpha", level="write"),
        ):
            ledger.execute(command, OPERATOR)
        grants = [{"resource": "acme", "level": "admin"}]
        issued = ledger.execute(
            c.IssueToken(principal="ann@acme.io", grants=grants, expires_at=LATEST), OPERATOR
        )
        assert issued.secret is not None
        admin = Api.bearer(issued.secret)
        before = ledger.store.head()
        with TestClient(create_app(ledger), raise_server_exceptions=False) as client:
            for path, body in (
                (f"/v2/service_accounts/{SA}/credentials", {"expires_in": "1y"}),
                (f"/v2/service_accounts/{SA}/tokens", {"expires_in": "1y"}),
                ("/v2/users/ann@acme.io/tokens", {"grants": grants, "expires_in": "1y"}),
            ):
                with freeze_time("9999-06-01T00:00:00Z"):
                    response = client.post(path, json=body, headers=admin)
                bad_request(response, "too long")
        assert ledger.store.head() == before
    finally:
        ledger.close()


# -- grant files -------------------------------------------------------------------------------

_CONFIG = f"principal: {SA}\ngrants:\n  - resource: acme/alpha\n    level: read\n"
_JSON_CONFIG = json.dumps(
    {"principal": SA, "grants": [{"resource": "acme/alpha", "level": "read"}]}
)

#: Valid grant configs in every encoding but UTF-8: each was read as if it were.
NOT_UTF8 = {
    "utf-16 yaml": _CONFIG.encode("utf-16"),
    "utf-16 json": _JSON_CONFIG.encode("utf-16"),
    "utf-16-be with a mark": b"\xfe\xff" + _CONFIG.encode("utf-16-be"),
    "utf-16-le without a mark": _CONFIG.encode("utf-16-le"),
    "utf-32 json": _JSON_CONFIG.encode("utf-32"),
}

#: Configs giving a key twice, each of which was otherwise valid (the last value won).
DUPLICATE_KEYS = {
    "principal": f"principal: {BOB}\n{_CONFIG}",
    "grants": f"grants: [{{policy: 'data:admin@acme'}}]\n{_CONFIG}",
    "level": f"principal: {SA}\ngrants:\n  - resource: acme/alpha\n    level: read\n"
    "    level: write\n",
    "expires_in": f"expires_in: 1h\nexpires_in: 30d\n{_CONFIG}",
    "principal (json)": json.dumps({"principal": BOB})[:-1] + ", " + _JSON_CONFIG[1:],
    "level (json)": (
        f'{{"principal": "{SA}", "grants": [{{"resource": "acme/alpha", "level": "read", '
        '"level": "write"}]}'
    ),
}


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_grant_files_not_in_utf8_are_refused(session: Session, via: str, tmp_path: Path) -> None:
    for content in NOT_UTF8.values():
        if via == "file":
            path = tmp_path / "grants.yaml"
            path.write_bytes(content)
            refused(session, ["tokens", "create", "-c", str(path)], "UTF-8")
        else:
            refused(session, ["tokens", "create", "-c", "-"], "UTF-8", stdin=content)


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_grant_files_giving_a_key_twice_are_refused(
    session: Session, via: str, tmp_path: Path
) -> None:
    for name, content in DUPLICATE_KEYS.items():
        key = name.split()[0]
        if via == "file":
            path = tmp_path / "grants.yaml"
            path.write_text(content)
            refused(session, ["tokens", "create", "-c", str(path)], f"duplicate key '{key}'")
        else:
            refused(session, ["tokens", "create", "-c", "-"], f"duplicate key '{key}'",
                    stdin=content)  # fmt: skip


def test_grant_file_parsing_refuses_other_encodings_and_repeated_keys() -> None:
    for content in NOT_UTF8.values():
        with pytest.raises(ValidationError, match="must be UTF-8 text"):
            parse_grant_config(content, "g.yaml")
    for name, content in DUPLICATE_KEYS.items():
        key = name.split()[0]
        with pytest.raises(ValidationError, match=f"^g.yaml: .*duplicate key '{key}'$"):
            parse_grant_config(content, "g.yaml")


def test_grant_files_that_repeat_nothing_still_load() -> None:
    """UTF-8 with a byte order mark, a merge key overriding what it merges, the same key
    in two different mappings and an alias used twice are not duplicates."""
    with_mark = parse_grant_config(_CONFIG.encode("utf-8-sig"), "g.yaml")
    assert with_mark.principal == SA
    merged = parse_grant_config(
        "grants:\n  - &g {resource: acme/alpha, level: read}\n  - {<<: *g, level: write}\n  - *g\n",
        "g.yaml",
    )
    assert [(g.resource, g.level) for g in merged.grants] == [
        ("acme/alpha", "read"),
        ("acme/alpha", "write"),
        ("acme/alpha", "read"),
    ]
