"""Review before import (``preview_job``) and the clinic's undo (``undo_import_job``), through real sandboxes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from cliniko_assets.definitions import defs
from cliniko_assets.preview import PREVIEW_KEY
from cliniko_assets.rows import ROWS
from sandbox.harness import running_server
from splose_resources.staging import StagingStore
from tests.test_import import TOKEN, Import, splose_sandbox, tiny_import  # noqa: F401 (fixtures)
from tests.test_trust import step_failure

SPLOSE_TABLES = ("clients", "contacts", "appointments", "services", "progressNotes", "files")


def run_job(instance: dg.DagsterInstance, job: str, tenant: str) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job).execute_in_process(instance=instance, partition_key=tenant, raise_on_error=False)


def table(result: dg.ExecuteInProcessResult, asset: dg.AssetKey, entry: str) -> dict[str, dict]:
    """A table metadata entry of the run's materialization of ``asset``, by row label."""
    (materialization,) = [
        e.event_specific_data.materialization
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION" and e.event_specific_data.materialization.asset_key == asset
    ]
    value = materialization.metadata[entry]
    return {record.data["row"]: record.data for record in value.records}


def staging_of(instance: dg.DagsterInstance) -> StagingStore:
    """Where the code location stages a tenant when run on ``instance`` (no STAGING_URI set)."""
    return StagingStore(uri=str(Path(instance.root_directory) / "staging"))


def splose_holds(imp: Import) -> dict[str, int]:
    return {name: len(imp.dump(name)) for name in SPLOSE_TABLES}


def test_the_preview_writes_nothing_and_counts_what_the_import_then_loads_and_skips(tiny_import, instance):
    request = tiny_import.submit()
    before = splose_holds(tiny_import)

    preview = run_job(instance, "preview_job", tiny_import.clinic.tenant)

    assert preview.success, step_failure(preview)
    assert splose_holds(tiny_import) == before  # not one Splose record written
    assert tiny_import.status(request["id"])["status"] == "submitted"  # the import's status did not move
    would = table(preview, PREVIEW_KEY, "rows")
    assert list(would) == list(ROWS.values())
    (materialization,) = [
        e.event_specific_data.materialization
        for e in preview.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key == PREVIEW_KEY
    ]
    metadata = {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}
    assert metadata["mapping_problems"] == 0
    assert metadata["unmapped"] == sum(row["unmapped"] for row in would.values())
    assert metadata["would_load"] == sum(row["would_load"] for row in would.values()) > 0
    assert metadata["cliniko_requests_estimate"] > 0 and metadata["estimated_minutes"] > 0
    assert "Estimated duration" in metadata["summary"] and "Nothing was written to Splose" in metadata["summary"]
    assert "(latest import of the workspace; mapping from the import request)" in metadata["summary"]

    imported = run_job(instance, "import_job", tiny_import.clinic.tenant)

    assert imported.success, step_failure(imported)
    loaded = table(imported, dg.AssetKey(["splose", "import_report"]), "reconciliation")
    for label, row in loaded.items():
        assert would[label]["cliniko"] == row["cliniko"], label
        assert would[label]["would_load"] == row["loaded"] + row["rejected"], label
        assert would[label]["skipped_by_reason"] == row["skipped_by_reason"], label
    assert splose_holds(tiny_import)["clients"] == loaded[ROWS["clients"]]["loaded"] > 0


def test_a_preview_of_an_incomplete_mapping_names_what_is_unmapped_and_counts_with_the_proposals(tiny_import, instance):
    mapping = {kind: dict(ids) for kind, ids in tiny_import.mapping.items()}
    # A business mapped to the location of its own name (the one a deleted business also points at is not).
    targets = Counter(str(target) for target in mapping["locations"].values())
    business = next(b for b, t in sorted(mapping["locations"].items()) if str(t).isdigit() and targets[str(t)] == 1)
    proposal = str(mapping["locations"].pop(business))
    tiny_import.submit(mapping)

    preview = run_job(instance, "preview_job", tiny_import.clinic.tenant)

    assert preview.success, step_failure(preview)
    lines = [
        record.data
        for e in preview.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key == PREVIEW_KEY
        for record in e.event_specific_data.materialization.metadata["mapping"].records
    ]
    (unmapped,) = [line for line in lines if line["problem"]]
    assert (unmapped["section"], unmapped["cliniko_id"], unmapped["clinic_mapped"]) == ("locations", business, "")
    assert unmapped["proposed"] == unmapped["would_use"] == proposal
    summary = next(
        e.event_specific_data.materialization.metadata["summary"].value
        for e in preview.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
        and e.event_specific_data.materialization.asset_key == PREVIEW_KEY
    )
    assert "mapping is incomplete" in summary and f"(Cliniko id {business})" in summary
    assert splose_holds(tiny_import)["clients"] == 0


def test_undo_deletes_the_latest_import_in_splose_and_purges_its_staging(tiny_import, instance):
    request = tiny_import.submit()
    assert run_job(instance, "import_job", tiny_import.clinic.tenant).success
    staging = staging_of(instance)
    assert staging.has_tenant(tiny_import.clinic.tenant)

    undo = run_job(instance, "undo_import_job", tiny_import.clinic.tenant)

    assert undo.success, step_failure(undo)
    assert tiny_import.status(request["id"])["status"] == "deleted"
    assert splose_holds(tiny_import)["clients"] == 0
    assert not staging.has_tenant(tiny_import.clinic.tenant)
    (output,) = [e.event_specific_data.metadata for e in undo.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert output["deleted_records"].value > 0


@pytest.fixture(scope="module")
def closed_window_splose(tmp_path_factory):
    """A Splose sandbox whose 48-hour undo window is closed as soon as an import completes."""
    workdir = tmp_path_factory.mktemp("splose-closed-window")
    args = ["--platform-token", TOKEN, "--db", str(workdir / "splose.db"), "--delete-window-hours", "0"]
    with running_server("sandbox.splose", args, log_dir=workdir) as server:
        yield server


def test_undo_after_the_window_fails_with_splose_message_naming_the_deadline(
    clinic, instance, closed_window_splose, tmp_path, monkeypatch
):
    late = Import(clinic, closed_window_splose.url, tmp_path, monkeypatch)
    request = late.submit()
    assert run_job(instance, "import_job", clinic.tenant).success

    undo = run_job(instance, "undo_import_job", clinic.tenant)

    assert not undo.success
    failure = next(e for e in undo.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data
    description = failure.user_failure_data.description
    assert description.startswith(f"Import {request['id']} of tenant '{clinic.tenant}' was not undone")
    assert "the deadline was" in description and "48 hours" in description
    assert failure.user_failure_data.metadata["import_id"].value == request["id"]
    assert late.status(request["id"])["status"] == "complete"
    assert len(late.dump("clients")) > 0
    assert staging_of(instance).has_tenant(clinic.tenant)  # kept: the import stands


def test_undo_of_a_tenant_without_an_import_says_so(tiny_import, instance):
    undo = run_job(instance, "undo_import_job", tiny_import.clinic.tenant)
    assert not undo.success
    assert step_failure(undo) == (
        f"Tenant '{tiny_import.clinic.tenant}' has no import to undo: its workspace lists none that is not "
        "deleted already."
    )
