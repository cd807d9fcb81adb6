"""What a command may carry into the log, and what an access token must look like.

* No token secret, whole or inside longer text, is accepted in any free-text field (display
  names, token and credential names, reasons) or in any name, path or address of any command:
  the log can never be changed, so a secret pasted there would stay readable for good. The
  refusal is one line that does not repeat the secret, and nothing is appended. Names are tried
  with a well-formed secret made only of lowercase letters and digits, which fits the naming
  rule, and addresses with a mixed-case one, which lowercasing would otherwise let through.
* No user's email lies in the service accounts' domain, ``service.tokenledger`` itself
  included, in any case.
* An access token introspects active only in its exact compact serialization: padding,
  trailing junk or another spelling of the same bytes answers inactive (``malformed``).

On SQLite and PostgreSQL, through the commands, the CLI and the HTTP API.
"""

from __future__ import annotations

import base64
import json
import secrets
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import Result

from api_helpers import ISSUER, OPERATOR, SA, Api, make_api
from helpers import assert_one_line_error, cli_json, cli_run
from tokenledger.domain import commands as c
from tokenledger.domain.events import ClientCredentialIssued
from tokenledger.domain.names import check_email
from tokenledger.domain.permissions import Level
from tokenledger.domain.secrets import (
    BASE62_ALPHABET,
    TokenKind,
    generate_secret,
    parse_secret,
)
from tokenledger.errors import ValidationError
from tokenledger.service import Ledger
from tokenledger.store import open_event_store


