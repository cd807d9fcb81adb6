"""Names and defaults the commands' options show in ``--help``.

Each is owned by another module (the store, the HTTP API, the key store, the rebuild, the
relay), which imports SQLAlchemy, FastAPI, cryptography or the NATS client; the copies here
let ``--help`` and option parsing go without them. tests/test_cli_startup.py checks that every
copy equals its original.
"""

from __future__ import annotations

__all__ = [
    "ACCESS_TOKEN_LIFETIME_ENV",
    "CACHE_STALENESS_ENV",
    "DATABASE_URL_ENV",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_ISSUER",
    "DEFAULT_REBUILD_BATCH_SIZE",
    "DEFAULT_RELAY_SOURCE",
    "DEFAULT_RELAY_STREAM",
    "DEFAULT_RELAY_SUBJECT",
    "FOLLOW_LOG_ENV",
    "ISSUER_ENV",
    "KEYS_FILE_ENV",
    "PUBLIC_URL_ENV",
    "USAGE_INTERVAL_ENV",
]

#: tokenledger.store.engine.DEFAULT_DATABASE_URL
DEFAULT_DATABASE_URL = "sqlite:///tokenledger.db"

#: tokenledger.service.keys.KEYS_FILE_ENV
KEYS_FILE_ENV = "TOKENLEDGER_KEYS_FILE"

#: tokenledger.api.app.DATABASE_URL_ENV, ISSUER_ENV, ACCESS_TOKEN_LIFETIME_ENV,
#: CACHE_STALENESS_ENV, FOLLOW_LOG_ENV, PUBLIC_URL_ENV
DATABASE_URL_ENV = "TOKENLEDGER_DATABASE_URL"
ISSUER_ENV = "TOKENLEDGER_ISSUER"
ACCESS_TOKEN_LIFETIME_ENV = "TOKENLEDGER_ACCESS_TOKEN_LIFETIME"
CACHE_STALENESS_ENV = "TOKENLEDGER_CACHE_STALENESS"
FOLLOW_LOG_ENV = "TOKENLEDGER_FOLLOW_LOG"
PUBLIC_URL_ENV = "TOKENLEDGER_PUBLIC_URL"
#: tokenledger.api.app.USAGE_INTERVAL_ENV
USAGE_INTERVAL_ENV = "TOKENLEDGER_USAGE_INTERVAL"

#: tokenledger.api.state.DEFAULT_ISSUER
DEFAULT_ISSUER = "tokenledger"

#: tokenledger.projections.rebuild.DEFAULT_BATCH_SIZE
DEFAULT_REBUILD_BATCH_SIZE = 10_000

#: tokenledger.service.relay.DEFAULT_STREAM, DEFAULT_SUBJECT, DEFAULT_SOURCE
DEFAULT_RELAY_STREAM = "TOKENLEDGER"
DEFAULT_RELAY_SUBJECT = "tokenledger.events"
DEFAULT_RELAY_SOURCE = "urn:tokenledger"
