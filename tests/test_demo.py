"""The guided walk-through that scripts/demo runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tokenledger.cli import cli
from tokenledger.service import Ledger


def test_demo_tells_the_cascade_story_and_verifies_the_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TOKENLEDGER_DATABASE_URL", raising=False)
    monkeypatch.delenv("TOKENLEDGER_TOKEN", raising=False)
    for _ in range(2):  # a second run starts afresh
        result = CliRunner().invoke(cli, ["demo"])
        assert result.exit_code == 0, result.output
    out = result.stdout
    assert "allowed=True" in out
    assert "revoked by the cascade: tok_" in out
    assert out.count("active=False reason=revoked") == 2
    assert out.count("TokenRevoked") == 2
    assert "verified: 13 events" in out
    assert "Try next:" in out

    ledger = Ledger.open(f"sqlite:///{tmp_path / 'tokenledger-demo.db'}")
    try:
        assert ledger.store.verify_chain().events_checked == 13
    finally:
        ledger.close()


def test_demo_refuses_a_ledger_that_has_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'used.db'}"
    assert CliRunner().invoke(cli, ["--db", url, "demo"]).exit_code == 0
    again = CliRunner().invoke(cli, ["--db", url, "demo"])
    assert again.exit_code == 5
    assert "needs an empty ledger" in again.stderr
