"""The tenant partition key alone runs a clinic: no run config, a Launchpad override, several tenants.

Every run here goes through the code location's own job and resources (``defs``): the Cliniko and
Splose URLs and the platform token come from the environment at run time, staging and the outbox from
the instance's home, and the import from Splose.
"""

from __future__ import annotations

import dagster as dg
import pytest

from cliniko_assets.definitions import defs
from cliniko_assets.partitions import tenants
from cliniko_assets.resolution import FROM_CONFIG, FROM_LATEST, IMPORT_FROM_TAG, IMPORT_ID_TAG, MAPPING_FROM_TAG
from cliniko_assets.rows import ROWS
from tests.conftest import materializations
from tests.test_import import Import, _rows, splose_sandbox, tiny_import  # noqa: F401 (fixtures)
from tests.test_trust import other_clinic, step_failure


def run_tenant(instance: dg.DagsterInstance, tenant: str, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    """The import job for one tenant, as the UI launches it: the partition key, and run config only if typed."""
    return defs.resolve_job_def("import_job").execute_in_process(
        instance=instance, partition_key=tenant, run_config=run_config, raise_on_error=False
    )


def assert_complete(imp: Import, instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult, import_id: int):
    assert result.success, step_failure(result)
    rows = _rows(result)
    assert set(rows) == set(ROWS)
    assert all(row["unaccounted"] == 0 for row in rows.values())
    truth = imp.clinic.truth()
    assert rows["clients"]["loaded"] == sum(n for state, n in truth["patients"].items() if state != "deleted")
    assert len(imp.dump("clients")) == rows["clients"]["loaded"]
    assert imp.status(import_id)["status"] == "complete"
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags[IMPORT_ID_TAG] == str(import_id)


def test_a_run_with_no_run_config_imports_the_latest_import_of_its_tenant(tiny_import, instance):
    request = tiny_import.submit()

    result = run_tenant(instance, tiny_import.clinic.tenant)

    assert_complete(tiny_import, instance, result, request["id"])
    run = instance.get_run_by_id(result.run_id)
    assert run.run_config == {}
    assert (run.tags[IMPORT_FROM_TAG], run.tags[MAPPING_FROM_TAG]) == (FROM_LATEST, "import request")
    # The mapping the run worked with is recorded, ids only: the one the clinic submitted.
    locations = materializations(result)["locations"]
    assert locations["mapping"]["locations"] == {k: str(v) for k, v in tiny_import.mapping["locations"].items()}
    assert locations["import_id"] == str(request["id"])
    assert tiny_import.clinic.keys["admin"] not in str(run.tags) + str(locations)


def test_a_launchpad_override_of_the_mapping_is_honoured(tiny_import, instance):
    request = tiny_import.submit()
    mapping = {kind: {k: str(v) for k, v in ids.items()} for kind, ids in tiny_import.mapping.items()}
    ignored = sorted(mapping["locations"])[0]
    mapping["locations"][ignored] = "ignore"

    result = run_tenant(
        instance, tiny_import.clinic.tenant, {"resources": {"import_request": {"config": {"mapping": mapping}}}}
    )

    assert result.success, step_failure(result)
    run = instance.get_run_by_id(result.run_id)
    assert (run.tags[IMPORT_ID_TAG], run.tags[IMPORT_FROM_TAG]) == (str(request["id"]), FROM_LATEST)
    assert run.tags[MAPPING_FROM_TAG] == FROM_CONFIG
    rows = _rows(result)
    assert rows["locations"]["skipped_by_reason"].get("ignored by the clinic", 0) >= 1
    assert rows["appointments"]["skipped_by_reason"].get("location ignored", 0) > 0
    assert materializations(result)["locations"]["mapping"]["locations"][ignored] == "ignore"


def test_a_tenant_without_an_import_request_fails_saying_how_a_clinic_submits_one(tiny_import, instance):
    result = run_tenant(instance, tiny_import.clinic.tenant)

    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data
    description = failure.user_failure_data.description
    assert description.startswith(f"Tenant '{tiny_import.clinic.tenant}' has no import request in Splose")
    assert "Submit" in description and "import-request sensor" in description
    assert failure.user_failure_data.metadata["tenant"].value == tiny_import.clinic.tenant


@pytest.mark.slow  # two whole imports, about 20 s; make test-all runs it
def test_a_backfill_of_two_tenants_runs_each_with_nothing_typed(
    clinic, instance, splose_sandbox, tmp_path, monkeypatch
):
    first = Import(clinic, splose_sandbox.url, tmp_path, monkeypatch)
    second = Import(other_clinic(clinic, monkeypatch), splose_sandbox.url, tmp_path, monkeypatch)
    instance.add_dynamic_partitions(tenants.name, [second.clinic.tenant])
    requests = {imp.clinic.tenant: (imp, imp.submit()["id"]) for imp in (first, second)}

    # One run per tenant, each given nothing but its partition key (what a backfill launches).
    results = {tenant: run_tenant(instance, tenant) for tenant in requests}

    for tenant, (imp, import_id) in requests.items():
        assert_complete(imp, instance, results[tenant], import_id)
    assert {len(imp.dump("clients")) for imp, _ in requests.values()} != {0}
    # Each run worked for its own tenant's import only.
    assert {instance.get_run_by_id(r.run_id).tags[IMPORT_ID_TAG] for r in results.values()} == {
        str(import_id) for _, import_id in requests.values()
    }
