"""Every v1 response any Splose sandbox gave during this test session, checked against the published spec.

Under pytest-xdist the session's controller makes the check once every worker has finished (``conftest.py``,
``pytest_sessionfinish``): on a worker this test could run beside tests still recording, so it is skipped there.
"""

import os

import pytest

from tests.conftest import V1_RECORDINGS
from tests.splose_sandbox.openapi_contract import read_records, rule_breaches


def test_every_v1_response_of_the_session_matches_the_published_spec():
    if os.environ.get("PYTEST_XDIST_WORKER"):
        pytest.skip("checked by the session's controller once every worker has finished")
    records = read_records(V1_RECORDINGS)
    if not records:
        pytest.skip("no Splose sandbox answered a v1 request in this session (run with the whole suite)")
    problems = rule_breaches(records)
    assert not problems, f"{len(problems)} ways v1 responses break the spec:\n" + "\n".join(problems[:50])
    assert any(record["status"] == 200 for record in records)
