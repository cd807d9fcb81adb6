"""The verifiable log attacked: a tree table with nodes the log never made, checkpoint files
that are not notes, notes tampered in every field. Each refusal is one line, appends nothing."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from helpers import assert_one_line_error, pending
from test_log_tree import ledger, ok, run  # noqa: F401 (ledger: a fixture)
from tokenledger.store import EventStore

SRC = Path(__file__).resolve().parent.parent / "src"


def test_a_node_planted_beyond_the_head_is_caught_by_verify(
    ledger: EventStore,  # noqa: F811
    database_url: str,
) -> None:
    """A stored node covering positions the log does not hold yet: verify used to ignore it
    ("tree ok"), and the append that reaches position 16 then fails on it."""
    from tokenledger.domain import commands as c
    from tokenledger.domain.model import Actor
    from tokenledger.service import Ledger

    service = Ledger(ledger)  # events a replay folds: the ledger's own
    for number in range(5):
        service.execute(c.CreateUser(email=f"u{number}@acme.io"), Actor.operator("root"))
    with ledger.engine.begin() as connection:
        connection.execute(
            sa.text('INSERT INTO merkle_nodes (level, "index", hash) VALUES (4, 0, :h)'),
            {"h": bytes(32)},
        )
    head = ledger.head()
    assert_one_line_error(
        run(database_url, "log", "verify"), 6, "level 4, index 0", "beyond the log's 5 events"
    )
    assert ledger.head() == head
    # replay rebuilds the table without it, and the log then grows past it.
    ok(run(database_url, "replay"))
    for number in range(5, 25):
        service.execute(c.CreateUser(email=f"u{number}@acme.io"), Actor.operator("root"))
    assert "tree ok" in ok(run(database_url, "log", "verify"))


def _capped(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_checkpoint_file_with_no_end_is_refused_without_reading_it_all(
    tmp_path: Path,
) -> None:
    """``log verify --checkpoint /dev/zero`` used to read until memory ran out."""
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    env = {**os.environ, "PYTHONPATH": str(SRC), "TOKENLEDGER_KEYS_FILE": str(tmp_path / "k")}
    command = [sys.executable, "-c", "from tokenledger.cli import cli; cli()", "--db", database]
    assert subprocess.run([*command, "db", "upgrade"], env=env, capture_output=True).returncode == 0
    result = subprocess.run(
        [*command, "log", "verify", "--checkpoint", "/dev/zero"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: _capped(2 * 1024**3),
    )
    assert result.returncode == 6, result.stderr[-500:]
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert "larger than a note may be" in result.stderr


def _tampered(note: str) -> dict[str, str]:
    body, _, signatures = note.partition("\n\n")
    origin, size, root = body.split("\n")
    signature = signatures.rstrip("\n")
    return {
        "origin": note.replace(origin, origin + "x", 1),
        "unicode origin": note.replace(origin, origin.replace("/", "\u2215"), 1),
        "size": note.replace(f"\n{size}\n", f"\n{int(size) - 1}\n", 1),
        "size with a sign": note.replace(f"\n{size}\n", f"\n+{size}\n", 1),
        "huge size": note.replace(f"\n{size}\n", f"\n{10**30}\n", 1),
        "root": note.replace(root, root[::-1], 1),
        "signature": note.replace(signature, signature[:-4] + "AAA=", 1),
        "CRLF": note.replace("\n", "\r\n"),
        "no signature": body + "\n",
        "extra line": note.replace(root + "\n", root + "\nextension\n", 1),
        "many signatures": note + (signature + "\n") * 200,
    }


def test_tampered_checkpoints_are_refused_in_one_line(
    ledger: EventStore,  # noqa: F811
    database_url: str,
    tmp_path: Path,
) -> None:
    ledger.append(pending("a", 7), actor="t")
    note = ok(run(database_url, "log", "checkpoint"))
    head = ledger.head()
    for name, text in _tampered(note).items():
        target = tmp_path / "tampered.txt"
        target.write_bytes(text.encode())
        result = run(database_url, "log", "verify", "--checkpoint", str(target))
        assert result.exit_code == 6, (name, result.output)
        assert_one_line_error(result, 6)
    # Other keys' signatures beside the log's are ignored, as the spec says.
    extra = note + "\N{EM DASH} other.example/log AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
    (tmp_path / "extra.txt").write_text(extra)
    assert "checkpoint ok" in ok(
        run(database_url, "log", "verify", "--checkpoint", str(tmp_path / "extra.txt"))
    )
    assert ledger.head() == head


def _append_until(store: EventStore, stop: threading.Event) -> None:
    while not stop.is_set():
        store.append(pending("w", 3), actor="t")


def test_proofs_asked_while_others_append_verify_against_the_checkpoint_of_their_size(
    database_url: str, tmp_path: Path
) -> None:
    import base64

    from api_helpers import make_api
    from tokenledger import logproof

    for api in make_api(database_url, tmp_path):
        client, store = api.client, api.ledger.store
        vkey = client.get("/v2/log/key").text.strip()
        stop = threading.Event()

        writer = threading.Thread(target=_append_until, args=(store, stop))
        writer.start()
        try:
            previous = logproof.open_checkpoint(
                client.get("/v2/log/checkpoint").json()["note"], vkey
            )
            asked = 0
            # At least 15 rounds, and until the log has grown past a block of 16 while asked
            # (however slowly the writer gets its turns).
            while asked < 15 or previous.size <= 16:
                asked += 1
                assert asked < 5_000, "the writer appended nothing"
                note = client.get("/v2/log/checkpoint").json()["note"]
                checkpoint = logproof.open_checkpoint(note, vkey)
                size = checkpoint.size
                proof = client.get("/v2/log/proof/inclusion", params={"position": 1, "size": size},
                                   headers=api.admin).json()  # fmt: skip
                assert proof["tree_size"] == size
                logproof.verify_inclusion(
                    logproof.leaf_hash(base64.b64decode(proof["entry"])), 0, size,
                    [base64.b64decode(h) for h in proof["hashes"]], checkpoint.root_hash,
                )  # fmt: skip
                step = client.get("/v2/log/proof/consistency",
                                  params={"from": previous.size, "to": size}).json()  # fmt: skip
                logproof.verify_consistency(
                    previous.size, size, previous.root_hash, checkpoint.root_hash,
                    [base64.b64decode(h) for h in step["hashes"]],
                )  # fmt: skip
                previous = checkpoint
        finally:
            stop.set()
            writer.join()
        assert previous.size > 16
