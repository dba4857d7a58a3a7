"""The mapping checked before any write, as soon as the clinic's businesses, people and types are staged.

Which unmapped items have data is asked of a real Cliniko sandbox with the documented list filters, and
compared with the sandbox's own records; a server that ignores the filter makes every item count as in use.
Assertions compare ids and counts only.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from cliniko_assets.definitions import cliniko_resource
from cliniko_assets.references import REFERENCES
from cliniko_assets.usage_probe import PROBED, probe_usage
from splose_resources.cliniko import ClinikoResource
from splose_resources.http import Secret
from tests.conftest import initialized
from tests.loopback import JsonHandler, loopback_server
from tests.test_import import TOKEN, Import, _rows, splose_sandbox  # noqa: F401 (fixture)
from tests.test_import_references import linked


def used_in_sandbox(clinic) -> dict[str, set[str]]:
    """Per probed resource, the ids that some record not deleted links to (what the staged usage would hold)."""
    used: dict[str, set[str]] = defaultdict(set)
    for resource in PROBED:
        for source, link in REFERENCES[resource]:
            for record in clinic.admin.export(clinic.account, source):
                if not record.get("deleted_at") and (target := linked(record, link)):
                    used[resource].add(target)
    return used


def test_the_probe_finds_exactly_the_items_with_data_asking_once_per_item_in_use(clinic):
    truth = used_in_sandbox(clinic)
    listed = {resource: set(clinic.export(resource)) for resource in PROBED}
    asked = {resource: listed[resource] | {"999999999"} for resource in PROBED}  # and an id nothing points at

    with initialized(cliniko_resource()).client(clinic.tenant, Secret(clinic.keys["admin"])) as client:
        outcome = probe_usage(client, asked)

    for resource in PROBED:
        assert outcome.used.get(resource, set()) == truth[resource] & asked[resource], resource
    assert outcome.assumed == {}
    routes = sum(len(REFERENCES[resource]) for resource in PROBED)
    assert outcome.requests <= routes + sum(len(ids) for ids in truth.values())


def test_a_server_that_ignores_the_filter_makes_every_item_count_as_in_use(tmp_path, monkeypatch):
    """A page with a record of an id not asked for: Cliniko ignored the filter, so nothing is guessed unused."""
    seen: list[str] = []

    class IgnoresFilters(JsonHandler):
        def do_GET(self):
            seen.append(self.path)
            body = {
                "individual_appointments": [
                    {"id": "1", "practitioner": {"links": {"self": "http://x/practitioners/5"}}}
                ],
                "group_appointments": [],
                "daily_availabilities": [],
                "practitioner_reference_numbers": [],
                "treatment_notes": [],
                "total_entries": 1,
                "links": {"self": self.path},
            }
            self.answer(200, body)

    monkeypatch.setenv("RATE_LIMIT_STATE_DIR", str(tmp_path / "rate"))
    with loopback_server(IgnoresFilters) as url:
        resource = ClinikoResource(api_url=f"{url}/v1")
        with resource.client("ignoring", Secret("key-au1")) as client:
            outcome = probe_usage(client, {"practitioners": {"7", "8"}})
    assert outcome.used == {"practitioners": {"7", "8"}}
    assert outcome.assumed == {"practitioners": {"7", "8"}}
    assert outcome.requests == 1 and "practitioner_id%3A%3D7%2C8" in seen[0]


@pytest.mark.parametrize("with_data", [False, True])
def test_an_unmapped_item_fails_the_check_only_when_it_has_data(
    clinic, splose_sandbox, tmp_path, monkeypatch, instance, with_data
):
    imp = Import(clinic, splose_sandbox.url, tmp_path, monkeypatch)
    used = used_in_sandbox(clinic)["appointment_types"]
    mapping = {kind: dict(entries) for kind, entries in imp.mapping.items()}
    candidates = sorted(t for t in mapping["services"] if t != "unknown" and (t in used) == with_data)
    unmapped = candidates[0]
    del mapping["services"][unmapped]
    request = imp.submit(mapping)

    result = imp.run(instance, request, raise_on_error=False)

    check = _check_metadata(result)
    if with_data:
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
        assert failure.step_key == "splose__mapping_check"
        assert f"Cliniko id {unmapped}" in failure.event_specific_data.error.message
        assert len(imp.dump("clients")) == 0 and len(imp.dump("contacts")) == 0
    else:
        assert result.success
        assert check["problems"] == 0 and check["unmapped_in_use"] == 0 and check["usage_probe_requests"] == 2
        assert _rows(result)["services"]["skipped_by_reason"].get("not mapped (no appointments use it)", 0) >= 1


def _check_metadata(result) -> dict:
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            if materialization.asset_key.path == ["splose", "mapping_check"]:
                return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    return {}
