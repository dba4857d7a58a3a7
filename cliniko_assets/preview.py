"""``splose/import_preview``: what a tenant's import would bring, before anything is written to Splose.

"Review the data you would like to import, then Submit": ``preview_job`` extracts the tenant into
staging (the preview needs the data; the import after it then only re-reads what changed) and runs the
import's own code as a dry run: the same mapping resolution, the same transforms, skips and counts, with
a sink that writes nothing (:class:`~cliniko_assets.sinks.DryRunSink`). Splose is only read (the
workspace's locations, practitioners and services, what an earlier import holds); the import's status
does not move.

It shows the mapping (what the clinic mapped, what is unmapped or wrong, and what it would be with the
proposals: email for people, name for locations and services), what each row would bring (would load,
would be skipped and why), and an estimated duration from the request budgets: Cliniko's requests
needed at its 200 per 60 s, plus Splose's calls at the import API's budget. If the clinic's mapping is
incomplete, the rows are counted with the proposals filled in (the import itself would refuse to start
until the mapping is fixed).
"""

import math
from collections import Counter
from dataclasses import dataclass

import dagster as dg

from cliniko_assets.attention import TO_REMOVE
from cliniko_assets.catalog import CATALOG
from cliniko_assets.extract import REFERENCES, cliniko_key
from cliniko_assets.failures import step_failures
from cliniko_assets.lifecycle import bound_import
from cliniko_assets.load import load_row
from cliniko_assets.loading import LoadRun
from cliniko_assets.mapping import UNKNOWN, ImportMapping, ImportRequestResource, ResolvedMapping
from cliniko_assets.mapping_rows import mapping_rows, resolve, staged_for_mapping
from cliniko_assets.partitions import tenants
from cliniko_assets.progress import LoadProgress, duration
from cliniko_assets.reconciliation import RowReport, skipped_text
from cliniko_assets.references import BY_ID_SOURCE
from cliniko_assets.removals import ORDER, held_back
from cliniko_assets.rows import LOAD_ORDER, MAPPING_ROWS, reconciled_rows
from cliniko_assets.sinks import DryRunSink
from splose_resources.cliniko import ClinikoResource
from splose_resources.splose import SploseResource
from splose_resources.staging import StagingStore

PREVIEW_KEY = dg.AssetKey(["splose", "import_preview"])
GROUP = "review"
# Mapping problem kinds -> the mapping's sections.
SECTIONS = {"business": "locations", "practitioner": "practitioners", "user": "users", "appointment type": "services"}
NOT_MAPPED = "not mapped"  # skip reasons with this in them are records the mapping leaves out
FIXED_SPLOSE_CALLS = 40  # status updates, mapping reads and crosswalk reads of a whole import, about

ROWS_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("row", "string", description="Cliniko resource -> Splose entity"),
        dg.TableColumn("cliniko", "int", description="records Cliniko has (as staged)"),
        dg.TableColumn("would_load", "int", description="records the import would send to Splose"),
        dg.TableColumn("would_skip", "int", description="records it would skip, each with a reason"),
        dg.TableColumn("skipped_by_reason", "string"),
        dg.TableColumn("unmapped", "int", description="skipped because the mapping leaves something unmapped"),
        dg.TableColumn(
            "would_remove",
            "int",
            description="records an earlier import brought across, now deleted in Cliniko or ignored: the import "
            "would remove them from Splose",
        ),
    ]
)
MAPPING_SCHEMA = dg.TableSchema(
    columns=[
        dg.TableColumn("section", "string", description="locations, practitioners, users or services"),
        dg.TableColumn("cliniko_id", "string"),
        dg.TableColumn("clinic_mapped", "string", description="what the clinic's mapping says ('' for nothing)"),
        dg.TableColumn("proposed", "string", description="the match proposed (email, name), or 'create'/'ignore'"),
        dg.TableColumn("would_use", "string", description="what the preview counted with"),
        dg.TableColumn("problem", "string", description="why the import would refuse the clinic's mapping"),
    ]
)


class PreviewRun(LoadRun):
    """A dry run of the loads: the mapping kept in memory, rows returned, nothing written to Splose."""

    resolved: ResolvedMapping

    def mapping(self) -> ResolvedMapping:
        return self.resolved

    def progress(self, name: str, total: int | None) -> LoadProgress:
        return LoadProgress(self.context.log, f"preview of splose/{name} of tenant '{self.tenant}'", total)


@dataclass(frozen=True)
class Estimate:
    cliniko_requests: int
    cliniko_seconds: float
    splose_calls: int
    splose_seconds: float

    @property
    def seconds(self) -> float:
        return self.cliniko_seconds + self.splose_seconds


