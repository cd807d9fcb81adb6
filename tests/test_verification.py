"""A service account's token is answered from one row as from the whole view (any state)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from tokenledger.domain.authority import token_level
from tokenledger.domain.model import ServiceAccountView, TokenView
from tokenledger.domain.permissions import Grant, Level
from tokenledger.domain.state import LedgerState
from tokenledger.verification import verify_service_token, verify_token

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


@given(
    token=tokens,
    account=accounts,
    resource=st.none() | st.sampled_from(PATHS),
    level=st.sampled_from(list(Level)),
)
def test_a_service_accounts_token_is_answered_as_verify_token_answers(
    token: TokenView, account: ServiceAccountView | None, resource: str | None, level: Level
) -> None:
    state = LedgerState(accounts={SA: account} if account is not None else {})
    # What the verification statement reads: the permission of an account not deleted.
    permission = account.permission if account is not None and not account.deleted else None

    answer = verify_service_token(token, permission, NOW, resource=resource, level=level)

    assert answer == verify_token(state, token, NOW, resource=resource, level=level)
    if answer.active and resource is not None:
        assert answer.allowed == (token_level(state, token, resource, NOW) >= level)


@given(
    token=live_tokens,
    account=live_accounts,
    resource=st.sampled_from(PATHS),
    level=st.sampled_from(list(Level)),
)
def test_a_live_token_of_a_live_account_is_allowed_as_its_grants_and_account_allow(
    token: TokenView, account: ServiceAccountView, resource: str, level: Level
) -> None:
    state = LedgerState(accounts={SA: account})

    answer = verify_service_token(token, account.permission, NOW, resource=resource, level=level)

    assert answer.active
    assert answer == verify_token(state, token, NOW, resource=resource, level=level)
    assert answer.allowed == (token_level(state, token, resource, NOW) >= level)
