"""What a person reads in the UI: reconciliation tables, numbers to plot, progress lines, our own failure messages."""

from __future__ import annotations

import re

import dagster as dg

from cliniko_assets.definitions import defs
from cliniko_assets.rows import ROWS
from tests.test_import import Import, splose_sandbox, tiny_import  # noqa: F401 (fixtures)

COLUMNS = ["row", "cliniko", "loaded", "skipped", "skipped_by_reason", "rejected"]
COUNTS = ("cliniko", "loaded", "skipped", "rejected")
LOADS = [name for name in ROWS if name != "attendees"]


def materialized(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Raw metadata values of the run's splose/* materializations, by asset name."""
    found = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            if materialization.asset_key.path[0] == "splose":
                found[materialization.asset_key.path[-1]] = dict(materialization.metadata)
    return found


def checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], dict]:
    return {
        (e.event_specific_data.asset_key.path[-1], e.event_specific_data.check_name): e.event_specific_data.metadata
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def test_every_load_and_the_report_show_the_reconciliation_as_a_table_with_numbers(tiny_import, instance):
    tiny_import.submit()
    result = defs.resolve_job_def("import_job").execute_in_process(
        instance=instance, partition_key=tiny_import.clinic.tenant
    )
    assert result.success
    found, evaluated = materialized(result), checks(result)

    for name in LOADS:
        metadata = found[name]
        table = metadata["reconciliation"]
        assert isinstance(table, dg.TableMetadataValue), name
        assert [column.name for column in table.schema.columns] == COLUMNS
        row = table.records[0].data
        assert row["row"] == ROWS[name]
        for count in COUNTS:
            assert isinstance(metadata[count], dg.IntMetadataValue), (name, count)  # plotted over re-syncs
            assert row[count] == metadata[count].value, (name, count)
            assert evaluated[(name, "reconciled")][count].value == row[count], (name, count)
        assert row["cliniko"] == row["loaded"] + row["skipped"] + row["rejected"]
        summary = metadata["summary"]
        assert isinstance(summary, dg.MarkdownMetadataValue) and ROWS[name] in summary.value
        assert "every record accounted for" in summary.value
    group_rows = [record.data["row"] for record in found["group_appointments"]["reconciliation"].records]
    assert group_rows == [ROWS["group_appointments"], ROWS["attendees"]]

    report = found["import_report"]
    rows = {record.data["row"]: record.data for record in report["reconciliation"].records}
    assert list(rows) == list(ROWS.values())
    assert report["loaded"].value == sum(row["loaded"] for row in rows.values())
    assert report["cliniko_records"].value == sum(row["cliniko"] for row in rows.values())
    assert "| Patients -> Clients |" in report["summary"].value and ": Complete" in report["summary"].value
    assert evaluated[("import_report", "referential_integrity")]["missing_clients"].value == 0


def test_the_extraction_logs_its_progress_in_the_runs_log(tiny_import, instance):
    tiny_import.submit()
    job = defs.resolve_job_def("cliniko_extract_job")
    result = job.execute_in_process(instance=instance, partition_key=tiny_import.clinic.tenant)
    assert result.success
    lines = [entry.user_message for entry in instance.all_logs(result.run_id) if entry.user_message]
    fetched = {
        e.event_specific_data.materialization.asset_key.path[-1]: e.event_specific_data.materialization.metadata[
            "fetched"
        ].value
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    }
    assert len(fetched) == 15  # the 14 resources and the records found by id (not listed: not in the lines)
    tenant = tiny_import.clinic.tenant
    attachments, _ = fetched.pop("patient_attachments"), fetched.pop("references")
    # One line per step: the clinic's first step and the second (several resources each), the attachments.
    done = [line for line in lines if line.startswith(f"Extraction of tenant '{tenant}' done:")]
    assert len(done) == 2 and all("pages" in line and "requests in" in line for line in done)
    assert sum(int(re.search(r" ([\d,]+) of ~", line)[1].replace(",", "")) for line in done) == sum(fetched.values())
    (done,) = [
        line
        for line in lines
        if line.startswith(f"Extraction of cliniko/patient_attachments of tenant '{tenant}' done:")
    ]
    assert f" {attachments:,} of ~" in done and "pages" in done and "requests in" in done


def test_a_resource_error_fails_the_step_with_the_pipelines_message_and_what_to_do(tiny_import, instance, monkeypatch):
    tiny_import.submit()
    monkeypatch.setenv("SPLOSE_PLATFORM_TOKEN", "revoked-platform-token-4471")

    result = defs.resolve_job_def("import_job").execute_in_process(
        instance=instance, partition_key=tiny_import.clinic.tenant, raise_on_error=False
    )

    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE").event_specific_data
    assert failure.user_failure_data is not None  # a dg.Failure: the UI shows its description first
    assert failure.user_failure_data.description.startswith("Splose rejected the platform token (HTTP 401)")
    metadata = {key: value.value for key, value in failure.user_failure_data.metadata.items()}
    assert metadata["tenant"] == tiny_import.clinic.tenant
    assert metadata["error"] == "SploseAuthError"
    assert "SPLOSE_PLATFORM_TOKEN" in metadata["what_to_do"]
    assert "revoked-platform-token-4471" not in str(failure)
