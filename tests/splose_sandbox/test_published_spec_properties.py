"""Property-based: requests generated from the published spec (the repository's facts) never get a 5xx from
the sandbox, and every answer the spec documents matches it.

schemathesis generates each operation's parameters and bodies from the spec (and from its examples),
with a small fixed budget and a fixed seed (``derandomize``), against a sandbox holding a workspace
with every optional field filled. Path ids are half the time ones that exist, so answers with data are
checked too. Checks: no server error, the response schema and the content type of every documented
status; requests that break the spec (schemathesis's negative mode): no server error. Status codes
are not checked: the spec documents only 200 per operation, while its text names 400, 401, 404 and
429.
"""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks

from sandbox.splose.spec_facts import load_facts
from tests.splose_sandbox.openapi_contract import nullable_as_in_oas_3_0_0
from tests.splose_sandbox.populate import fill_every_optional_field

pytestmark = pytest.mark.slow

# Valid requests: no 5xx and every documented answer as documented. Invalid ones (schemathesis's negative
# mode breaks one rule of the spec at a time): no 5xx.
BUDGETS = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 20}
CHECKS = {
    GenerationMode.POSITIVE: [
        checks.not_a_server_error,
        checks.response_schema_conformance,
        checks.content_type_conformance,
    ],
    GenerationMode.NEGATIVE: [checks.not_a_server_error],
}
SERVED = ("/locations", "/practitioners", "/services", "/patients", "/contacts", "/appointments")


def known_ids(workspace) -> dict[str, list[int]]:
    """Existing ids per path template, for path parameters that name a real record."""
    url = f"{workspace.splose.url}/v1"
    ids = {
        f"{resource}/{{id}}": [
            row["id"]
            for row in workspace.v1.get(f"{url}{resource}", params={"include_archived": "true"}, timeout=5).json()[
                "data"
            ]
        ]
        for resource in SERVED
    }
    ids["/availabilities/{practitionerId}"] = list(workspace.described["practitioners"].values())
    return ids


def exercise(
    operation, mode: GenerationMode, base_url: str, headers: dict[str, str], ids: list[int], answers: Counter
) -> None:
    examples = operation.get_strategies_from_examples() if mode == GenerationMode.POSITIVE else []
    generated = st.one_of(operation.as_strategy(generation_mode=mode), *examples)

    @settings(
        max_examples=BUDGETS[mode],
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=generated, pick=st.one_of(st.none(), st.sampled_from(ids or [0])))
    def run(case, pick) -> None:
        if pick is not None and ids and case.path_parameters:
            case.path_parameters = dict.fromkeys(case.path_parameters, pick)
        response = case.call(base_url=base_url, headers=headers)
        answers[(mode, operation.label, response.status_code)] += 1
        case.validate_response(response, checks=CHECKS[mode])

    run()


def test_requests_generated_from_the_published_spec_never_break_the_sandbox(start_splose):
    # The spec read as OpenAPI 3.0.0 meant it (see openapi_contract): nullable adds null, even to an enum.
    schema = schemathesis.openapi.from_dict(nullable_as_in_oas_3_0_0(copy.deepcopy(load_facts())))
    answers: Counter = Counter()
    with start_splose("--v1-rate-limit", "1000000", "--import-rate-limit", "1000000") as splose:
        workspace = splose.seed()
        fill_every_optional_field(workspace)
        ids = known_ids(workspace)
        headers = {"Authorization": f"Bearer {workspace.described['key']}"}
        operations = [result.ok() for result in schema.get_all_operations()]
        for operation in operations:
            for mode in BUDGETS:
                exercise(operation, mode, f"{splose.url}/v1", headers, ids.get(operation.path, []), answers)

    assert len(operations) == len([op for path in load_facts()["paths"].values() for op in path])
    for mode in BUDGETS:
        assert sum(count for key, count in answers.items() if key[0] == mode) > len(operations) * 10
    assert not [key for key in answers if key[2] >= 500]
    answered = {label for (mode, label, status) in answers if status == 200 and mode == GenerationMode.POSITIVE}
    served = {f"GET {path}" for resource in SERVED for path in (resource, f"{resource}/{{id}}")}
    assert answered >= served | {"GET /availabilities/{practitionerId}", "POST /patients", "POST /contacts"}
