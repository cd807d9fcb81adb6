"""The ``tokenledger`` command line: thin click commands over the ledger."""

from __future__ import annotations

from tokenledger.cli.app import cli, main

__all__ = ["cli", "main"]
