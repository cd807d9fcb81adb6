"""Questions about a past moment, answered from the temporal projection, equal the reference
fold of the log's prefix, at random moments of random histories, on SQLite and PostgreSQL.

The histories are the state machine's (every command, valid and invalid, with time passing:
tests/test_state_machine.py); between steps a random moment of the log so far is asked
about: every token's answer (``tokens verify --at``, with and without a resource) and every
principal's tokens as listed then (``tokens list --all --at``) and who could do the level on
the resource then (``audit who-can --at``) must be exactly what folding the log up to that
moment (``projections.history.state_at``) gives; and a random window:
the tokens usable during it (``tokens live``) must be those the fold finds usable at one of
its moments.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule, run_state_machine_as_test

from test_state_machine import OPERATOR, LedgerMachine
from tokenledger.domain import commands as c
from tokenledger.domain.authority import as_listed, judge_token, verify_secret
from tokenledger.domain.model import is_role_principal
from tokenledger.domain.permissions import Grant, Level
from tokenledger.domain.state import LedgerState
from tokenledger.domain.who_can import who_can
from tokenledger.projections.history import state_at
from tokenledger.store.schema import events

#: Where, around an event's time, the moment asked about falls.
OFFSETS = [timedelta(0), -timedelta(microseconds=1), timedelta(minutes=45)]
RESOURCES = [None, "acme", "acme/alpha", "acme/alpha/raw", "beta/gamma"]


class TemporalMachine(LedgerMachine):
    """The state machine, asked about a random past moment after each step."""

    def _run(self, build: Callable[[], c.Command], actor_choice: int | None) -> Any:
        # Each command at a moment of its own, so that the moments asked about fall between
        # any two commands, not only where the machine lets days pass.
        try:
            return super()._run(build, actor_choice)
        finally:
            self.clock.tick(timedelta(seconds=1))

    def _moments(self) -> list[datetime]:
        with self.ledger.store.engine.connect() as connection:
            found = connection.execute(sa.select(events.c.recorded_at).distinct()).scalars()
            return sorted(found)

    @rule(
        which=st.integers(min_value=0, max_value=10_000),
        offset=st.sampled_from(OFFSETS),
        resource=st.sampled_from(RESOURCES),
        level=st.sampled_from([Level.READ, Level.WRITE, Level.ADMIN]),
    )
    def ask_the_past(
        self, which: int, offset: timedelta, resource: str | None, level: Level
    ) -> None:
        moments = self._moments()
        # Within the log: a moment before its first event or after now is refused.
        moment = min(max(moments[which % len(moments)] + offset, moments[0]), self.ledger.now())
        folded, position = state_at(self.ledger.store, moment)
        for token_id, secret in self.secrets.items():
            expected = verify_secret(folded, secret, moment, resource=resource, level=level)
            answer, at = self.ledger.verify_at(secret, moment, resource=resource, level=level)
            assert at == position
            assert answer == expected, (token_id, moment)
        if resource is not None:
            found, at = self.ledger.who_can(OPERATOR, resource, level, at=moment)
            assert at == position
            assert found == who_can(_EveryCandidate(folded), resource, level, moment), moment
        # A role's keys are listed through the role's own commands, not by principal.
        principals = sorted(
            {t.principal for t in folded.tokens.values() if not is_role_principal(t.principal)}
        )
        for principal in principals:
            listed = self.ledger.tokens_of(OPERATOR, principal, include_inactive=True, at=moment)
            assert listed == as_listed(folded.tokens_of(principal), folded), (principal, moment)

    @rule(
        first=st.integers(min_value=0, max_value=10_000),
        length=st.integers(min_value=1, max_value=6),
        offset=st.sampled_from(OFFSETS),
    )
    def ask_a_window(self, first: int, length: int, offset: timedelta) -> None:
        """``tokens live``: a token is listed exactly when the fold finds it usable at the
        window's start or at some moment inside it when the log changed."""
        moments = self._moments()
        start = max(moments[first % len(moments)] + offset, moments[0])
        later = [m for m in moments if m > start][:length]
        end = min(later[-1] if later else start + timedelta(minutes=5), self.ledger.now())
        if end <= start:
            return
        expected: set[str] = set()
        for moment in [start, *(m for m in moments if start < m <= end)]:
            folded, _ = state_at(self.ledger.store, moment)
            expected |= {
                token.token_id
                for token in folded.tokens.values()
                if judge_token(folded, token, moment).usable
            }
        found = self.ledger.live_tokens(OPERATOR, start, end)
        assert {live.token.token_id for live in found} == expected, (start, end)


class _EveryCandidate:
    """The folded state as ``who_can`` reads it, offering every user and service account as
    a candidate: the temporal view's indexed search for candidates must miss none that the
    rule admits."""

    def __init__(self, state: LedgerState) -> None:
        self.state = state

    def __getattr__(self, name: str) -> Any:  # the standing questions: the fold's own
        return getattr(self.state, name)

    def grant_holders(self, resources: Sequence[str]) -> Sequence[str]:
        return sorted(self.state.users)

    def accounts_on(self, resources: Sequence[str]) -> Sequence[str]:
        return sorted(self.state.accounts)

    def members(self, org: str) -> dict[str, str]:
        return self.state.members(org)

    def roles_of(self, org: str) -> dict[str, tuple[Grant, ...]]:
        return self.state.roles_of(org)

    def tokens_of_any(self, principals: Sequence[str]) -> Sequence[Any]:
        wanted = set(principals)
        return [t for _, t in sorted(self.state.tokens.items()) if t.principal in wanted]

    def read_ahead(self, principals: Sequence[str]) -> None:
        pass


def run_machine(new_url: Callable[[], str], examples: int, steps: int) -> None:
    machine = type("Machine", (TemporalMachine,), {"new_url": staticmethod(new_url)})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_past_answers_equal_the_fold_on_sqlite(tmp_path: Path) -> None:
    counter = itertools.count()
    run_machine(lambda: f"sqlite:///{tmp_path / f'ledger-{next(counter)}.db'}", 25, 35)


def test_past_answers_equal_the_fold_on_postgresql(postgres_server: Any) -> None:
    run_machine(postgres_server.fresh_schema, 12, 30)
