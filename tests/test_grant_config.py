"""Grant config files: the three grant forms, and one-line refusals of everything else."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tokenledger.cli.grant_files import (
    MAX_CONFIG_BYTES,
    GrantConfig,
    GrantPair,
    load_grant_config,
    parse_grant_config,
)
from tokenledger.errors import ValidationError


def pairs(config: GrantConfig) -> list[tuple[str, str]]:
    return [(p.resource, p.level) for p in config.grants]


def test_native_grants_and_top_level_fields() -> None:
    config = parse_grant_config(
        """
principal: alice@acme.example
name: nightly
expires_in: 12h
grants:
  - resource: acme/alpha
    level: write
  - {resource: acme/beta, level: read}
"""
    )
    assert pairs(config) == [("acme/alpha", "write"), ("acme/beta", "read")]
    assert config.principal == "alice@acme.example"
    assert config.name == "nightly"
    assert config.expires_in == "12h"
    assert config.grants[0].as_spec() == {"resource": "acme/alpha", "level": "write"}


def test_dyff_grants_expand_accounts_by_resources_at_the_highest_level() -> None:
    config = parse_grant_config(
        """
account: ingest@acme.service.tokenledger
grants:
- resources:
  - datasets
  - models
  functions:
  - consume
  accounts:
  - acme/alpha
- resources: ["*"]
  functions: [get, Upload, edit]
  accounts: [acme/beta, acme/gamma]
