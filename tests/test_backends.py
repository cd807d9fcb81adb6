"""The backend contract (``tests/backend_contract.py``), run on each backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend_contract import BackendContract
from conftest import PostgresServer


class TestSQLite(BackendContract):
    @pytest.fixture
    def contract_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'ledger.db'}"


class TestPostgreSQL(BackendContract):
    @pytest.fixture
    def contract_url(self, postgres_server: PostgresServer) -> str:
        return postgres_server.fresh_schema()
