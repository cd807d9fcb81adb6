"""The token answer: one rule, checked against its statement for every state of a token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from tokenledger.domain.authority import answer_token, verify_token
from tokenledger.domain.model import ServiceAccountView, TokenView
from tokenledger.domain.permissions import Grant, Level, level_at
from tokenledger.domain.state import LedgerState

SA = "ci@acme.service.tokenledger"
NOW = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
# Nested, sibling and unrelated paths, so that grants cover, miss and overlap each other.
PATHS = ("acme", "acme/a", "acme/a/x", "acme/ab", "acme/b", "other")

grants = st.builds(
    Grant, st.sampled_from(PATHS), st.sampled_from(("read", "append", "write", "admin"))
)
moments = st.sampled_from((NOW - timedelta(hours=1), NOW, NOW + timedelta(seconds=1)))

tokens = st.builds(
    TokenView,
    token_id=st.just("tok_1"),
    principal=st.just(SA),
    kind=st.just("service"),
    grants=st.lists(grants, max_size=3).map(tuple),
    name=st.none(),
    issued_at=st.just(NOW - timedelta(days=1)),
    parent_id=st.none(),
    expires_at=st.none() | moments,
    revoked_at=st.none() | st.just(NOW - timedelta(minutes=1)),
    revoked_reason=st.none(),
)


def service_accounts(deleted: st.SearchStrategy[bool]) -> st.SearchStrategy[ServiceAccountView]:
    return st.builds(
        ServiceAccountView,
        account_id=st.just(SA),
        org=st.just("acme"),
        name=st.just("ci"),
        permission=grants,
        deleted=deleted,
        created_at=st.just(NOW - timedelta(days=2)),
    )


accounts = st.none() | service_accounts(deleted=st.booleans())
# Most of the states above answer "inactive" before any grant is weighed: the live ones,
# where the levels and overlapping paths decide, get a test of their own.
live_tokens = tokens.map(lambda token: msgspec.structs.replace(token, revoked_at=None)).filter(
    lambda token: not token.expired(NOW)
)
live_accounts = service_accounts(deleted=st.just(False))


def expected_reason(token: TokenView, account: ServiceAccountView | None) -> str | None:
    """The rule as the docs state it, written out independently of the code under test."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= NOW:
        return "expired"
    if account is None or account.deleted:
        return "principal_disabled"
    return None


@given(
    token=tokens,
    account=accounts,
    resource=st.none() | st.sampled_from(PATHS),
    level=st.sampled_from(list(Level)),
)
def test_a_token_is_usable_only_while_live_and_allows_the_lower_of_both_grants(
    token: TokenView, account: ServiceAccountView | None, resource: str | None, level: Level
) -> None:
    state = LedgerState(accounts={SA: account} if account is not None else {})

    answer = verify_token(state, token, NOW, resource=resource, level=level)

    reason = expected_reason(token, account)
    assert answer.active == (reason is None)
    if reason is not None:
        assert (answer.reason, answer.allowed, answer.grants) == (reason, False, ())
        return
    assert account is not None
    if resource is not None:
        lower = min(level_at(token.grants, resource), level_at((account.permission,), resource))
        assert answer.allowed == (lower >= level)
    # What one statement reads for a service account's token (its account's permission)
    # gives the answer the whole view gives.
    assert answer == answer_token(token, (account.permission,), NOW).verification(resource, level)


@given(
    token=live_tokens,
    account=live_accounts,
    resource=st.sampled_from(PATHS),
)
def test_the_effective_grants_never_exceed_the_token_or_the_principal(
    token: TokenView, account: ServiceAccountView, resource: str
) -> None:
    answer = answer_token(token, (account.permission,), NOW)

    for grant in answer.effective_grants():
        assert grant.rank <= level_at(token.grants, grant.resource)
        assert grant.rank <= level_at((account.permission,), grant.resource)
    assert answer.level_on(resource) <= level_at(token.grants, resource)
    assert answer.level_on(resource) <= level_at((account.permission,), resource)