def lowercase_secret(kind: TokenKind) -> str:
    """A well-formed secret made only of lowercase letters and digits: it fits the naming rule
    (rare among random secrets, about one in a billion, but possible)."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    while True:
        random_part = "".join(secrets.choice(alphabet) for _ in range(32))
        crc, digits = zlib.crc32(random_part.encode()), []
        for _ in range(6):
            crc, digit = divmod(crc, 62)
            digits.append(BASE62_ALPHABET[digit])
        checksum = "".join(reversed(digits))
        if not any(ch.isupper() for ch in checksum):
            secret = kind.prefix + random_part + checksum
            assert parse_secret(secret) is kind
            return secret


def mixed_case_secret(kind: TokenKind) -> str:
    while True:
        secret = generate_secret(kind)
        if any(ch.isupper() for ch in secret):
            return secret


LOWER = lowercase_secret(TokenKind.PERSONAL)
MIXED = mixed_case_secret(TokenKind.SERVICE)
CLIENT = mixed_case_secret(TokenKind.CLIENT)


def assert_not_repeated(text: str, *leaked: str) -> None:
    """Neither a secret nor its body (nor its lowercased body) appears in ``text``."""
    for secret in leaked:
        body = secret[4:]
        assert body not in text
        assert body.lower() not in text.lower()


# -- every text field of every command -------------------------------------------------------------

#: A valid instance of every command: its fields, one hostile value at a time, are tried below.
VALID: dict[type[c.Command], dict[str, Any]] = {
    c.CreateOrg: {"org": "acme"},
    c.CreateUser: {"email": "ann@acme.io", "name": "Ann"},
    c.CreateAccount: {"email": "ann@acme.io", "name": "Ann"},
    c.DisableUser: {"email": "ann@acme.io", "reason": "left"},
    c.AddMember: {"org": "acme", "email": "ann@acme.io", "role": "admin"},
    c.RemoveMember: {"org": "acme", "email": "ann@acme.io"},
    c.CreateResource: {
        "path": "acme/alpha",
        "kind": "project",
        "license": "CC-BY-4.0",
        "data_class": "public",
    },
    c.DeleteResource: {"path": "acme/alpha"},
    c.SetResourceAttributes: {"path": "acme/alpha", "license": "MIT", "data_class": "private"},
    c.SetGrant: {"principal": "ann@acme.io", "resource": "acme/alpha", "level": "read"},
    c.CreateRole: {
        "org": "acme",
        "role": "reader",
        "grants": [{"resource": "acme", "level": "read"}],
    },
    c.CreateServiceAccount: {
        "name": "ci",
        "org": "acme",
        "resource": "acme/alpha",
        "level": "read",
    },
    c.SetServiceAccountPermission: {"account_id": SA, "resource": "acme/alpha", "level": "read"},
    c.DeleteServiceAccount: {"account_id": SA},
    c.IssueToken: {"principal": "ann@acme.io", "role": "acme:reader", "name": "laptop"},
    c.RevokeToken: {"token_id": "tok_0000000000000000", "reason": "lost"},
    c.RevokeAllTokens: {"principal": "ann@acme.io", "reason": "left"},
    c.RevokeTokensWhere: {"where": {"name": "deploy-*"}, "reason": "rotation"},
    c.RevokeCredentials: {"token_ids": ["tok_0000000000000000"], "reason": "leaked"},
    c.IssueClientCredential: {"account_id": SA, "name": "deploy"},
    c.RevokeClientCredential: {"client_id": "cid_0000000000000000", "reason": "rotated"},
    c.DisableToken: {"token_id": "tok_0000000000000000", "reason": "lost laptop"},
    c.EnableToken: {"token_id": "tok_0000000000000000"},
    c.DisableServiceAccount: {"account_id": SA, "reason": "audit"},
    c.EnableServiceAccount: {"account_id": SA},
    c.DisableClientCredential: {"client_id": "cid_0000000000000000", "reason": "audit"},
    c.EnableClientCredential: {"client_id": "cid_0000000000000000"},
    c.SetIdentityProvider: {
        "org": "acme",
        "issuer": "https://login.acme.example",
        "oidc_client_id": "ledger",
    },
    c.StartSession: {
        "session_id": "ses_" + "0" * 24,
        "org": "acme",
        "email": "ann@acme.io",
        "issuer": "https://login.acme.example",
        "subject": "00u1abcd",
        "refresh_hash": "0" * 64,
    },
    c.RefreshSession: {"presented_hash": "0" * 64, "refresh_hash": "1" * 64},
    c.EndSession: {"session_id": "ses_" + "0" * 24, "reason": "laptop lost"},
    c.TrustIssuer: {
        "account_id": SA,
        "issuer": "https://token.actions.example",
        "subject": "repo:acme/site:*",
        "audience": "tokenledger",
    },
    c.UntrustIssuer: {
        "account_id": SA,
        "issuer": "https://token.actions.example",
        "subject": "repo:acme/site:*",
        "reason": "moved to another CI",
    },
    c.CreateEndpoint: {"name": "proxy", "url": "https://gateway.example"},
    c.DeleteEndpoint: {"endpoint": "proxy"},
    c.TrustEndpoint: {"account_id": SA, "endpoint": "proxy"},
    c.UntrustEndpoint: {"account_id": SA, "endpoint": "proxy", "reason": "moved"},
    c.IssueS3Credential: {"account_id": SA, "endpoint": "proxy"},
    c.RevokeS3Credential: {"account_id": SA, "endpoint": "proxy", "reason": "leaked"},
    c.IssueRoleKey: {"org": "acme", "role": "alice.token", "name": "ci"},
    c.RevokeRoleKey: {
        "org": "acme",
        "role": "alice.token",
        "token_id": "tok_0000000000000000",
        "reason": "rotated",
    },
    c.AddRolePolicy: {"org": "acme", "role": "alice.token", "resource": "acme", "level": "read"},
    c.RemoveRolePolicy: {"org": "acme", "role": "alice.token", "resource": "acme"},
    c.DeleteRole: {"org": "acme", "role": "alice.token"},
    c.RotateToken: {"token_id": "tok_0000000000000000"},
    c.RotateClientCredential: {"client_id": "cid_0000000000000000", "account_id": SA},
    c.SetOrgPolicy: {"org": "acme", "max_lifetime": {"service": timedelta(days=90)}},
    c.ClearOrgPolicy: {"org": "acme"},
    c.CreateWebhook: {
        "org": "acme",
        "url": "https://hooks.example/in",
        "events": ["token.revoked"],
    },
    c.DeleteWebhook: {"webhook_id": "wh_" + "0" * 24},
    c.RotateWebhookSecret: {"webhook_id": "wh_" + "0" * 24},
    c.RecordUses: {  # the ledger's own (no text: a credential's id, by pattern)
        "interval": 3600,
        "uses": [
            {
                "credential_id": "tok_0000000000000000",
                "bucket_start": "2031-01-01T00:00:00Z",
                "count": 2,
                "last_used_at": "2031-01-01T00:10:00Z",
            }
        ],
    },
}

FREE_TEXT = [
    "{s}",
    "tlp_" + "A" * 36 + "{s}",  # a look-alike just before it must not hide it
    "my token {s}",
    "my token {s} leaked, please rotate",
    "token={s}",
    "x{s}y",  # run together with the words around it
    "  {s}\t",
]

#: For each kind of field, values that carry a secret ({s}), as a caller could send them.
TEXT_FIELDS: dict[str, list[Any]] = {
    "org": [LOWER],
    "role": [LOWER, "acme:" + LOWER],
    "kind": [LOWER],
    "path": ["acme/" + LOWER, LOWER],
    "resource": ["acme/" + LOWER, LOWER + "/alpha"],
    "email": [LOWER + "@acme.io", MIXED + "@acme.io", "ann@" + LOWER + ".io"],
    "principal": [
        LOWER + "@acme.io",
        MIXED + "@acme.io",
        LOWER + "@acme.service.tokenledger",
        LOWER,  # no @: a token's principal may be a Dyff account id, which this is not
    ],
    "account_id": [LOWER + "@acme.service.tokenledger", "ci@" + LOWER + ".service.tokenledger"],
    "token_id": [MIXED],
    "parent_id": [MIXED],
    "client_id": [CLIENT],
    "grants": [f"acme/{LOWER}"],
    "name": [],  # free text, or a service account's name: see below
    "reason": [],
    "oidc_client_id": [],  # free text
    "audience": [],  # free text
    "issuer": ["https://" + LOWER + ".example", "https://login.example/" + MIXED],
    "subject": [],  # free text at a provider; a pattern of a trust: see below
    "session_id": [MIXED, "ses_" + LOWER],
    "refresh_hash": [MIXED],
    "presented_hash": [MIXED],
    "license": [MIXED, LOWER, "MIT+" + LOWER],
    "data_class": [LOWER, MIXED],
    "url": ["https://" + LOWER + ".example", "https://gateway.example/" + MIXED],
    "endpoint": [LOWER, MIXED],
    "access_key_id": [MIXED, LOWER],
    "max_lifetime": [{LOWER: timedelta(days=1)}, {MIXED: timedelta(days=1)}],
    "existing": [LOWER, MIXED],
    "events": [[LOWER], ["token.revoked", MIXED]],  # a list of types
    "webhook_id": [MIXED, LOWER],
    "token_ids": [[MIXED], MIXED],  # a list, or one text separated by commas
    "client_ids": [[CLIENT], CLIENT],
    "access_key_ids": [[MIXED], [LOWER], "AKIA0000," + LOWER],
    "trust_ids": [[MIXED], "wif_" + LOWER],
    "webhook_ids": [[MIXED], LOWER],
    "endpoint_trusts": [[("ci@acme.service.tokenledger", MIXED)], [(LOWER, "ep_" + "0" * 24)]],
    "radius_of": [MIXED, LOWER],
}

#: Fields whose every value is free text.
FREE_TEXT_FIELDS = ("name", "reason", "oidc_client_id", "audience")


def hostile_values(command: type[c.Command], field: str) -> list[Any]:
    free = field in FREE_TEXT_FIELDS or (field == "subject" and command is c.StartSession)
    if free and command is not c.CreateServiceAccount:
        return [template.format(s=secret) for template in FREE_TEXT for secret in (MIXED, LOWER)]
    if field == "subject":  # a trust's pattern
        return ["repo:acme/" + MIXED + ":*", "repo:" + LOWER]
    if command is c.CreateServiceAccount and field == "name":
        return [LOWER]
    if field == "grants":
        return [[{"resource": path, "level": "read"}] for path in TEXT_FIELDS["grants"]]
    return TEXT_FIELDS[field]


def text_fields(command: type[c.Command]) -> list[str]:
    """Every field that holds text (a string, or grants' resource paths)."""
    found = []
    for name, info in command.model_fields.items():
        shown = repr(info.annotation)
        if "str" in shown or "GrantSpec" in shown:
            found.append(name)
    return found


def all_commands() -> list[type[c.Command]]:
    found: list[type[c.Command]] = []
    pending = list(c.Command.__subclasses__())
    while pending:
        command = pending.pop()
        found.append(command)
        pending.extend(command.__subclasses__())
    return found


def test_every_command_and_text_field_is_covered() -> None:
    """A new command or text field fails here until its hostile values are listed."""
    assert set(all_commands()) == set(VALID)
    for command in VALID:
        c.build(command, **VALID[command])
        for field in text_fields(command):
            assert field in TEXT_FIELDS, (command.__name__, field)


@pytest.mark.parametrize(
    "command", sorted(VALID, key=lambda k: k.__name__), ids=lambda k: k.__name__
)
def test_no_text_field_of_any_command_takes_a_secret(command: type[c.Command]) -> None:
    for field in text_fields(command):
        for value in hostile_values(command, field):
            fields = {**VALID[command], field: value}
            with pytest.raises(ValidationError) as refused:
                c.build(command, **fields)
            message = str(refused.value)
            assert "\n" not in message, (command.__name__, field)
            assert_not_repeated(message, MIXED, LOWER, CLIENT)


def test_free_text_says_why_and_names_the_field() -> None:
    with pytest.raises(ValidationError) as refused:
        c.build(c.RevokeToken, token_id="tok_0000000000000000", reason=f"my token {MIXED} leaked")
    assert str(refused.value).startswith("invalid reason: it contains a token secret")
    with pytest.raises(ValidationError) as refused:
        c.build(c.IssueToken, principal="ann@acme.io", name=MIXED)
    assert str(refused.value).startswith("invalid name: it contains a token secret")


def test_text_that_only_resembles_a_secret_is_still_accepted() -> None:
    """The prefix alone, a short run after it, or another case of the prefix is not a secret."""
    typo = MIXED[:10] + ("a" if MIXED[10] != "a" else "b") + MIXED[11:]
    for text in (
        "rotate the tlp_ and tls_ tokens",
        "tlp_" + MIXED[4:20],
        "TLP_" + MIXED[4:],
        "tlx_" + MIXED[4:],
        MIXED[4:],
        "tls_" + "A" * 38,  # the shape without a valid checksum
        typo,
    ):
        assert c.build(c.IssueToken, principal="ann@acme.io", name=text).name == text


# -- the service accounts' domain ----------------------------------------------------------------

RESERVED_EMAILS = [
    "evil@service.tokenledger",
    "EVIL@SERVICE.TOKENLEDGER",
    "Evil@Service.TokenLedger",
    "first.last+tag@service.tokenledger",
    " evil@service.tokenledger ",
    "evil@acme.service.tokenledger",
    "evil@a.b.SERVICE.tokenledger",
]


@pytest.mark.parametrize("email", RESERVED_EMAILS)
def test_no_user_email_in_the_service_accounts_domain(email: str) -> None:
    with pytest.raises(ValueError, match="reserved for service accounts"):
        check_email(email)
    for command, field in (
        (c.CreateUser, "email"),
        (c.AddMember, "email"),
        (c.DisableUser, "email"),
        (c.SetGrant, "principal"),
        (c.RevokeAllTokens, "principal"),
    ):
        if field == "principal" and email.endswith(".service.tokenledger"):
            continue  # where a principal is asked for, that is a service account's id
        with pytest.raises(ValidationError) as refused:
            c.build(command, **{**VALID[command], field: email})
        assert "service" in str(refused.value)


def test_lookalikes_of_the_domain_are_ordinary_addresses() -> None:
    for email in (
        "ann@service.tokenledger.io",
        "ann@myservice.tokenledger.io",
        "ann@tokenledger.io",
    ):
        assert check_email(email) == email


# -- storage: the CLI ------------------------------------------------------------------------------

ORG = "acme"
BOB = "bob@acme.io"
ACCOUNT_PERMISSION = ("--resource", "acme/alpha", "--level", "read")


@pytest.fixture
def seeded(database_url: str) -> dict[str, str]:
    """acme/alpha, bob (write on it), the account ci with a token and a client credential."""
    ledger = Ledger(open_event_store(database_url, auto_upgrade=True))
    try:
        for command in (
            c.CreateOrg(org=ORG),
            c.CreateResource(path="acme/alpha"),
            c.CreateUser(email=BOB),
            c.AddMember(org=ORG, email=BOB),
            c.SetGrant(principal=BOB, resource="acme/alpha", level=Level.WRITE),
            c.CreateServiceAccount(name="ci", org=ORG, resource="acme/alpha", level=Level.WRITE),
        ):
            ledger.execute(command, OPERATOR)
        issued = ledger.execute(
            c.IssueToken(principal=SA, grants=[{"resource": "acme/alpha", "level": "read"}]),
            OPERATOR,
        ).issued
        credential = ledger.execute(c.IssueClientCredential(account_id=SA), OPERATOR)
        assert issued is not None
        event = credential.events[0]
        assert isinstance(event, ClientCredentialIssued)
        client_id = event.client_id
    finally:
        ledger.close()
    return {"url": database_url, "token_id": issued.token_id, "client_id": client_id}


def cli_slots(token_id: str, client_id: str) -> list[tuple[str, list[str]]]:
    said = f"my token {MIXED} leaked, please rotate"
    return [
        ("users create --name", ["users", "create", "new@acme.io", "--name", said]),
        ("users create EMAIL", ["users", "create", f"{MIXED}@acme.io"]),
        ("users create EMAIL (lowercase)", ["users", "create", f"{LOWER}@acme.io"]),
        ("users disable --reason", ["users", "disable", BOB, "--reason", said]),
        ("tokens create --name", ["tokens", "create", "--principal", SA, "--name", said]),
        ("tokens create --name (whole)", ["tokens", "create", "--principal", SA, "--name", MIXED]),
        ("tokens revoke --reason", ["tokens", "revoke", token_id, "--reason", said]),
        (
            "tokens revoke --all --reason",
            ["tokens", "revoke", "--all", "--principal", SA, "--reason", said],
        ),
        (
            "credentials create --name",
            ["service-accounts", "credentials", "create", SA, "--name", said],
        ),
        (
            "credentials revoke --reason",
            ["service-accounts", "credentials", "revoke", client_id, "--reason", said],
        ),
        ("orgs create", ["orgs", "create", LOWER]),
        ("orgs add-member --role", ["orgs", "add-member", ORG, BOB, "--role", LOWER]),
        ("roles create ROLE", ["roles", "create", ORG, LOWER, "--grant", "acme/alpha=read"]),
        ("resources create PATH", ["resources", "create", f"acme/{LOWER}"]),
        ("resources create --kind", ["resources", "create", "acme/alpha/raw", "--kind", LOWER]),
        (
            "service-accounts create NAME",
            ["service-accounts", "create", LOWER, "--org", ORG, *ACCOUNT_PERMISSION],
        ),
    ]


def events_text(url: str) -> str:
    """Every column of every event, as text, for searching."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT * FROM events")).all()
    finally:
        engine.dispose()
    parts = []
    for row in rows:
        for value in row:
            if isinstance(value, bytes | memoryview):
                value = bytes(value).decode("utf-8", "replace")
            parts.append(str(value))
    return "\n".join(parts)


def log_head(url: str) -> int:
    position = cli_json(url, "log", "head")["position"]
    assert isinstance(position, int)
    return position


def test_the_cli_refuses_secrets_in_text_and_names(seeded: dict[str, str]) -> None:
    url = seeded["url"]
    for slot, args in cli_slots(seeded["token_id"], seeded["client_id"]):
        before = log_head(url)
        result: Result = cli_run(url, *args)
        assert_one_line_error(result, 2, "token secret")
        assert result.stdout == "", slot
        assert_not_repeated(result.output, MIXED, LOWER)
        assert log_head(url) == before, slot
    assert_not_repeated(events_text(url), MIXED, LOWER)
    # The same commands without the secret go through.
    assert cli_json(url, "tokens", "create", "--principal", SA, "--name", "rotate tls_ tokens")


@pytest.mark.parametrize("email", ["evil@service.tokenledger", "Evil@SERVICE.TokenLedger"])
def test_the_cli_refuses_a_user_in_the_service_accounts_domain(
    seeded: dict[str, str], email: str
) -> None:
    url = seeded["url"]
    before = log_head(url)
    result = cli_run(url, "users", "create", email)
    assert_one_line_error(result, 2, "reserved for service accounts")
    assert log_head(url) == before
    result = cli_run(url, "orgs", "add-member", ORG, email)
    assert_one_line_error(result, 2, "reserved for service accounts")
    assert log_head(url) == before
    assert "evil@service.tokenledger" not in events_text(url).lower()


# -- storage: HTTP -------------------------------------------------------------------------------


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[Api]:
    yield from make_api(database_url, tmp_path)


def bad_request(response: Any) -> str:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_request"
    description: str = body["error_description"]
    assert "\n" not in description
    assert_not_repeated(response.text, MIXED, LOWER)
    return description


def test_the_api_refuses_secrets_in_text_and_names(api: Api) -> None:
    client, admin = api.client, api.admin
    said = f"my token {MIXED} leaked, please rotate"
    bob_token = api.ledger.authenticate(api.bob).token_id
    client_id, _ = api.credential()
    bob = api.bearer(api.bob)
    calls = [
        ("post", "/v2/users", admin, {"json": {"email": "new@acme.io", "name": said}}),
        ("post", "/v2/users", admin, {"json": {"email": f"{MIXED}@acme.io"}}),
        ("post", "/v2/users/bob@acme.io/disable", admin, {"json": {"reason": said}}),
        ("post", "/v2/users/bob@acme.io/tokens", admin, {"json": {"name": said}}),
        ("delete", "/v2/users/bob@acme.io/tokens", bob, {"params": {"reason": said}}),
        ("delete", f"/v2/users/bob@acme.io/tokens/{bob_token}", bob, {"params": {"reason": said}}),
        ("post", f"/v2/service_accounts/{SA}/credentials", admin, {"json": {"name": said}}),
        (
            "delete",
            f"/v2/service_accounts/{SA}/credentials/{client_id}",
            admin,
            {"params": {"reason": said}},
        ),
        ("post", "/v2/orgs", admin, {"json": {"name": LOWER}}),
        ("post", "/v2/resources", admin, {"json": {"path": f"acme/{LOWER}"}}),
    ]
    before = api.ledger.store.head().position
    for method, path, headers, options in calls:
        response = getattr(client, method)(path, headers=headers, **options)
        assert "token secret" in bad_request(response), (method, path)
        assert api.ledger.store.head().position == before, (method, path)
    # Issued through a token, with a secret in the name: the same refusal.
    response = client.post(
        "/v2/users/bob@acme.io/tokens", headers=api.bearer(api.bob), json={"name": said}
    )
    bad_request(response)
    assert api.ledger.store.head().position == before


def test_the_api_refuses_a_user_in_the_service_accounts_domain(api: Api) -> None:
    before = api.ledger.store.head().position
    for email in ("evil@service.tokenledger", "EVIL@Service.TokenLedger"):
        response = api.client.post("/v2/users", headers=api.admin, json={"email": email})
        assert "reserved for service accounts" in bad_request(response)
    assert api.ledger.store.head().position == before


# -- access tokens: exactly the compact serialization --------------------------------------------


def altered(token: str) -> dict[str, str]:
    """Alterations of ``token``: padding, junk, and other spellings of the same bytes."""
    header, payload, signature = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    value = alphabet.index(signature[-1])
    # 64 bytes take 86 characters: the last carries 2 bits of data and 4 unused ones.
    assert len(signature) == 86
    assert value & 0b1111 == 0
    unused_bits_set = signature[:-1] + alphabet[value | 0b0001]
    variants = {
        "== appended": token + "==",
        "= appended": token + "=",
        "=== appended": token + "===",
        "padded header": f"{header}==.{payload}.{signature}",
        "padded payload": f"{header}.{payload}=.{signature}",
        "padded signature": f"{header}.{payload}.{signature}==",
        "unused bits set": f"{header}.{payload}.{unused_bits_set}",
        "junk appended": token + "A",
        "junk appended (2)": token + "AA",
        "dot appended": token + ".",
        "fourth segment": token + ".e30",
        "percent": token + "%3D%3D",
    }
    # The same bytes in base64's standard alphabet ('+' and '/'), when they spell differently.
    standard = base64.b64encode(base64.urlsafe_b64decode(signature + "==")).decode().rstrip("=")
    if standard != signature:
        variants["standard alphabet"] = f"{header}.{payload}.{standard}"
    return variants


def test_an_altered_access_token_is_inactive(api: Api) -> None:
    token = api.access_token()
    assert api.introspect(token)["active"] is True
    for label, variant in altered(token).items():
        assert variant != token
        assert api.introspect(variant) == {"active": False}, label
        ring = api.keys.ring()
        answer = api.ledger.introspect(variant, ring, issuer=ISSUER)
        assert (answer.active, answer.reason) == (False, "malformed"), label
        # Nor does the altered token authenticate a caller.
        as_caller = api.client.post(
            "/oauth2/introspect", data={"token": api.bob}, headers=api.bearer(variant)
        )
        assert as_caller.status_code == 401, label
    # The token itself is still fine, afterwards as before.
    assert api.introspect(token)["active"] is True


def test_the_signature_must_be_an_ed25519_signature(api: Api) -> None:
    """A signature segment of another length is malformed before any key is tried."""
    token = api.access_token()
    header, payload, _ = token.split(".")
    for signature in ("", "AAAA", "A" * 88):
        variant = f"{header}.{payload}.{signature}"
        answer = api.ledger.introspect(variant, api.keys.ring(), issuer=ISSUER)
        assert (answer.active, answer.reason) == (False, "malformed"), signature
    assert json.loads(base64.urlsafe_b64decode(header + "==")).get("typ") == "at+jwt"


# -- the answer cache and the correlation header --------------------------------------------


def test_a_jwt_with_surrounding_whitespace_is_inactive_even_when_cached(api: Api) -> None:
    token = api.access_token()
    assert api.introspect(token)["active"] is True
    answer = api.ledger.introspect(token + " ", api.keys.ring(), issuer=ISSUER)
    assert (answer.active, answer.reason) == (False, "malformed")
    assert api.introspect(token + " ") == {"active": False}


def test_a_secret_is_refused_as_a_correlation_id(api: Api) -> None:
    before = api.ledger.store.head().position
    headers = {**api.admin, "X-Correlation-ID": MIXED}
    response = api.client.post("/v2/users", headers=headers, json={"email": "zed@acme.io"})
    assert response.status_code == 400
    assert api.ledger.store.head().position == before
