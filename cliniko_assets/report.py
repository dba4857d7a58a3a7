"""``splose/import_report``: the reconciliation of every row, the import marked complete, the clinic told.

"Complete" means what it says: records Splose rejected and records skipped for a data problem make the
import complete *with warnings*, named row by row (counts, reasons, where to see the records) in the
import's status message, in the email and in this asset's metadata. Skips that are the clinic's choice
or that Cliniko itself explains (deleted records) are not warnings: :data:`SKIP_REASONS` says which is
which, in one place. A reason missing from the table is a warning, so nothing new is ever hidden.
"""

import json

import dagster as dg

from cliniko_assets.extraction import FILE_KEPT_FAILING, FILE_NOT_FOUND, FILE_SIZE_DIFFERS
from cliniko_assets.lifecycle import ATTENTION, bound_import, counts_table, tell_clinic
from cliniko_assets.lifecycle import ROWS as COUNT_ROWS
from cliniko_assets.load import ROWS, LoadRun, RowReport, load_assets, splose_key
from cliniko_assets.mapping import ImportRequestResource
from cliniko_assets.partitions import tenants
from splose_resources.cliniko import FILE_MISSING, FILE_REFUSED
from splose_resources.notifier import NotifierResource
from splose_resources.splose import SploseResource, SploseWorkspace
from splose_resources.staging import StagingStore

EXPECTED = "expected"  # the clinic's choice, or explained by Cliniko: reported, not a warning
PROBLEM = "problem"  # a record the clinic may miss: a warning, named in the status and the email

# Why a record was skipped -> whether the clinic must be told. Add a row's new reasons here.
SKIP_REASONS: dict[str, str] = {
    "deleted in Cliniko": EXPECTED,
    "ignored by the clinic": EXPECTED,
    "location ignored": EXPECTED,
    "not requested by the clinic": EXPECTED,
    "not mapped (no data)": EXPECTED,
    "not mapped (not a practitioner with data)": EXPECTED,
    "not mapped (no appointments use it)": EXPECTED,
    "no availability ranges": EXPECTED,  # an empty day: nothing to bring
    "booking is not a group appointment": EXPECTED,  # imported with its individual appointment
    "duplicate attendee": EXPECTED,  # the same attendee listed twice: imported once
    # Follow another row's skip, which is reported (and warned about, if it is a problem) on its own row.
    "client not imported": EXPECTED,
    "group appointment skipped": EXPECTED,
    # Data problems.
    "not yet processed by Cliniko": PROBLEM,
    "bytes could not be downloaded from Cliniko": PROBLEM,
    "no booking link": PROBLEM,
    FILE_NOT_FOUND: PROBLEM,
    FILE_MISSING: PROBLEM,
    FILE_REFUSED: PROBLEM,
    FILE_SIZE_DIFFERS: PROBLEM,
    FILE_KEPT_FAILING: PROBLEM,
}


def is_problem(reason: str) -> bool:
    return SKIP_REASONS.get(reason, PROBLEM) == PROBLEM


def needs_attention(report: RowReport) -> list[str]:
    """What of one row the clinic must hear about: rejections and data-problem skips, with counts."""
    lines = []
    if report.rejected:
        shapes = "; ".join(f"{n}x {shape}" for shape, n in report.rejected_reasons.most_common(3))
        lines.append(f"{report.row}: {report.rejected} rejected by Splose ({shapes})")
    for reason, count in sorted(report.skipped.items()):
        if is_problem(reason):
            lines.append(f"{report.row}: {count} skipped, {reason}")
    return lines


def attention_records(reports: list[RowReport]) -> dict[str, dict]:
    """The Cliniko ids behind each warning, for the report's metadata (ids only, never a value)."""
    found: dict[str, dict] = {}
    for report in reports:
        entry: dict = {}
        if report.rejected:
            entry["rejected"] = {"count": report.rejected, "cliniko_ids": report.rejected_ids[:100]}
        for reason, count in report.skipped.items():
            if is_problem(reason):
                entry[reason] = {"count": count, "cliniko_ids": report.skipped_ids.get(reason, [])[:100]}
        if entry:
            found[report.row] = entry
    return found


def completion_message(tenant: str, attention: list[str]) -> str:
    if not attention:
        return "Complete: every record is accounted for and none needs your attention."
    return (
        f"Complete with warnings: {len(attention)} item(s) need attention.\n"
        + "\n".join(f"- {line}" for line in attention)
        + f"\nThe records (Cliniko ids) are listed in the Dagster asset splose/import_report, partition '{tenant}' "
        "(metadata 'needs_attention'). Fix them in Cliniko and the next sync brings them across."
    )


def row_counts(report: RowReport) -> dict:
    return {
        "row": report.row,
        "cliniko": report.cliniko,
        "loaded": report.loaded,
        "skipped": sum(report.skipped.values()),
        "skippedByReason": dict(report.skipped),
        "rejected": report.rejected,
    }


def read_reports(run: LoadRun) -> dict[str, RowReport]:
    """The rows the loads of this import reported, by name, in the order the table prints them."""
    return {
        name: RowReport.from_json(json.loads(run.report_path(name).read_text()))
        for name in ROWS
        if run.report_path(name).exists()
    }


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
    bound_import(context, splose, import_request)
    run = LoadRun(context, staging, import_request)
    rows = read_reports(run)
    reports = list(rows.values())
    missing = [ROWS[name] for name in ROWS if name not in rows]
    unaccounted = {r.row: r.unaccounted for r in reports if r.unaccounted}
    counts: dict = {COUNT_ROWS: {name: row_counts(report) for name, report in rows.items()}}
    table = dg.MetadataValue.md(counts_table(counts[COUNT_ROWS]))
    with splose.workspace(run.tenant, log=context.log) as workspace:
        integrity = referential_integrity(run, workspace)
        broken = {key: value for key, value in integrity.items() if key != "appointments_read_back" and value}
        if missing or unaccounted or broken:
            raise dg.Failure(
                description=f"Import {run.import_id} of tenant '{run.tenant}' is not fully accounted for: rows not "
                f"loaded: {', '.join(missing) or 'none'}; records unaccounted for by row: {unaccounted or 'none'}; "
                f"referential integrity problems in Splose: {broken or 'none'}. Re-run the import: loads are "
                "idempotent; if it persists, the rows named here are where records are lost.",
                metadata={"reconciliation": table, **integrity},
            )
        attention = [line for report in reports for line in needs_attention(report)]
        counts[ATTENTION] = attention
        message = completion_message(run.tenant, attention)
        record = workspace.imports.update_import(run.import_id, status="complete", counts=counts, message=message)
    context.log.info(f"Import {run.import_id} of tenant '{run.tenant}' is complete; {len(attention)} warning(s).")
    tell_clinic(notifier, record)
    return dg.MaterializeResult(
        check_results=[dg.AssetCheckResult(check_name=INTEGRITY, passed=True, metadata=integrity)],
        metadata={
            **integrity,
            "reconciliation": table,
            "warnings": len(attention),
            "needs_attention": dg.MetadataValue.json(attention_records(reports)),
            "cliniko_records": sum(r.cliniko for r in reports),
            "loaded": sum(r.loaded for r in reports),
            "skipped": sum(sum(r.skipped.values()) for r in reports),
            "rejected": sum(r.rejected for r in reports),
        },
    )
