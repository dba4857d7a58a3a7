"""``splose/import_report``: the reconciliation of every row, the import marked complete, the clinic told."""

import json

import dagster as dg

from cliniko_assets.load import ROWS, LoadRun, RowReport, load_assets, splose_key
from cliniko_assets.mapping import ImportRequestResource
from cliniko_assets.partitions import tenants
from cliniko_assets.report_notes import attention_total, report_lines
from splose_resources.notifier import NotifierResource
from splose_resources.splose import SploseResource, SploseWorkspace
from splose_resources.staging import StagingStore

LEFT_BEHIND = (
    "Not migrated, by design: cases, online forms, body charts, letters, invoices and payments "
    "(Cliniko keeps them; export them from Cliniko if you need them)."
)


def reconciliation_table(reports: list[RowReport]) -> str:
    """The table a person reads: one line per row of the mission's table."""
    lines = [
        "| row | Cliniko | loaded | skipped (by reason) | rejected | unaccounted |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for report in reports:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(report.skipped.items())) or "0"
        lines.append(
            f"| {report.row} | {report.cliniko} | {report.loaded} | {skipped} | {report.rejected} | "
            f"{report.unaccounted} |"
        )
    notes = report_lines(reports)
    return "\n".join([*lines, *([""] if notes else []), *(f"- {line}" for line in notes)])


def read_reports(run: LoadRun) -> list[RowReport]:
    reports = []
    for name in ROWS:
        path = run.report_path(name)
        if path.exists():
            reports.append(RowReport.from_json(json.loads(path.read_text())))
    return reports


def referential_integrity(run: LoadRun, workspace: SploseWorkspace) -> dict[str, int]:
    """Read back what Splose holds for this import: every appointment's clients and practitioner exist,
    every appointment the crosswalk names is there, and every group appointment has all its attendees."""
    patients = {p["id"] for p in workspace.v1.patients(include_archived=True)}
    practitioners = {p["id"] for p in workspace.v1.practitioners(include_archived=True)}
    crosswalk = workspace.imports.crosswalk(run.import_id, "appointments")
    external = {splose_id: external_id for external_id, splose_id in crosswalk.items()}
    groups_path = run.directory / f"group-entries-{run.import_id}.json"
    group_entries: dict[str, int] = json.loads(groups_path.read_text()) if groups_path.exists() else {}
    found = dict.fromkeys(
        ("appointments_read_back", "missing_clients", "missing_practitioners", "incomplete_groups"), 0
    )
    for appointment in workspace.v1.appointments(include_archived=True):
        external_id = external.get(appointment["id"])
        if external_id is None:
            continue  # the clinic's own appointments, not this import's
        found["appointments_read_back"] += 1
        entries = appointment.get("appointmentPatients") or []
        found["missing_clients"] += sum(entry.get("patientId") not in patients for entry in entries)
        practitioner = appointment.get("practitionerId")
        found["missing_practitioners"] += practitioner is not None and practitioner not in practitioners
        expected = group_entries.get(external_id)
        found["incomplete_groups"] += expected is not None and len(entries) != expected
    found["missing_appointments"] = len(crosswalk) - found["appointments_read_back"]
    return found


INTEGRITY = "referential_integrity"


@dg.asset(
    key=splose_key("import_report"),
    check_specs=[
        dg.AssetCheckSpec(
            INTEGRITY,
            asset=splose_key("import_report"),
            description="Read back from Splose: every imported appointment exists, its clients and practitioner "
            "exist, and every group appointment has all its attendees.",
        )
    ],
    deps=[key for assets in load_assets for key in assets.keys],
    partitions_def=tenants,
    group_name="splose",
    kinds={"python"},
    description="Reconciliation of every row; marks the import complete (or failed) and emails the clinic.",
)
def import_report(
    context: dg.AssetExecutionContext,
    staging: StagingStore,
    splose: SploseResource,
    import_request: ImportRequestResource,
    notifier: NotifierResource,
) -> dg.MaterializeResult:
    run = LoadRun(context, staging, import_request)
    reports = read_reports(run)
    missing = [ROWS[name] for name in ROWS if not run.report_path(name).exists()]
    table = reconciliation_table(reports)
    unaccounted = sum(r.unaccounted for r in reports)
    succeeded = not missing and unaccounted == 0
    counts = {
        name: {"cliniko": r.cliniko, "loaded": r.loaded, "skipped": sum(r.skipped.values()), "rejected": r.rejected}
        for name, r in zip([n for n in ROWS if run.report_path(n).exists()], reports, strict=True)
    }
    message = (
        "All records accounted for."
        if succeeded
        else (f"{unaccounted} record(s) unaccounted for; rows not loaded: {', '.join(missing) or 'none'}.")
    )
    if attention := attention_total(reports):
        message += f" {attention} record(s) need your attention: " + "; ".join(
            line for line in report_lines(reports) if "NEEDS ATTENTION" in line
        )
    with splose.workspace(run.tenant) as workspace:
        integrity = referential_integrity(run, workspace)
        intact = all(value == 0 for key, value in integrity.items() if key != "appointments_read_back")
        if not intact:
            succeeded = False
            message += f" Referential integrity failed in Splose: {integrity}."
        workspace.imports.update_import(
            run.import_id, status="complete" if succeeded else "failed", counts=counts, message=message
        )
    check = dg.AssetCheckResult(check_name=INTEGRITY, passed=intact, metadata=integrity)
    notifier.import_finished(
        tenant=run.tenant, import_id=run.import_id, succeeded=succeeded, summary=f"{table}\n\n{LEFT_BEHIND}"
    )
    if not succeeded:
        raise dg.Failure(
            description=f"Import {run.import_id} of tenant '{run.tenant}' is not fully accounted for: {message}",
            metadata={"reconciliation": dg.MetadataValue.md(table), **integrity},
        )
    return dg.MaterializeResult(
        check_results=[check],
        metadata={
            **integrity,
            "reconciliation": dg.MetadataValue.md(table),
            "cliniko_records": sum(r.cliniko for r in reports),
            "loaded": sum(r.loaded for r in reports),
            "skipped": sum(sum(r.skipped.values()) for r in reports),
            "rejected": sum(r.rejected for r in reports),
            "left_behind": LEFT_BEHIND,
        },
    )
