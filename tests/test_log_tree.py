"""The log kept as an RFC 9162 Merkle tree: stored strata, checkpoints, proofs, their checks.

Every proof the product hands out is checked twice: by ``logproof`` (the verifier an auditor
runs) and against an independent recomputation here, straight from RFC 9162's recursive
definitions over the events' canonical bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from helpers import assert_one_line_error, pending, tamper
from tokenledger import logproof
from tokenledger.cli import cli
from tokenledger.errors import IntegrityViolation
from tokenledger.service.log_proofs import verify_stored_tree
from tokenledger.store import EventStore, open_event_store
from tokenledger.store.logtree import StoredTree, entry_bytes, stored_nodes

# -- RFC 9162 §2.1, written out again: the test's own recomputation ----------------------


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mth(entries: list[bytes]) -> bytes:
    if not entries:
        return _h(b"")
    if len(entries) == 1:
        return _h(b"\x00" + entries[0])
    k = 1 << ((len(entries) - 1).bit_length() - 1)
    return _h(b"\x01" + mth(entries[:k]) + mth(entries[k:]))


def path(m: int, entries: list[bytes]) -> list[bytes]:
    if len(entries) <= 1:
        return []
    k = 1 << ((len(entries) - 1).bit_length() - 1)
    if m < k:
        return [*path(m, entries[:k]), mth(entries[k:])]
    return [*path(m - k, entries[k:]), mth(entries[:k])]


def subproof(m: int, entries: list[bytes], whole: bool) -> list[bytes]:
    n = len(entries)
    if m == n:
        return [] if whole else [mth(entries)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, entries[:k], whole), mth(entries[k:])]
    return [*subproof(m - k, entries[k:], False), mth(entries[:k])]


def proof(m: int, entries: list[bytes]) -> list[bytes]:
    return [] if m in (0, len(entries)) else subproof(m, entries, True)


def alter(engine: sa.Engine, statement: str, **params: object) -> None:
    """Change the stored tree as someone with write access to the database could (its table
    is not guarded by triggers: replay rewrites it)."""
    with engine.begin() as connection:
        connection.execute(sa.text(statement), params)


def entries_of(store: EventStore) -> list[bytes]:
    return [entry_bytes(record) for record in store.read_all()]


def b64(values: list[bytes]) -> list[str]:
    return [base64.b64encode(v).decode() for v in values]


# -- the stored tree -----------------------------------------------------------------------


def test_the_stored_tree_hashes_as_the_verifier_does() -> None:
    from tokenledger.store import logtree

    for entry in (b"", b"\x00", b"\x01" * 64, bytes(range(256))):
        assert logtree.leaf_hash(entry) == logproof.leaf_hash(entry) == _h(b"\x00" + entry)
    left, right = _h(b"l"), _h(b"r")
    assert logtree.node_hash(left, right) == logproof.node_hash(left, right)


def test_the_stored_tree_gives_the_rfc_roots_and_proofs(store: EventStore) -> None:
    """Appends of every size (single events, blocks crossing 16 and 256 leaves, one bulk
    append): the tree the strata and events give is RFC 9162's, at every size asked."""
    for number, count in enumerate([1, 5, 16, 3, 250, 1, 1, 30, 1200, 7]):
        store.append(pending(f"s{number}", count), actor="t")
    entries = entries_of(store)
    assert len(entries) == 1514
    with store.engine.connect() as connection:
        levels = {level for level, _, _ in stored_nodes(connection)}
        assert levels == {4, 8}  # 1514 leaves: 94 nodes of 16, 5 of 256, none of 4096
        tree = StoredTree(connection)
        for size in (1, 2, 15, 16, 17, 255, 256, 257, 300, 1024, 1513, 1514):
            assert tree.root(size) == mth(entries[:size]), size
            for index in {0, size // 2, size - 1}:
                hashes = tree.inclusion_proof(index, size)
                assert hashes == path(index, entries[:size])
                leaf = logproof.leaf_hash(entries[index])
                logproof.verify_inclusion(leaf, index, size, hashes, mth(entries[:size]))
            for old in {0, 1, size // 3, size - 1, size}:
                hashes = tree.consistency_proof(old, size)
                assert hashes == proof(old, entries[:size])
                logproof.verify_consistency(
                    old, size, mth(entries[:old]), mth(entries[:size]), hashes
                )
    assert verify_stored_tree(store).startswith("tree ok")


def test_proofs_needing_more_reads_than_one_statement_asks_for(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proof whose nodes and events fall in more runs than a read has slots (a log far
    larger than a test writes) sends several reads, and still gives RFC 9162's answers."""
    from tokenledger.store import logtree

    monkeypatch.setattr(logtree, "_NODE_RANGES", 1)
    monkeypatch.setattr(logtree, "_NODES_IN_RANGES", logtree._nodes_in_ranges(1))
    monkeypatch.setattr(logtree, "_EVENT_RANGES", 1)
    monkeypatch.setattr(logtree, "_EVENTS_IN_RANGES", logtree._events_in_ranges(1))
    store.append(pending("s", 1300), actor="t")
    entries = entries_of(store)
    with store.engine.connect() as connection:
        tree = StoredTree(connection)
        for size in (17, 300, 1299):
            assert tree.root(size) == mth(entries[:size]), size
            assert tree.inclusion_proof(size - 2, size) == path(size - 2, entries[:size])
            assert tree.consistency_proof(size // 3, size) == proof(size // 3, entries[:size])
            assert tree.record(size - 1).position == size - 1


def test_writers_in_several_processes_keep_the_tree_exact(database_url: str) -> None:
    """Two stores (two engines, as two processes have) appending in turn, and a transaction
    rolled back after its append: each append completes its block from what is committed."""
    first = open_event_store(database_url, auto_upgrade=True)
    second = open_event_store(database_url)
    try:
        for turn in range(12):
            (first if turn % 2 else second).append(pending(f"s{turn}", 7), actor="t")
            if turn == 5:
                with pytest.raises(RuntimeError, match="rolled back"):
                    _append_then_fail(first)
        entries = entries_of(first)
        with first.engine.connect() as connection:
            assert StoredTree(connection).root(len(entries)) == mth(entries)
        assert verify_stored_tree(first).startswith("tree ok: 5 stored nodes")
    finally:
        first.engine.dispose()
        second.engine.dispose()


def test_commands_in_turn_from_two_ledgers_keep_the_tree_exact(database_url: str) -> None:
    """Commands as a server runs them (on PostgreSQL, in a pipeline) from two ledgers, so that
    each append often finds another's events after its cached block and reads them back,
    past 256 events (a level-8 node from stored level-4 ones)."""
    from tokenledger.domain import commands as c
    from tokenledger.domain.model import Actor
    from tokenledger.service import Ledger

    operator = Actor.operator("root")
    ledgers = [Ledger(open_event_store(database_url, auto_upgrade=True)) for _ in range(2)]
    try:
        for number in range(270):
            ledger = ledgers[(number // 3) % 2]
            ledger.execute(c.CreateUser(email=f"u{number}@acme.io"), operator)
        store = ledgers[0].store
        entries = entries_of(store)
        assert len(entries) == 270
        with store.engine.connect() as connection:
            assert StoredTree(connection).root(270) == mth(entries)
            assert (8, 0) in {node[:2] for node in stored_nodes(connection)}
        assert verify_stored_tree(store).startswith("tree ok: 17 stored nodes")
    finally:
        for ledger in ledgers:
            ledger.close()


def _append_then_fail(store: EventStore) -> None:
    with store.transaction(actor="t") as tx:
        tx.append(pending("rolled-back", 20))
        raise RuntimeError("rolled back")


def test_the_migration_fills_the_tree_from_an_existing_log(database_url: str) -> None:
    from alembic import command

    from tokenledger.store.migrate import _config, upgrade

    store = open_event_store(database_url, auto_upgrade=True)
    store.append(pending("a", 300), actor="t")
    with store.engine.connect() as connection:
        before = list(stored_nodes(connection))
    with store.engine.begin() as connection:
        command.downgrade(_config(connection), "0018")
    upgrade(store.engine)
    with store.engine.connect() as connection:
        assert list(stored_nodes(connection)) == before
    assert len(before) == 19  # 18 of 16 leaves, 1 of 256
    store.engine.dispose()


# -- the command line ----------------------------------------------------------------------


def run(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", database_url, *args])


@pytest.fixture
def ledger(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EventStore]:
    monkeypatch.setenv("TOKENLEDGER_KEYS_FILE", str(tmp_path / "keys.json"))
    monkeypatch.delenv("TOKENLEDGER_LOG_ORIGIN", raising=False)
    monkeypatch.delenv("TOKENLEDGER_ISSUER", raising=False)
    assert run(database_url, "db", "upgrade").exit_code == 0
    store = open_event_store(database_url)
    yield store
    store.engine.dispose()


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def write(tmp_path: Path, name: str, text: str) -> str:
    target = tmp_path / name
    target.write_text(text)
    return str(target)


def test_key_checkpoint_and_proofs_verify_with_logproof(
    ledger: EventStore, database_url: str, tmp_path: Path
) -> None:
    ledger.append(pending("a", 40), actor="t")
    vkey = ok(run(database_url, "log", "key")).strip()
    name = logproof.parse_verifier_key(vkey).name
    assert name.startswith("tokenledger/")
    key_file = json.loads((tmp_path / "keys.json").read_text())
    assert key_file["log_key"] not in ok(run(database_url, "log", "key"))  # public half only

    old_note = ok(run(database_url, "log", "checkpoint"))
    old = logproof.open_checkpoint(old_note, vkey, name)
    entries = entries_of(ledger)
    assert (old.origin, old.size, old.root_hash) == (name, 40, mth(entries))

    ledger.append(pending("b", 25), actor="t")
    document = json.loads(ok(run(database_url, "log", "checkpoint", "--json")))
    assert (document["size"], document["origin"]) == (65, name)
    entries = entries_of(ledger)
    assert base64.b64decode(document["root_hash"]) == mth(entries)
    new_note = document["note"]

    inclusion = json.loads(
        ok(run(database_url, "log", "prove", "inclusion", "--position", "7", "--json"))
    )
    assert (inclusion["index"], inclusion["tree_size"]) == (6, 65)
    assert base64.b64decode(inclusion["entry"]) == entries[6]
    assert inclusion["hashes"] == b64(path(6, entries))
    entry_file = tmp_path / "entry.bin"
    entry_file.write_bytes(base64.b64decode(inclusion["entry"]))
    proof_file = write(tmp_path, "inclusion.json", json.dumps(inclusion))
    checkpoint_file = write(tmp_path, "new.txt", new_note)
    assert logproof.main(["inclusion", "--entry", str(entry_file), "--proof", proof_file,
                          "--checkpoint", checkpoint_file, "--key", vkey]) == 0  # fmt: skip
    bundle = logproof.bundle_json(
        entries[6], 6, 65, [base64.b64decode(h) for h in inclusion["hashes"]], new_note
    )
    bundle_file = write(tmp_path, "bundle.json", json.dumps(bundle))
    assert logproof.main(["bundle", bundle_file, "--key", vkey]) == 0

    at_size = json.loads(ok(run(database_url, "log", "prove", "inclusion", "--position", "40",
                                "--size", "40", "--json")))  # fmt: skip
    assert at_size["hashes"] == b64(path(39, entries[:40]))

    consistency = json.loads(ok(run(database_url, "log", "prove", "consistency", "--from", "40",
                                    "--json")))  # fmt: skip
    assert consistency == {"old_size": 40, "new_size": 65, "hashes": b64(proof(40, entries))}
    old_file = write(tmp_path, "old.txt", old_note)
    consistency_file = write(tmp_path, "consistency.json", json.dumps(consistency))
    assert logproof.main(["consistency", "--old", old_file, "--new", checkpoint_file,
                          "--proof", consistency_file, "--key", vkey]) == 0  # fmt: skip
    text = ok(run(database_url, "log", "prove", "consistency", "--from", "3", "--to", "9"))
    assert text.splitlines() == ["from size 3 to 9", *b64(proof(3, entries[:9]))]

    verified = ok(run(database_url, "log", "verify", "--checkpoint", old_file))
    assert "tree ok" in verified
    assert "extends the checkpoint at size 40" in verified
    assert "checkpoint ok" in ok(
        run(database_url, "log", "verify", "--checkpoint", old_file, "--key", vkey)
    )


@pytest.mark.parametrize(
    "args",
    [
        ("prove", "inclusion", "--position", "0"),
        ("prove", "inclusion", "--position", "6"),
        ("prove", "inclusion", "--position", "3", "--size", "2"),
        ("prove", "inclusion", "--position", "1", "--size", "9"),
        ("prove", "inclusion", "--position", "-1"),
        ("prove", "consistency", "--from", "4", "--to", "3"),
        ("prove", "consistency", "--from", "6"),
        ("prove", "consistency", "--from", "-1"),
        ("prove", "consistency", "--from", "1", "--to", "99999999999999999999999"),
    ],
)
def test_out_of_range_positions_and_sizes_are_one_line_errors(
    ledger: EventStore, database_url: str, args: tuple[str, ...]
) -> None:
    ledger.append(pending("a", 5), actor="t")
    head = ledger.head()
    assert_one_line_error(run(database_url, "log", *args), 2)
    assert ledger.head() == head


def test_a_tampered_node_is_caught_by_verify_and_replay_check_and_repaired_by_replay(
    ledger: EventStore, database_url: str, tmp_path: Path
) -> None:
    from tokenledger.domain import commands as c
    from tokenledger.domain.model import Actor
    from tokenledger.service import Ledger

    # Events a replay folds: the ledger's own.
    service = Ledger(ledger)
    for number in range(40):
        service.execute(c.CreateUser(email=f"u{number}@acme.io"), Actor.operator("root"))
    assert run(database_url, "log", "verify").exit_code == 0
    alter(ledger.engine, "UPDATE merkle_nodes SET hash = :h WHERE level = 4 AND \"index\" = 1",
           h=bytes(32))  # fmt: skip
    assert_one_line_error(run(database_url, "log", "verify"), 6, "level 4, index 1")
    checked = run(database_url, "replay", "--check")
    assert checked.exit_code == 6
    assert checked.stdout.startswith("merkle_nodes 4/1: live ('0000")
    assert checked.stderr.splitlines()[-1] == (
        "tokenledger: error: the stored Merkle tree differs from the log "
        "('tokenledger replay' rebuilds it)"
    )
    assert run(database_url, "replay").exit_code == 0
    assert "tree ok" in ok(run(database_url, "log", "verify"))
    assert ok(run(database_url, "replay", "--check"))
    # A past state built elsewhere carries its tree too.
    target = f"sqlite:///{tmp_path / 'past.db'}"
    ok(run(database_url, "replay", "--until-position", "35", "--into", target, "--batch-size", "7"))
    assert "tree ok: 2 stored nodes" in ok(run(target, "log", "verify"))

    alter(ledger.engine, 'DELETE FROM merkle_nodes WHERE level = 4 AND "index" = 0')
    assert_one_line_error(run(database_url, "log", "verify"), 6, "index 0", "missing")
    assert_one_line_error(run(database_url, "log", "checkpoint"), 6, "incomplete")


def _other_note(
    note: str, *, origin: str | None = None, key: Ed25519PrivateKey | None = None
) -> str:
    text = note[: note.index("\n\n") + 1]
    lines = text.splitlines(keepends=True)
    name = origin or lines[0].strip()
    body = f"{name}\n" + "".join(lines[1:])
    return logproof.sign_note(body, name, key or Ed25519PrivateKey.generate())


def test_checkpoints_the_log_does_not_extend_are_refused(
    ledger: EventStore, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.append(pending("a", 30), actor="t")
    note = ok(run(database_url, "log", "checkpoint"))

    # Signed by another key under the log's name.
    forged = write(tmp_path, "forged.txt", _other_note(note))
    assert_one_line_error(run(database_url, "log", "verify", "--checkpoint", forged), 6,
                          "no signature by the key")  # fmt: skip

    # Signed by the log key for another origin.
    monkeypatch.setenv("TOKENLEDGER_LOG_ORIGIN", "elsewhere.example/log")
    elsewhere = write(tmp_path, "elsewhere.txt", ok(run(database_url, "log", "checkpoint")))
    assert ok(run(database_url, "log", "key")).startswith("elsewhere.example/log+")
    monkeypatch.delenv("TOKENLEDGER_LOG_ORIGIN")
    assert_one_line_error(run(database_url, "log", "verify", "--checkpoint", elsewhere), 6,
                          "checkpoint does not verify")  # fmt: skip

    # A checkpoint of a longer log, which is then truncated.
    ledger.append(pending("b", 10), actor="t")
    longer = write(tmp_path, "longer.txt", ok(run(database_url, "log", "checkpoint")))
    assert run(database_url, "log", "verify", "--checkpoint", longer).exit_code == 0
    tamper(ledger.engine, "DELETE FROM events WHERE position > 33")
    alter(ledger.engine, 'DELETE FROM merkle_nodes WHERE level = 4 AND "index" = 2')
    assert_one_line_error(run(database_url, "log", "verify", "--checkpoint", longer), 6,
                          "truncated")  # fmt: skip

    # A garbled key is refused before anything is read.
    assert_one_line_error(
        run(database_url, "log", "verify", "--checkpoint", longer, "--key", "nope"), 2, "--key"
    )
    missing = str(tmp_path / "missing.txt")
    assert_one_line_error(run(database_url, "log", "verify", "--checkpoint", missing), 2,
                          "cannot read")  # fmt: skip


def test_a_rewritten_history_fails_against_an_earlier_checkpoint(ledger: EventStore) -> None:
    """Rewriting events and their tree consistently (chain included) is still caught: the root
    at the checkpoint's size is no longer the signed one."""
    from tokenledger.service.log_proofs import LogSigner, sign_checkpoint, verify_extends

    ledger.append(pending("a", 20), actor="t")
    signer = LogSigner("ledger.example/log", Ed25519PrivateKey.generate())
    checkpoint = sign_checkpoint(ledger, signer)
    assert verify_extends(ledger, checkpoint.note, signer.verifier_key, signer.origin)
    alter(ledger.engine, "UPDATE merkle_nodes SET hash = :h WHERE level = 4 AND \"index\" = 0",
           h=bytes(32))  # fmt: skip
    with pytest.raises(IntegrityViolation, match="history was rewritten"):
        verify_extends(ledger, checkpoint.note, signer.verifier_key, signer.origin)


def test_the_origin_follows_the_issuer_url_unless_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tokenledger.service.log_proofs import log_origin

    key = Ed25519PrivateKey.generate()
    monkeypatch.delenv("TOKENLEDGER_LOG_ORIGIN", raising=False)
    assert log_origin("https://ledger.example.com/", key) == "ledger.example.com/log"
    assert log_origin("tokenledger", key).startswith("tokenledger/")
    assert log_origin("tokenledger", key) == log_origin("tokenledger", key)
    monkeypatch.setenv("TOKENLEDGER_LOG_ORIGIN", "acme.example/ledger")
    assert log_origin("https://ledger.example.com/", key) == "acme.example/ledger"


# -- HTTP ------------------------------------------------------------------------------------


def test_http_serves_the_key_checkpoints_and_proofs(database_url: str, tmp_path: Path) -> None:
    from api_helpers import make_api

    for api in make_api(database_url, tmp_path):
        client = api.client
        vkey = client.get("/v2/log/key").text.strip()
        assert client.get("/.well-known/tokenledger-log-key").text.strip() == vkey
        assert logproof.parse_verifier_key(vkey).name == "ledger.test/log"

        first = client.get("/v2/log/checkpoint").json()
        store = api.ledger.store
        entries = entries_of(store)
        opened = logproof.open_checkpoint(first["note"], vkey, "ledger.test/log")
        assert opened.size == len(entries) == first["size"]
        assert opened.root_hash == mth(entries)

        # An event of acme's (the org's creation is position 1): its admin may prove it.
        response = client.get("/v2/log/proof/inclusion", params={"position": 1},
                              headers=api.admin)  # fmt: skip
        assert response.status_code == 200, response.text
        document = response.json()
        assert document["hashes"] == b64(path(0, entries))
        assert base64.b64decode(document["entry"]) == entries[0]
        bundle = {"entry": document["entry"], "inclusion": document, "checkpoint": first["note"]}
        assert logproof.main(["bundle", write(tmp_path, "b.json", json.dumps(bundle)),
                              "--key", vkey]) == 0  # fmt: skip
        # Another org's admin may not see it; nobody unauthenticated may.
        hidden = client.get("/v2/log/proof/inclusion", params={"position": 1},
                            headers=api.bearer(api.carol))  # fmt: skip
        assert hidden.status_code == 404
        assert client.get("/v2/log/proof/inclusion", params={"position": 1}).status_code == 401

        size = first["size"]
        response = client.get("/v2/log/proof/consistency", params={"from": 3, "to": size})
        assert response.json() == {
            "old_size": 3,
            "new_size": size,
            "hashes": b64(proof(3, entries)),
        }

        head = store.head()
        for url, params in [
            ("/v2/log/proof/consistency", {"from": size + 1}),
            ("/v2/log/proof/consistency", {"from": 5, "to": 4}),
            ("/v2/log/proof/consistency", {"from": -1}),
            ("/v2/log/proof/consistency", {"from": "x"}),
            ("/v2/log/proof/inclusion", {"position": 0}),
            ("/v2/log/proof/inclusion", {"position": size + 1}),
            ("/v2/log/proof/inclusion", {"position": 2, "size": 1}),
            ("/v2/log/proof/inclusion", {"position": 2**63}),
        ]:
            response = client.get(url, params=params, headers=api.admin)
            assert response.status_code == 400, (url, params, response.text)
            assert response.json()["error"] == "invalid_request"
        assert store.head() == head


def assert_forgeries_fail(document: dict[str, Any], tmp_path: Path, vkey: str) -> None:
    """A story that says what its proofs do not, or cites what they do not prove: refused."""
    import copy

    def refused(forged: dict[str, Any], reason: str) -> None:
        forged_file = write(tmp_path, "forged-story.json", json.dumps(forged))
        assert logproof.main(["bundle", forged_file, "--key", vkey]) == 6, reason

    last = len(document["story"]) - 1
    forged = copy.deepcopy(document)
    forged["story"][last]["actor"] = "operator:someone-else"
    refused(forged, "the story names another actor")
    forged = copy.deepcopy(document)
    forged["story"][last]["event_type"] = "TokenIssued"
    refused(forged, "the story names another event type")
    forged = copy.deepcopy(document)
    forged["proofs"] = forged["proofs"][1:]
    refused(forged, "an event of the story has no proof")
    forged = copy.deepcopy(document)
    forged["proofs"][-1]["entry"] = forged["proofs"][0]["entry"]
    refused(forged, "a proof of another event's bytes")
    forged = copy.deepcopy(document)
    # A genuine proof of another event, moved under this position's number.
    forged["proofs"][-1] = {**forged["proofs"][0], "position": forged["proofs"][-1]["position"]}
    refused(forged, "a proof of another position")
    forged = copy.deepcopy(document)
    issued = next(e for e in forged["story"] if e["event_type"] == "TokenIssued")
    issued["data"]["grants"] = [{"resource": "acme", "level": "admin"}]
    refused(forged, "the story shows other grants than the event holds")
    forged = copy.deepcopy(document)
    forged["story"][last]["stream_version"] = 99
    refused(forged, "the story says another stream version")
    forged = copy.deepcopy(document)
    forged["story"], forged["revocation"], forged["root_cause"] = [], None, None
    refused(forged, "a story citing nothing")
    forged = copy.deepcopy(document)
    forged["story"] = forged["story"][1:]
    if forged["revocation"]["position"] != document["story"][0]["position"]:
        refused(forged, "a proof of an event the story does not cite")
    forged = copy.deepcopy(document)
    forged["proofs"].append(forged["proofs"][0])
    refused(forged, "a position proved twice")
    for odd in (True, [1], {"a": 1}, "1"):
        forged = copy.deepcopy(document)
        forged["proofs"][0]["position"] = odd
        refused(forged, f"a proof at position {odd!r}")


def test_audit_explain_proves_each_event_it_cites(
    ledger: EventStore, database_url: str, tmp_path: Path
) -> None:
    from tokenledger.domain import commands as c
    from tokenledger.domain.model import Actor
    from tokenledger.domain.permissions import Level
    from tokenledger.service import Ledger

    operator = Actor.operator("root")
    service = Ledger(ledger)
    for command in (
        c.CreateOrg(org="acme"),
        c.CreateResource(path="acme/alpha"),
        c.CreateUser(email="bob@acme.io"),
        c.AddMember(org="acme", email="bob@acme.io"),
        c.SetGrant(principal="bob@acme.io", resource="acme/alpha", level=Level.WRITE),
    ):
        service.execute(command, operator)
    grants = [{"resource": "acme/alpha", "level": "read"}]
    issued = service.execute(c.IssueToken(principal="bob@acme.io", grants=grants), operator)
    assert issued.issued is not None
    token_id = issued.issued.token_id
    for number in range(20):  # events after it: the proofs span more than one block
        service.execute(c.CreateUser(email=f"u{number}@acme.io"), operator)
    service.execute(c.DisableUser(email="bob@acme.io"), operator)

    document = json.loads(ok(run(database_url, "audit", "explain", token_id, "--proof")))
    cited = {entry["position"] for entry in document["story"]}
    cited |= {document[key]["position"] for key in ("revocation", "root_cause")}
    assert {bundle["position"] for bundle in document["proofs"]} == cited
    vkey = ok(run(database_url, "log", "key")).strip()
    entries = entries_of(ledger)
    for bundle in document["proofs"]:
        bundle_file = write(tmp_path, f"{bundle['position']}.json", json.dumps(bundle))
        assert logproof.main(["bundle", bundle_file, "--key", vkey]) == 0
        index = bundle["position"] - 1
        assert base64.b64decode(bundle["entry"]) == entries[index]
        assert bundle["inclusion"]["hashes"] == b64(path(index, entries))
        # Another event's bytes under this proof: refused.
        forged = {**bundle, "entry": base64.b64encode(entries[index - 1]).decode()}
        forged_file = write(tmp_path, "forged.json", json.dumps(forged))
        assert logproof.main(["bundle", forged_file, "--key", vkey]) == 6
    # The whole document is checked at once: every event it cites, or it fails.
    whole = write(tmp_path, "explained.json", json.dumps(document))
    assert logproof.main(["bundle", whole, "--key", vkey]) == 0
    assert_forgeries_fail(document, tmp_path, vkey)

    # Against a server: the same story, proved with the server's log key.
    from test_api_serve import Server

    service.execute(c.CreateUser(email="ann@acme.io"), operator)
    service.execute(c.AddMember(org="acme", email="ann@acme.io", role="admin"), operator)
    ann_grants = [{"resource": "acme", "level": "admin"}]
    ann = service.execute(c.IssueToken(principal="ann@acme.io", grants=ann_grants), operator)
    assert ann.secret is not None
    assert ann.issued is not None
    server = Server(database_url, tmp_path / "server-keys.json")
    try:
        # The installed command, as a user runs it against a server (its own process).
        command = [str(Path(sys.executable).with_name("tokenledger")), "--server", server.base]
        remote = subprocess.run(
            [*command, "audit", "explain", ann.issued.token_id, "--proof"],
            env={**os.environ, "TOKENLEDGER_TOKEN": ann.secret},
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert remote.returncode == 0, remote.stderr
        served = json.loads(remote.stdout)
        local = json.loads(ok(run(database_url, "audit", "explain", ann.issued.token_id, "--json")))
        assert served["story"] == local["story"]
        assert {b["position"] for b in served["proofs"]} == {
            entry["position"] for entry in served["story"]
        }
        import httpx

        server_key = httpx.get(f"{server.base}/v2/log/key").text.strip()
        assert server_key != vkey  # the server's own key file
        from_server = write(tmp_path, "from-server.json", remote.stdout)
        assert logproof.main(["bundle", from_server, "--key", server_key]) == 0
        assert logproof.main(["bundle", from_server, "--key", vkey]) == 6
        # Without a usable token: no story and no proof.
        refused = httpx.get(
            f"{server.base}/v2/tokens/{ann.issued.token_id}/explain",
            params={"proof": "true"},
            headers={"Authorization": f"Bearer {ann.secret}x"},
        )
        assert refused.status_code == 401
    finally:
        server.stop()


def test_a_member_gets_the_proofs_of_the_story_they_are_told(
    database_url: str, tmp_path: Path
) -> None:
    """The proofs follow the story: a member told their token's story (its grant's resource
    since deleted by the operator, an event of the org they may not read in the audit) is
    given a proof of every event it cites, which the verifier ties to the story."""
    from api_helpers import OPERATOR, SA, make_api
    from tokenledger.domain import commands as c
    from tokenledger.domain.permissions import Level

    for api in make_api(database_url, tmp_path):
        bob_token = api.client.get("/v2/whoami", headers=api.bearer(api.bob)).json()["token_id"]
        api.ledger.execute(
            c.SetGrant(principal="bob@acme.io", resource="acme/beta", level=Level.WRITE), OPERATOR
        )
        beta = [{"resource": "acme/beta", "level": "write"}]
        other = api.ledger.execute(c.IssueToken(principal="bob@acme.io", grants=beta), OPERATOR)
        assert other.secret is not None
        bob = api.bearer(other.secret)
        api.ledger.execute(
            c.SetServiceAccountPermission(account_id=SA, resource="acme/beta", level=Level.WRITE),
            OPERATOR,
        )
        api.ledger.execute(c.DeleteResource(path="acme/alpha"), OPERATOR)
        told = api.client.get(f"/v2/tokens/{bob_token}/explain", headers=bob)
        assert told.status_code == 200, told.text
        proved = api.client.get(
            f"/v2/tokens/{bob_token}/explain", params={"proof": "true"}, headers=bob
        )
        assert proved.status_code == 200, proved.text
        document = proved.json()
        assert document["story"] == told.json()["story"]
        cited = {entry["position"] for entry in document["story"]}
        assert document["revocation"]["position"] in cited | {
            bundle["position"] for bundle in document["proofs"]
        }
        vkey = api.client.get("/v2/log/key").text.strip()
        saved = write(tmp_path, "bob.json", proved.text)
        assert logproof.main(["bundle", saved, "--key", vkey]) == 0