@dg.asset(
    key=PREVIEW_KEY,
    deps=[*(cliniko_key(spec.name) for spec in CATALOG), cliniko_key(REFERENCES)],
    partitions_def=tenants,
    group_name=GROUP,
    kinds={"python"},
    description="What the tenant's import would bring, before any Splose write: the mapping with proposals, "
    "per-row counts (would load, would skip and why, unmapped) and the estimated duration. A dry run of the "
    "import's own code.",
)
def import_preview(
    context: dg.AssetExecutionContext,
    staging: StagingStore,
    splose: SploseResource,
    cliniko: ClinikoResource,
    import_request: ImportRequestResource,
) -> dg.MaterializeResult:
    with step_failures(context.partition_key, "splose/import_preview") as where:
        run = PreviewRun(context, staging, bound_import(context, splose, import_request))
        where.import_id = run.import_id
        staged = staged_for_mapping(run)
        with splose.workspace(run.tenant, log=context.log) as workspace:
            clinic = resolve(run, staged, run.request.mapping, workspace.v1)
            proposed = with_proposals(run.request.mapping, clinic)
            run.resolved = clinic if not clinic.problems else resolve(run, staged, proposed, workspace.v1)
            run.sink = sink = DryRunSink(workspace.imports, run.import_id)
            rows = {row.name: RowReport(row.label) for row in MAPPING_ROWS}
            mapping_rows(run, staged, run.resolved, rows)
            for row in LOAD_ORDER:
                rows[row.name], _ = load_row(run, row)
                rows.update(run.side_reports)
    reports = list(reconciled_rows(rows).values())
    estimate = estimate_duration(run, sink, cliniko, splose)
    removals = would_remove(run, sink)
    context.log.info(
        f"Preview of import {run.import_id} of tenant '{run.tenant}': {sum(r.loaded for r in reports):,} records "
        f"would be loaded, {sum(sum(r.skipped.values()) for r in reports):,} skipped; {len(clinic.problems)} "
        f"mapping problem(s); {sum(r.count for r in removals):,} would be removed from Splose; about "
        f"{duration(estimate.seconds)}. Nothing was written to Splose."
    )
    return dg.MaterializeResult(metadata=preview_metadata(run, clinic, proposed, reports, estimate, removals))


@dataclass(frozen=True)
class WouldRemove:
    """Records of one Splose entity the import would remove: brought across earlier, now deleted in Cliniko or
    ignored by the mapping."""

    entity: str
    count: int
    held: int  # what Splose holds of the entity (as the import would know it)
    reasons: Counter
    held_back: bool  # more than half: the import would wait for run config remove_most

    def line(self) -> str:
        why = ", ".join(f"{reason} {n:,}" for reason, n in sorted(self.reasons.items()))
        text = f"- {self.entity}: {self.count:,} of the {self.held:,} Splose holds ({why})"
        if self.held_back:
            text += (
                "; more than half: the import would remove none of them and say so, unless run config "
                "resources.import_request.config.remove_most: true"
            )
        return text


def would_remove(run: LoadRun, sink: DryRunSink) -> list[WouldRemove]:
    """What the import's report would remove, entity by entity, in the order it would (counts and reasons)."""
    found = []
    for entity in ORDER:
        marked = sink.to_remove.get(entity)
        if not marked:
            continue
        held = len(sink.crosswalk(entity))
        waits = held_back(len(marked), held, run.request.remove_most)
        found.append(WouldRemove(entity, len(marked), held, Counter(marked.values()), waits))
    return found


def removals_text(removals: list[WouldRemove]) -> str:
    if not removals:
        return (
            "**Would remove from Splose: nothing.** No record an earlier import brought across is deleted in Cliniko "
            "or ignored by the mapping."
        )
    return "\n".join(
        [
            "**Would remove from Splose** what an earlier import brought across that is now deleted in Cliniko or "
            "ignored by the mapping (the import's report removes it once every load is done):",
            *(removal.line() for removal in removals),
        ]
    )


def with_proposals(mapping: ImportMapping, clinic: ResolvedMapping) -> ImportMapping:
    """The clinic's mapping with each problem replaced by its proposal (or left out when there is none)."""
    data = mapping.model_dump()
    for problem in clinic.problems:
        if problem.kind == "setting":  # services["unknown"] names a service the workspace lacks: the default
            data["services"].pop(UNKNOWN, None)
            continue
        section = SECTIONS[problem.kind]
        proposal = clinic.proposals.get(section, {}).get(problem.cliniko_id)
        if proposal:
            data[section][problem.cliniko_id] = proposal
        else:
            data[section].pop(problem.cliniko_id, None)
    return ImportMapping(**data)


def unmapped(report: RowReport) -> int:
    return sum(n for reason, n in report.skipped.items() if NOT_MAPPED in reason)


def rows_table(reports: list[RowReport]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "row": r.row,
                    "cliniko": r.cliniko,
                    "would_load": r.loaded,
                    "would_skip": sum(r.skipped.values()),
                    "skipped_by_reason": skipped_text(r),
                    "unmapped": unmapped(r),
                    "would_remove": r.facts.get(TO_REMOVE, 0),
                }
            )
            for r in reports
        ],
        schema=ROWS_SCHEMA,
    )


