"""What the console's pages show, shaped from what the ledger answers: status words, the
rows of an org's token table and its filter, and a cascade drawn as a tree.

Nothing here decides what anyone may see: every value comes from a ``Ledger`` method the
page called as the logged-in actor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from tokenledger.domain import events as e
from tokenledger.domain.model import TokenView
from tokenledger.projections.audit_queries import AuditEntry, Explanation

__all__ = [
    "STATUSES",
    "Cascade",
    "CascadeItem",
    "TokenFilterForm",
    "TokenRow",
    "cascade_of",
    "status_word",
]

#: The statuses the console shows: the ledger's (``_Credential.status``), its ``active``
#: called ``live`` as the rest of the documentation says.
STATUSES = ("live", "expired", "revoked", "disabled")


def status_word(token: TokenView, now: datetime) -> str:
    status = token.status(now)
    return "live" if status == "active" else status


@dataclass(frozen=True, slots=True)
class TokenRow:
    token: TokenView
    status: str


@dataclass(frozen=True, slots=True)
class TokenFilterForm:
    """The org page's filter over its tokens: a status, a holder, a text found in the
    token's id, name or grants (empty: not asked for)."""

    status: str = ""
    holder: str = ""
    text: str = ""

    def keeps(self, row: TokenRow) -> bool:
        token = row.token
        if self.status and row.status != self.status:
            return False
        if self.holder and token.principal != self.holder:
            return False
        if self.text:
            needle = self.text.casefold()
            haystack = [token.token_id, token.name or "", *(str(g) for g in token.grants)]
            if not any(needle in value.casefold() for value in haystack):
                return False
        return True


@dataclass(frozen=True, slots=True)
class CascadeItem:
    """One thing revoked (or ended) with the token: its kind, its id, and the console
    page that shows it (the token's own, or its service account's)."""

    kind: str
    ident: str
    href: str
    current: bool = False


@dataclass(frozen=True, slots=True)
class Cascade:
    """A revocation caused by another event: that event, then everything revoked with it."""

    cause: AuditEntry
    items: list[CascadeItem] = field(default_factory=list)
    #: The token's own revocation began it (a token revoked with those derived from it).
    direct: bool = False

    def by_kind(self) -> list[tuple[str, list[CascadeItem]]]:
        groups: dict[str, list[CascadeItem]] = {}
        for item in self.items:
            groups.setdefault(item.kind, []).append(item)
        return list(groups.items())


def cascade_of(explanation: Explanation, command_events: list[AuditEntry]) -> Cascade | None:
    """The cascade that revoked the explained token, drawn from the events of the command
    that revoked it (as the caller may see them): its cause, then everything revoked with
    it. A token revoked directly has one only if something was revoked with it (the tokens
    derived from it); otherwise None."""
    revocation, cause = explanation.revocation, explanation.root_cause
    if revocation is None:
        return None
    items: list[CascadeItem] = []
    for entry in command_events:
        item = _revoked_item(entry.event, explanation.token_id)
        if item is not None:
            items.append(item)
    if cause is None or cause.record.position == revocation.record.position:
        if all(item.current for item in items):
            return None
        return Cascade(cause=revocation, items=items, direct=True)
    return Cascade(cause=cause, items=items)


def _revoked_item(event: e.Event, current: str) -> CascadeItem | None:
    if isinstance(event, e.TokenRevoked):
        return CascadeItem(
            "Tokens",
            event.token_id,
            f"/console/tokens/{quote(event.token_id, safe='')}",
            current=event.token_id == current,
        )
    if isinstance(event, e.ClientCredentialRevoked):
        return CascadeItem("Client credentials", event.client_id, _account_href(event.account_id))
    if isinstance(event, e.S3CredentialRevoked):
        return CascadeItem("S3 credentials", event.access_key_id, _account_href(event.account_id))
    if isinstance(event, e.IssuerUntrusted):
        return CascadeItem("Issuer trusts", event.trust_id, _account_href(event.account_id))
    if isinstance(event, e.SessionEnded):
        return CascadeItem("Login sessions", event.session_id, "")
    return None


def _account_href(account_id: str) -> str:
    return f"/console/service-accounts/{quote(account_id, safe='')}"
