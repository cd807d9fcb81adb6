"""The HTTP API: a thin adapter over ``tokenledger.Ledger``, like the CLI.

``create_app(database_url_or_ledger, settings)`` builds the FastAPI app;
``create_asgi_app`` puts the introspection fast path in front of it (the app as
served); ``app_from_env`` is the factory ``tokenledger serve`` hands to uvicorn
workers.
"""

from __future__ import annotations

from tokenledger.api.app import app_from_env, create_app, create_asgi_app, settings_from_env
from tokenledger.api.state import ApiSettings

__all__ = ["ApiSettings", "app_from_env", "create_app", "create_asgi_app", "settings_from_env"]