"""
    )
    assert config.principal == "ingest@acme.service.tokenledger"
    assert pairs(config) == [
        ("acme/alpha/datasets", "read"),
        ("acme/alpha/models", "read"),
        ("acme/beta", "write"),
        ("acme/gamma", "write"),
    ]


@pytest.mark.parametrize(
    ("function", "level"),
    [
        ("get", "read"),
        ("list", "read"),
        ("download", "read"),
        ("create", "append"),
        ("append", "append"),
        ("update", "write"),
        ("delete", "write"),
        ("manage", "admin"),
        ("*", "admin"),
    ],
)
def test_functions_map_to_levels(function: str, level: str) -> None:
    config = parse_grant_config(
        json.dumps({"grants": [{"resources": ["x"], "functions": [function], "accounts": ["a"]}]})
    )
    assert pairs(config) == [("a/x", level)]


def test_element_policies() -> None:
    config = parse_grant_config(
        'grants:\n  - policy: "data:get@acme/alpha"\n  - policy: "jobs:manage@acme/beta/runs"\n'
    )
    assert pairs(config) == [("acme/alpha", "read"), ("acme/beta/runs", "admin")]


def test_json_with_tabs_and_forms_mixed() -> None:
    text = json.dumps(
        {
            "principal": "bob@acme.example",
            "grants": [
                {"resource": "acme/alpha", "level": "read"},
                {"policy": "data:download@acme/beta"},
            ],
        },
        indent="\t",
    )
    assert pairs(parse_grant_config(text)) == [("acme/alpha", "read"), ("acme/beta", "read")]


def test_load_from_a_path_and_from_stdin(tmp_path: Path) -> None:
    path = tmp_path / "grants.yaml"
    path.write_text("grants: [{resource: acme/alpha, level: read}]\n")
    assert load_grant_config(str(path)).grants == (GrantPair("acme/alpha", "read"),)
    stdin = io.BytesIO(b'{"grants": [{"policy": "data:write@acme/alpha"}]}')
    assert load_grant_config("-", stdin).grants == (GrantPair("acme/alpha", "write"),)


def refused(text: str | bytes, *fragments: str) -> str:
    with pytest.raises(ValidationError) as caught:
        parse_grant_config(text, "grants.yaml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("grants.yaml: ")
    for fragment in fragments:
        assert fragment in message
    return message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "must be a mapping"),
        ("- resource: a\n  level: read\n", "must be a mapping"),
        ("just a string", "must be a mapping"),
        ("grants: []\n", "empty"),
        ("name: x\n", "missing 'grants'"),
        ("grants: {resource: a, level: read}\n", "grants: expected a list"),
        ("grants: [x]\n", "grants[0]: expected a mapping"),
        ("grants: [{resource: a, level: read}]\nowner: me\n", "unknown key 'owner'"),
        ("grants: [{resource: a, level: read, extra: 1}]\n", "grants[0]: unrecognised grant"),
        ("grants: [{resource: a}]\n", "unrecognised grant"),
        ("grants: [{resource: 5, level: read}]\n", "grants[0].resource: expected a string"),
        (
            "grants: [{resources: [d], functions: [frobnicate], accounts: [a]}]\n",
            "unknown function 'frobnicate'",
        ),
        ("grants: [{resources: [], functions: [get], accounts: [a]}]\n", "non-empty list"),
        ("grants: [{policy: 'data-get-acme'}]\n", "expected <domain>:<verb>@<path>"),
        ("grants: [{policy: 'data:fly@acme/alpha'}]\n", "unknown function 'fly'"),
        ("principal: x\naccount: y\ngrants: [{policy: 'd:get@a'}]\n", "not both"),
        ("principal: [x]\ngrants: [{policy: 'd:get@a'}]\n", "principal: expected a string"),
        ("grants: [\n", "invalid YAML at line 2"),
        ("grants:\n  - a: b: c\n", "invalid YAML at line 2"),
        (b"grants: \xff\xfe\x00", "invalid YAML"),
        ("? [a]\n: b\n", "invalid YAML"),
    ],
)
def test_rejections(text: str | bytes, fragment: str) -> None:
    refused(text, fragment)


def test_offending_values_are_cut_and_the_content_is_not_repeated() -> None:
    secretish = "s3cr3t-" + "x" * 100
    message = refused(
        f"grants: [{{resources: [d], functions: [{secretish}], accounts: [a]}}]\n",
        "unknown function",
    )
    assert secretish not in message
    assert "s3cr3t-" + "x" * 30 in message
    yaml_error = refused("password: hunter2\ngrants: [\n", "invalid YAML")
    assert "hunter2" not in yaml_error


def test_more_than_1000_grants_are_refused() -> None:
    native = [{"resource": f"acme/p{i}", "level": "read"} for i in range(1001)]
    refused(json.dumps({"grants": native}), "more than 1000 grants")
    accounts = [f"acme/p{i}" for i in range(100)]
    resources = [f"r{i}" for i in range(11)]
    dyff = {"resources": resources, "functions": ["get"], "accounts": accounts}
    refused(json.dumps({"grants": [dyff]}), "more than 1000 grants")
    exactly = [{"resource": f"acme/p{i}", "level": "read"} for i in range(1000)]
    assert len(parse_grant_config(json.dumps({"grants": exactly})).grants) == 1000


def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    bomb = (
        "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "grants:\n  - resources: *b\n    functions: [get]\n    accounts: *b\n"
    )
    refused(bomb, "unknown key 'a'")
    bomb_inside = (
        "grants:\n  - resources: &r [a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, q, r, s, t,"
        " u, v, w, x, y, z, aa, ab, ac, ad, ae, af]\n    functions: [get]\n    accounts: *r\n"
    )
    refused(bomb_inside, "more than 1000 grants")


def test_files_over_one_mebibyte_are_refused(tmp_path: Path) -> None:
    big = b"# " + b"x" * MAX_CONFIG_BYTES + b"\ngrants: [{policy: 'd:get@a'}]\n"
    refused(big, "larger than 1 MiB")
    path = tmp_path / "big.yaml"
    path.write_bytes(big)
    with pytest.raises(ValidationError, match=r"big\.yaml: the grant config is larger than 1 MiB"):
        load_grant_config(str(path))
    with pytest.raises(ValidationError, match=r"<stdin>: the grant config is larger"):
        load_grant_config("-", io.BytesIO(big))


def test_an_unreadable_file_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ValidationError, match=r"missing\.yaml: cannot read the grant config"):
        load_grant_config(str(missing))
