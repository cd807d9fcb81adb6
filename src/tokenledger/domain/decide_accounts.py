"""Decisions on Dyff's accounts: ``accounts create``, and a Dyff account id naming the
principal of a token.

A Dyff account is a user here, named by its email and given an account id (32 hexadecimal
digits) when created this way; the id is made by the service (``Context.new_account_id``),
as a token's id is minted, so a decision stays a function of its inputs. Registered on
``decide`` (``domain.decide`` imports this module). Who may see and do what is decided in
``domain.authority``; the shape of an account id is ``domain.names``'.
"""

from __future__ import annotations

from tokenledger.domain import commands as c
from tokenledger.domain.authority import require_account_visible, require_user_creator
from tokenledger.domain.decide import Context, decide
from tokenledger.domain.events import Event, UserCreated
from tokenledger.domain.model import LedgerView
from tokenledger.domain.names import is_account_id
from tokenledger.errors import Conflict

__all__ = ["account_user"]


@decide.register
def _create_account(cmd: c.CreateAccount, view: LedgerView, ctx: Context) -> list[Event]:
    """As ``users create`` (the same people may), with an account id."""
    if ctx.new_account_id is None:
        raise TypeError("creating an account needs a source of account ids")
    require_user_creator(view, ctx.actor, ctx.now)
    if view.user(cmd.email) is not None:
        raise Conflict(f"user {cmd.email} already exists")
    account_id = ctx.new_account_id()
    if not is_account_id(account_id):
        raise TypeError(f"not an account id: {account_id!r}")
    if view.user_by_account_id(account_id) is not None:  # 2**-122 per pair: never, but said
        raise Conflict(f"account id {account_id} is taken: try again")
    return [UserCreated(email=cmd.email, name=cmd.name, account_id=account_id)]


def account_user(view: LedgerView, ctx: Context, principal: str) -> str:
    """THE lookup of a Dyff account id: the email of the user it names (refused as that user
    would be, ``NotFound`` when it names nobody); any other principal as it is."""
    if not is_account_id(principal):
        return principal
    user = view.user_by_account_id(principal)
    require_account_visible(view, ctx.actor, principal, user, ctx.now)
    assert user is not None  # require_account_visible refuses an id naming nobody
    return user.email
