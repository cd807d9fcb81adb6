"""Property-based fuzzing of every operation in ``/openapi.json``: no input makes a 5xx.

Schemathesis generates requests from the OpenAPI document (valid and invalid
bodies, parameters and headers) and sends them in process; each operation gets
a bounded number of examples so the run stays well under a minute. Requests
carry an org admin's token so that they get past authentication and reach the
ledger. SQLite only: the point is the HTTP layer's handling of arbitrary input,
which the storage backend does not change (the other API tests cover both).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_helpers import Api, make_api

#: Examples per operation: about 45 operations, so about 1,300 requests in all.
EXAMPLES = 30


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[Api]:
    yield from make_api(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path)


def test_no_operation_answers_a_server_error(sqlite_api: Api) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", sqlite_api.client.app)
    # The event stream answers a valid call with a stream that never ends; its refusals of
    # bad input are tested in test_event_stream.
    operations = [
        operation
        for operation in (result.ok() for result in schema.get_all_operations())
        if operation.path != "/v2/events/stream"
    ]
    assert len(operations) > 30
    failures: list[str] = []
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(data=st.data())
        def check(data: st.DataObject) -> None:
            case = data.draw(operation.as_strategy())  # noqa: B023 (called in this iteration)
            response = case.call(headers=sqlite_api.admin)
            if response.status_code >= 500:
                failures.append(
                    f"{operation.method.upper()} {operation.path}: "  # noqa: B023
                    f"{response.status_code} {response.text[:200]}"
                )

        check()
    assert failures == []
