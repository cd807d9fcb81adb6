"""Database URLs and engines, each backend's settings applied (``store.backends``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

from tokenledger.errors import ValidationError
from tokenledger.store.backend import WRITE_OPTION
from tokenledger.store.backends import backend_for_url

__all__ = ["DEFAULT_DATABASE_URL", "WRITE_OPTION", "create_ledger_engine", "parse_database_url"]

DEFAULT_DATABASE_URL = "sqlite:///tokenledger.db"


def parse_database_url(raw: str) -> URL:
    """Accept a SQLAlchemy URL, a ``postgresql://`` URL, or a plain path to a SQLite file."""
    text = raw.strip()
    if not text:
        raise ValidationError("the database URL is empty")
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text)))
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise ValidationError(f"not a database URL: {text!r}") from exc
    return backend_for_url(url).normalise_url(url)


def create_ledger_engine(raw_url: str | URL, **kwargs: Any) -> Engine:
    url = raw_url if isinstance(raw_url, URL) else parse_database_url(raw_url)
    return backend_for_url(url).create_engine(url, **kwargs)