def mapping_table(clinic_mapping: ImportMapping, clinic: ResolvedMapping, proposed: ImportMapping) -> list[dict]:
    """One line per Cliniko id the clinic mapped, the proposals cover, or a problem names (ids only)."""
    mapped, used = clinic_mapping.model_dump(), proposed.model_dump()
    problems = {(SECTIONS.get(p.kind, "services"), p.cliniko_id): p.problem for p in clinic.problems}
    lines = []
    for section in ("locations", "practitioners", "users", "services"):
        ids = set(mapped[section]) | set(clinic.proposals.get(section, {})) | {i for s, i in problems if s == section}
        for cliniko_id in sorted(ids, key=lambda i: (not i.isdigit(), int(i) if i.isdigit() else 0, i)):
            lines.append(
                {
                    "section": section,
                    "cliniko_id": cliniko_id,
                    "clinic_mapped": mapped[section].get(cliniko_id, ""),
                    "proposed": clinic.proposals.get(section, {}).get(cliniko_id, ""),
                    "would_use": used[section].get(cliniko_id, ""),
                    "problem": problems.get((section, cliniko_id), ""),
                }
            )
    return lines


def estimate_duration(run: LoadRun, sink: DryRunSink, cliniko: ClinikoResource, splose: SploseResource) -> Estimate:
    """Time at the request budgets: Cliniko's requests for a full extraction, then Splose's calls for the loads
    (upsert batches, file batches) and the fixed ones (status, mapping, crosswalks, the report's count). CPU
    time (transforms) is not counted."""
    requests = 0
    for spec in CATALOG:
        index = run.staging.read_index(run.tenant, spec.name, columns=("id", "source"))
        by_id = int((index["source"] == BY_ID_SOURCE).sum())
        requests += len(spec.streams) + math.ceil((len(index) - by_id) / cliniko.page_size) + by_id
        if spec.has_files:
            requests += len(run.staging.read_files_manifest(run.tenant, spec.name))
    calls = sum(sink.calls.values()) + FIXED_SPLOSE_CALLS
    return Estimate(
        cliniko_requests=requests,
        cliniko_seconds=requests * cliniko.window_seconds / cliniko.requests_per_window,
        splose_calls=calls,
        splose_seconds=calls * splose.window_seconds / splose.import_requests_per_window,
    )


def preview_metadata(
    run: LoadRun,
    clinic: ResolvedMapping,
    proposed: ImportMapping,
    reports: list[RowReport],
    estimate: Estimate,
    removals: list[WouldRemove],
) -> dict:
    mapping_lines = mapping_table(run.request.mapping, clinic, proposed)
    return {
        "summary": dg.MetadataValue.md(summary(run, clinic, reports, estimate, removals)),
        "rows": rows_table(reports),
        "mapping": dg.MetadataValue.table(
            records=[dg.TableRecord(line) for line in mapping_lines], schema=MAPPING_SCHEMA
        ),
        "import_id": dg.MetadataValue.text(str(run.import_id)),
        "proposed_mapping": dg.MetadataValue.json(proposed.model_dump()),
        "mapping_problems": len(clinic.problems),
        "cliniko_records": sum(r.cliniko for r in reports),
        "would_load": sum(r.loaded for r in reports),
        "would_skip": sum(sum(r.skipped.values()) for r in reports),
        "unmapped": sum(unmapped(r) for r in reports),
        "would_remove": {removal.entity: removal.count for removal in removals},
        "would_hold_back": {removal.entity: removal.count for removal in removals if removal.held_back},
        "cliniko_requests_estimate": estimate.cliniko_requests,
        "splose_calls_estimate": estimate.splose_calls,
        "estimated_minutes": round(estimate.seconds / 60, 1),
    }


def summary(
    run: LoadRun, clinic: ResolvedMapping, reports: list[RowReport], estimate: Estimate, removals: list[WouldRemove]
) -> str:
    """The preview as a person reads it (also what ``cliniko-import preview`` prints)."""
    if clinic.problems:
        mapping = (
            f"**The clinic's mapping is incomplete**: {len(clinic.problems)} item(s) with data to import are "
            "unmapped or mapped to ids the workspace lacks, so the import would refuse to start. The counts below "
            "use the proposals (table `mapping`, column `would_use`; `proposed_mapping` to paste):\n\n"
            + "\n".join(problem.line() for problem in clinic.problems)
        )
    else:
        mapping = "The clinic's mapping covers everything with data to import; the counts below use it as submitted."
    lines = [
        f"**Preview of import {run.import_id} of tenant '{run.tenant}'** ({run.request.source}; mapping from the "
        f"{run.request.mapping_source}). Nothing was written to Splose.",
        mapping,
        "| row | Cliniko | would load | would skip (by reason) |\n|---|---:|---:|---|\n"
        + "\n".join(f"| {r.row} | {r.cliniko:,} | {r.loaded:,} | {skipped_text(r)} |" for r in reports),
        removals_text(removals),
        f"**Estimated duration: about {duration(estimate.seconds)}**: Cliniko {estimate.cliniko_requests:,} "
        f"requests for a full extraction (about {duration(estimate.cliniko_seconds)} at the key's budget), then "
        f"Splose about {estimate.splose_calls:,} calls (about {duration(estimate.splose_seconds)}), plus the "
        "transforms' own time. This preview staged the data: the import right after it re-reads only what "
        "changed in Cliniko.",
    ]
    return "\n\n".join(lines)
