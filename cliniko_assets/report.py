"""``splose/import_report``: the reconciliation of every row, the import marked complete, the clinic told.

"Complete" means what it says: what the clinic must hear about (rejections, data-problem skips, fields
left out; :mod:`cliniko_assets.attention` decides) makes the import complete *with warnings*, named row
by row in the import's status message, the email and this asset's metadata.
"""

import dagster as dg

from cliniko_assets.attention import TO_REMOVE, attention_records, completion_message, needs_attention, row_notes
from cliniko_assets.catalog import CATALOG
from cliniko_assets.changes import RunCrosswalk
from cliniko_assets.extract import cliniko_key
from cliniko_assets.failures import step_failures
from cliniko_assets.lifecycle import ATTENTION, LEFT_BEHIND, bound_import, tell_clinic
from cliniko_assets.lifecycle import ROWS as COUNT_ROWS
from cliniko_assets.load import load_assets
from cliniko_assets.loading import LoadRun, latest_metadata, received_rows
from cliniko_assets.mapping import ImportRequestResource
from cliniko_assets.partitions import tenants
from cliniko_assets.reconciliation import RowReport, reconciliation_markdown, reconciliation_table, splose_key
from cliniko_assets.removals import Removals, remove_retired
from cliniko_assets.row_loads import GROUP_ENTRIES
from cliniko_assets.rows import LOAD_ORDER, MAPPING_ROWS, ROWS, reconciled_rows
from splose_resources.notifier import NotifierResource
from splose_resources.splose import SploseResource, SploseWorkspace
from splose_resources.staging import StagingStore


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
    """The rows the loads of this import reported (their metadata), by name, in the order the table prints them."""
    return reconciled_rows(received_rows(run, [row.name for row in (*MAPPING_ROWS, *LOAD_ORDER)]))


def referential_integrity(
    run: LoadRun, workspace: SploseWorkspace, known: RunCrosswalk, removals: Removals
) -> dict[str, int]:
    """Check what this run wrote, and the whole workspace with one count, without a request per page.

    Splose resolved every reference when it accepted a record (and deletes what points at a deleted
    record), so what is checked here is this run's own writes against the crosswalks as Splose answered
    them: every appointment it wrote has its clients and a practitioner of the mapping, and every group
    appointment all its attendees; and Splose's count of every entity the run read equals its crosswalk,
    less what the report removed.
    """
    counts = workspace.imports.counts(run.import_id)
    mapping = run.mapping()
    practitioners = {*mapping.practitioners.values(), *mapping.users.values()}
    group_entries: dict[str, int] = (run.received("group_appointments") or {}).get(GROUP_ENTRIES) or {}
    found = dict.fromkeys(("appointments_written", "missing_clients", "missing_practitioners", "incomplete_groups"), 0)
    for external_id, refs in known.written_refs("appointments"):  # streamed: nothing held per appointment
        clients, practitioner = refs["clients"], refs["practitionerId"]
        found["appointments_written"] += 1
        found["missing_clients"] += sum(c not in known.entries("clients") for c in clients)
        found["missing_practitioners"] += practitioner is not None and practitioner not in practitioners
        found["incomplete_groups"] += external_id in group_entries and len(clients) != group_entries[external_id]
    held = len(known.entries("appointments")) - removals.gone("appointments")
    return {
        "appointments_read_back": counts.get("appointments", 0),
        "appointments_written": found["appointments_written"],
        "missing_appointments": max(0, held - counts.get("appointments", 0)),
        "missing_clients": found["missing_clients"],
        "missing_practitioners": found["missing_practitioners"],
        "incomplete_groups": found["incomplete_groups"],
        "count_mismatches": sum(
            len(known.entries(e)) - removals.gone(e) != counts.get(e, 0) for e in known.known_entities()
        ),
    }


INTEGRITY = "referential_integrity"


