"""The web console at ``/console``: server-rendered pages for operators and auditors, over
the same ``Ledger`` service methods as the API (``docs/console.md``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import APIRoute

from tokenledger.console import login, pages

__all__ = ["router"]

# A page answers HEAD as it answers GET (RFC 9110 9.3.2), for monitors and link checkers;
# the server sends the headers only.
for route in (*login.router.routes, *pages.router.routes):
    if isinstance(route, APIRoute) and route.methods and "GET" in route.methods:
        route.methods.add("HEAD")

router = APIRouter()
router.include_router(login.router)
router.include_router(pages.router)
