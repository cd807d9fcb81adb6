"""The web console at ``/console``: server-rendered pages for operators and auditors, over
the same ``Ledger`` service methods as the API (``docs/console.md``)."""

from __future__ import annotations

from fastapi import APIRouter

from tokenledger.console import login, pages

__all__ = ["router"]

router = APIRouter()
router.include_router(login.router)
router.include_router(pages.router)