@dg.asset(
    key=splose_key("import_report"),
    check_specs=[
        dg.AssetCheckSpec(
            INTEGRITY,
            asset=splose_key("import_report"),
            description="Checked against Splose: every appointment this run wrote has its clients, its practitioner "
            "and all its attendees, and Splose's count of each entity equals its crosswalk.",
        )
    ],
    deps=[
        *(key for assets in load_assets for key in assets.keys),
        *(splose_key(row.name) for row in LOAD_ORDER if row.with_mapping or row.with_downloads),
    ],
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
    with step_failures(context.partition_key, "splose/import_report") as where:
        run = LoadRun(context, staging, bound_import(context, splose, import_request))
        where.import_id = run.import_id
        rows = read_reports(run)
        with splose.workspace(run.tenant, log=context.log) as workspace:
            extracted = latest_extractions(context.instance, run.tenant)
            _refuse_unextracted(run, extracted)
            _refuse_unaccounted(run, rows, {})  # before anything is removed
            known = run.crosswalk(workspace.imports, "import_report")
            removals = remove_retired(known, workspace.imports, run.import_id, import_request.remove_most)
            integrity = referential_integrity(run, workspace, known, removals)
            _refuse_unaccounted(run, rows, integrity)
            reports = list(rows.values())
            removals.check(sum(report.facts.get(TO_REMOVE, 0) for report in reports))
            gaps = extraction_gaps(extracted)
            attention = [line for report in reports for line in needs_attention(report)] + gaps + removals.attention()
            notes = [line for report in reports for line in row_notes(report)] + removals.notes()
            message = completion_message(run.tenant, attention) + "".join(f"\n{line}" for line in notes)
            counts = {COUNT_ROWS: {name: row_counts(report) for name, report in rows.items()}, ATTENTION: attention}
            record = workspace.imports.update_import(run.import_id, status="complete", counts=counts, message=message)
        context.log.info(f"Import {run.import_id} of tenant '{run.tenant}' is complete; {len(attention)} warning(s).")
        tell_clinic(notifier, record)
    return dg.MaterializeResult(
        check_results=[dg.AssetCheckResult(check_name=INTEGRITY, passed=True, metadata=integrity)],
        metadata={
            "reconciliation": reconciliation_table(reports),
            "summary": dg.MetadataValue.md(report_summary(run, reports, message)),
            **integrity,
            "warnings": len(attention),
            "needs_attention": dg.MetadataValue.json(attention_records(reports)),
            "not_detected": dg.MetadataValue.json(gaps),
            **{key: dg.MetadataValue.json(value) for key, value in removals.metadata().items()},
            "cliniko_records": sum(r.cliniko for r in reports),
            "loaded": sum(r.loaded for r in reports),
            "skipped": sum(sum(r.skipped.values()) for r in reports),
            "rejected": sum(r.rejected for r in reports),
        },
    )


def latest_extractions(instance: dg.DagsterInstance, tenant: str) -> dict[str, dict | None]:
    """Each ``cliniko/*`` asset's latest metadata for ``tenant``; None for one never materialized for it."""
    found = {spec.name: latest_metadata(instance, cliniko_key(spec.name), tenant) for spec in CATALOG}
    return {name: values if run_id else None for name, (run_id, values) in found.items()}


def _refuse_unextracted(run: LoadRun, extracted: dict[str, dict | None]) -> None:
    """An import whose Cliniko data was never extracted for its tenant is not complete, whatever the loads
    found: they found nothing (a run re-executed from another tenant's, a selection without the extraction)."""
    never = [name for name, values in extracted.items() if values is None]
    if never:
        assets = ", ".join(f"cliniko/{name}" for name in never)
        raise dg.Failure(
            description=f"Import {run.import_id} of tenant '{run.tenant}' cannot be reported complete: its Cliniko "
            f"data was never extracted for this tenant (no materialization of {assets} "
            f"for partition '{run.tenant}'). Launch the whole import for partition '{run.tenant}' (not a "
            "re-execution of another tenant's run, nor a selection without the cliniko assets).",
            metadata={"tenant": run.tenant, "never_extracted": dg.MetadataValue.json(never)},
        )


def extraction_gaps(extracted: dict[str, dict | None]) -> list[str]:
    """What the tenant's latest extraction could not list (Cliniko refused a filter and has no route for it,
    or a route is absent: metadata ``not_detected`` of each ``cliniko/*`` asset), one warning per kind of
    record. Those records (archived, cancelled), or those changes (deletions), are not brought across, so
    the import is complete with warnings rather than complete."""
    gaps: list[str] = []
    for spec in CATALOG:
        details = (extracted[spec.name] or {}).get("not_detected")
        if isinstance(details, dict):
            gaps.extend(
                f"{spec.name}: {detail}, so those records, or those changes to them, are not brought across "
                "(make them in Splose by hand, and ask Cliniko support how this account lists them)"
                for detail in details.values()
            )
    return gaps


def _refuse_unaccounted(run: LoadRun, rows: dict[str, RowReport], integrity: dict[str, int]) -> None:
    """Fail the run, naming the rows, if anything is lost or dangles in Splose."""
    missing = [ROWS[name] for name in ROWS if name not in rows]
    unaccounted = {r.row: r.unaccounted for r in rows.values() if r.unaccounted}
    counted = ("appointments_read_back", "appointments_written")
    broken = {key: value for key, value in integrity.items() if key not in counted and value}
    if missing or unaccounted or broken:
        raise dg.Failure(
            description=f"Import {run.import_id} of tenant '{run.tenant}' is not fully accounted for: rows not "
            f"loaded: {', '.join(missing) or 'none'}; records unaccounted for by row: {unaccounted or 'none'}; "
            f"referential integrity problems in Splose: {broken or 'none'}. Re-run the import: loads are "
            "idempotent; if it persists, the rows named here are where records are lost.",
            metadata={
                "reconciliation": reconciliation_table(rows.values()),
                **integrity,
                "what_to_do": "re-run the import; if it persists, inspect the rows named",
            },
        )


def report_summary(run: LoadRun, reports: list[RowReport], message: str) -> str:
    """The report as a person reads it: the import's status message, then the whole table."""
    return (
        f"**Import {run.import_id} of tenant '{run.tenant}'**: {message}\n\n"
        f"{reconciliation_markdown(reports)}\n\n{LEFT_BEHIND}"
    )
