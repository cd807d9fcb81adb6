"""Printing results: JSON for scripts, plain lines for people."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click
import msgspec

__all__ = ["echo_json", "format_timestamp", "json_line"]


def _default(value: Any) -> Any:
    raise TypeError(f"cannot encode {type(value).__name__}")


_encoder = msgspec.json.Encoder(enc_hook=_default)


def _prepare(value: Any) -> Any:
    # One timestamp format everywhere: the one the hash chain uses.
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, dict):
        return {k: _prepare(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_prepare(v) for v in value]
    return value


def format_timestamp(moment: datetime) -> str:
    """``moment`` as the hash chain writes it."""
    # Imported here: the chain's module comes with the store, and the store with SQLAlchemy,
    # which commands that print no time (and every --help) do without.
    from tokenledger.store.chain import format_timestamp as chain_format

    return chain_format(moment)


def json_line(value: Any) -> bytes:
    return _encoder.encode(_prepare(value))


def echo_json(value: Any) -> None:
    """Print one JSON document (indented for a terminal, compact when piped)."""
    encoded = json_line(value)
    if sys.stdout.isatty():
        encoded = msgspec.json.format(encoded, indent=2)
    click.echo(encoded.decode())
