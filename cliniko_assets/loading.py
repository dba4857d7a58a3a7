"""What every ``splose/*`` step shares: its tenant's import, staged records, mapping, sink and handoff.

Assets hand each other data one way: through their materializations' metadata, which the UI shows. The
mapping check records the import's facts and the mapping as checked (what contacts and clients use) on
``splose/mapping_check``, the mapping step the whole resolved mapping (ids only) as ``resolved_mapping`` on
``splose/services``; every load records its reconciliation rows as ``rows`` (and anything the report reads
back, e.g. ``group_entries``), each with the run's ``import_id``. A later step reads the latest
materialization of the asset it depends on for the tenant, and uses it only if it belongs to the same
import. Records themselves stay in staging and are read there by the step that needs them.

:class:`LoadRun` is the real import's; the preview (:mod:`cliniko_assets.preview`) subclasses it to keep
everything in memory and write nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Container, Iterable, Iterator
from functools import partial

import dagster as dg

from cliniko_assets.attention import FIELDS_CUT, GONE, NO_LONGER_IN_CLINIKO, NOT_REMOVED_SHORT, TO_REMOVE
from cliniko_assets.changes import UNCHANGED, RunCrosswalk
from cliniko_assets.crosswalks import key_set
from cliniko_assets.in_flight import InFlight
from cliniko_assets.lifecycle import bound_import
from cliniko_assets.mapping import ImportRequestResource, ResolvedMapping
from cliniko_assets.partitions import validate_tenant
from cliniko_assets.progress import LoadProgress
from cliniko_assets.reconciliation import RowReport, reconciliation_check, report_metadata, splose_key
from cliniko_assets.references import BY_ID_SOURCE
from cliniko_assets.removals import held_back
from cliniko_assets.resolution import RunImport, chosen_import_id
from cliniko_assets.sinks import Sink, SploseSink
from cliniko_assets.transforms import ImportContext, Skip, pop_warnings
from cliniko_assets.transforms.salvage import fit_short_fields
from splose_resources.splose import SploseImportClient, SploseResource, UpsertResult
from splose_resources.staging import StagingStore

BATCH = 500
PARENT_RUN_TAG = "dagster/parent_run_id"
MAPPING_ASSET = "services"  # the mapping step's last asset: it carries the resolved mapping
CHECK_ASSET = "mapping_check"  # the first Splose step: the mapping checked, the run's import bound
MAPPING_KEY = "resolved_mapping"
ROWS_KEY = "rows"
IMPORT_KEY = "import_id"
RUN_IMPORT_KEY = "run_import"  # the import as the mapping step checked it, for the run's loads


def latest_metadata(instance: dg.DagsterInstance, key: dg.AssetKey, tenant: str) -> tuple[str | None, dict]:
    """The run id and metadata values of ``key``'s latest materialization for ``tenant`` (``None`` and
    nothing when it has none)."""
    result = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key, asset_partitions=[tenant]), limit=1)
    for record in result.records:
        materialization = record.asset_materialization
        if materialization is not None:
            return record.run_id, {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    return None, {}


def import_of_load(
    context: dg.AssetExecutionContext, splose: SploseResource, import_request: ImportRequestResource
) -> RunImport | None:
    """The import a load step works for. When this run's mapping check bound it (the same import, moments
    ago: it belongs to the tenant, is not deleted, is marked running), the facts that step recorded serve and
    the load asks Splose nothing more for it: every call a load makes acts for the tenant's workspace, which
    Splose refuses for another workspace's import, and Splose refuses records for an import deleted
    meanwhile (a 409 that fails the step). A load without this run's mapping check checks it itself."""
    tenant = validate_tenant(context.partition_key)
    import_id, _ = chosen_import_id(context, import_request, tenant)
    if import_id is not None:
        run_id, values = latest_metadata(context.instance, splose_key(CHECK_ASSET), tenant)
        facts = values.get(RUN_IMPORT_KEY)
        if run_id == context.run.run_id and isinstance(facts, dict) and facts["import_id"] == import_id:
            return RunImport.from_facts(tenant, facts)
    return bound_import(context, splose, import_request)


class LoadRun:
    """What a load asset needs for one tenant: its import, staged records, mapping, report and sink."""

    def __init__(self, context: dg.AssetExecutionContext, staging: StagingStore, run_import: RunImport | None) -> None:
        self.context = context
        self.tenant = validate_tenant(context.partition_key)
        self.staging = staging
        if run_import is None:
            raise dg.Failure(
                description=f"Tenant '{self.tenant}' has no import request in this run (local development): the "
                "loads need one. Submit an import request in Splose for the workspace, and run without "
                "local_development.",
                metadata={"tenant": self.tenant, "what_to_do": "run with an import request"},
            )
        self.request = run_import
        self.import_id = run_import.import_id
        self.sink: Sink | None = None
        self.tracker: LoadProgress | None = None
        self.side_reports: dict[str, RowReport] = {}  # rows a load reports besides its own (attendees)
        self._mapping: ResolvedMapping | None = None
        self.mapping_from = MAPPING_ASSET  # the asset whose materialization hands this load the mapping

    def included(self, data_type: str) -> bool:
        return self.request.included(data_type)

    def records(self, resource: str, by_id: bool | None = None, ids: Collection[str] | None = None) -> Iterator[dict]:
        """The staged records of ``resource``; with ``by_id``, only those found by id (True) or listed (False);
        with ``ids``, only those (the others are never decoded)."""
        source = None if by_id is None else BY_ID_SOURCE
        for batch in self.staging.iter_records(self.tenant, resource, source=source, other=by_id is False, ids=ids):
            yield from batch

    def count(self, resource: str, by_id: bool | None = None) -> int:
        if by_id is None:
            return self.staging.count_rows(self.tenant, resource)
        sources = self.staging.read_index(self.tenant, resource, ("source",))["source"]
        return int((sources == BY_ID_SOURCE).sum()) if by_id else int((sources != BY_ID_SOURCE).sum())

    def progress(self, name: str, total: int | None) -> LoadProgress:
        return LoadProgress(self.context.log, f"splose/{name} of tenant '{self.tenant}'", total)

    def advance(self, count: int = 1) -> None:
        if self.tracker is not None:
            self.tracker.advance(count)

    def splose_sink(self, imports: SploseImportClient, writer: str) -> SploseSink:
        """The sink of step ``writer``: sends what Splose does not hold yet, crosswalks read once per run."""
        return SploseSink(imports, self.import_id, self.crosswalk(imports, writer))

    def crosswalk(self, imports: SploseImportClient, writer: str) -> RunCrosswalk:
        """The crosswalks as this run knows them, for step ``writer`` (with the marks of the runs it re-executes)."""
        run_id, ancestors = self.context.run.run_id, run_ancestors(self.context)
        return RunCrosswalk(imports, self.import_id, self.staging, self.tenant, run_id, writer, ancestors)

    def writes(self) -> Sink:
        if self.sink is None:
            raise RuntimeError("the load has no sink: set LoadRun.sink inside the Splose workspace")
        return self.sink

    # -- the handoff between assets: their metadata --------------------------------------------------

    def received(self, name: str) -> dict | None:
        """The metadata of ``splose/<name>``'s latest materialization for this tenant, if of this import."""
        _, values = latest_metadata(self.context.instance, splose_key(name), self.tenant)
        return values if values and str(values.get(IMPORT_KEY)) == str(self.import_id) else None

    def mapping(self) -> ResolvedMapping:
        if self._mapping is None:
            received = self.received(self.mapping_from) or {}
            if MAPPING_KEY not in received:
                raise dg.Failure(
                    description=f"The mapping of tenant '{self.tenant}' for import {self.import_id} has not been "
                    f"resolved yet: materialize splose/{self.mapping_from} first.",
                    metadata={
                        "tenant": self.tenant,
                        "import_id": self.import_id,
                        "what_to_do": "run the mapping first",
                    },
                )
            self._mapping = ResolvedMapping(**received[MAPPING_KEY])
        return self._mapping

    def keep_mapping(self, resolved: ResolvedMapping) -> dict:
        """The mapping for the loads after it (its ids only), as the metadata that hands it over."""
        self._mapping = resolved
        data = dataclasses.asdict(resolved)
        data["problems"] = []
        return {MAPPING_KEY: dg.MetadataValue.json(data)}

    def listed_in_full(self, resource: str, report: RowReport) -> bool:
        """Whether Cliniko's latest listing of ``resource`` for this tenant held every record its count says
        (no ``shortfall``): only then is what it no longer lists taken out of Splose; else the row says so."""
        _, metadata = latest_metadata(self.context.instance, dg.AssetKey(["cliniko", resource]), self.tenant)
        if metadata.get("shortfall"):
            report.facts[NOT_REMOVED_SHORT] = report.facts.get(NOT_REMOVED_SHORT, 0) + 1
            return False
        return True

    def retire(self, report: RowReport, entity: str, external_id: str, reason: str) -> None:
        """Mark a record for removal from Splose if Splose holds it (the import report removes it), counted on
        the row (metadata ``to_remove``)."""
        if self.writes().retire(entity, external_id, reason):
            report.facts[TO_REMOVE] = report.facts.get(TO_REMOVE, 0) + 1

    def import_context(self, *entities: str) -> ImportContext:
        """The mapping, and the records of ``entities`` Splose holds, less those this run marked for removal
        (what points at them is not linked to them: they are on their way out), unless their removal will be
        held back (:func:`~cliniko_assets.removals.held_back`)."""
        sink = self.writes()
        imported = {}
        for entity in entities:
            held, gone = sink.crosswalk(entity), sink.retired(entity)
            leaving = gone if gone and not held_back(len(gone), len(held), self.request.remove_most) else ()
            imported[entity] = _Without(key_set(held), leaving)
        return self.mapping().context(imported)

    def finish(self, name: str, report: RowReport, extra: dict | None = None) -> dg.MaterializeResult:
        """The materialization of a row: its reconciliation (shown, and handed to the report) and its extras."""
        self.context.log.info(
            f"splose/{name} for tenant '{self.tenant}': cliniko {report.cliniko}, loaded {report.loaded} "
            f"(created {report.created}, updated {report.updated}, unchanged {report.unchanged}), "
            f"skipped {sum(report.skipped.values())}, rejected {report.rejected}"
        )
        rows = {name: report, **self.side_reports}
        return dg.MaterializeResult(
            asset_key=splose_key(name),
            metadata={
                **report_metadata(report, *self.side_reports.values()),
                IMPORT_KEY: dg.MetadataValue.text(str(self.import_id)),
                ROWS_KEY: dg.MetadataValue.json({key: row.to_json() for key, row in rows.items()}),
                **(extra or {}),
            },
            check_results=[reconciliation_check(name, report)],
        )


def received_rows(run: LoadRun, names: Iterable[str]) -> dict[str, RowReport]:
    """The rows the given assets reported for this import, by row name."""
    found: dict[str, RowReport] = {}
    for name in names:
        for row, data in ((run.received(name) or {}).get(ROWS_KEY) or {}).items():
            found[row] = RowReport.from_json(data)
    return found


def load_records(
    run: LoadRun,
    report: RowReport,
    entity: str,
    outcomes: Iterable[dict | Skip],
    answer: Callable[[str, str], None] | None = None,
    vanished_from: str | None = None,
) -> None:
    """Upsert every transformed record in batches of 500 and count skips; ``answer(external_id, action)`` is
    told what happened to each record sent or found unchanged.

    A record skipped for a reason that means it must not be in Splose (:data:`GONE`: deleted in Cliniko,
    ignored by the clinic's mapping) that an earlier import brought across is marked for removal; with
    ``vanished_from`` (a resource Cliniko deletes without a trace, listed in full) so is every record Splose
    holds that the outcomes do not name at all, when that listing was complete.

    Up to the sink's ``in_flight`` batches are on their way to Splose at once (each is independent: a
    record never points at another of the same stream), so transforming the next batch overlaps
    Splose's answer to the previous ones. Every batch is answered before this returns.
    """
    sink = run.writes()
    pending: list[dict] = []
    seen: set[str] | None = set() if vanished_from else None

    def answered(result: UpsertResult) -> None:
        report.absorb(result)
        if answer is not None:
            for upserted in result.records:
                answer(upserted.external_id, upserted.action)

    with InFlight[UpsertResult](sink.in_flight, f"upsert-{entity}", sink.stop) as batches:
        for outcome in outcomes:
            report.cliniko += 1
            run.advance()
            if isinstance(outcome, Skip):
                report.count_skip(outcome)
                if seen is not None:
                    seen.add(outcome.cliniko_id)
                if outcome.reason in GONE and outcome.cliniko_id:
                    run.retire(report, entity, outcome.cliniko_id, outcome.reason)
                continue
            if seen is not None:
                seen.add(str(outcome["externalId"]))
            report.warnings.update(pop_warnings(outcome))
            if cut := fit_short_fields(entity, outcome):
                report.facts[FIELDS_CUT] = report.facts.get(FIELDS_CUT, 0) + cut
            if sink.unchanged(entity, outcome):  # Splose holds it as it is: not sent (batches stay full)
                report.unchanged += 1
                if answer is not None:
                    answer(outcome["externalId"], UNCHANGED)
                continue
            pending.append(outcome)
            if len(pending) >= BATCH:
                batches.send(partial(sink.upsert, entity, pending), answered)
                pending = []
        if pending:
            batches.send(partial(sink.upsert, entity, pending), answered)
    if seen is not None and run.listed_in_full(vanished_from or "", report):
        for external_id in [held for held in sink.held(entity) if held not in seen]:
            run.retire(report, entity, external_id, NO_LONGER_IN_CLINIKO)


def run_ancestors(context: dg.AssetExecutionContext, most: int = 20) -> tuple[str, ...]:
    """The runs this one re-executes, nearest first (Dagster's ``dagster/parent_run_id`` tags, followed)."""
    found: list[str] = []
    parent = context.run.tags.get(PARENT_RUN_TAG)
    while parent and len(found) < most and parent not in found:
        found.append(parent)
        record = context.instance.get_run_by_id(parent)
        parent = record.tags.get(PARENT_RUN_TAG) if record is not None else None
    return tuple(found)


class _Without(Container[str]):
    """The external ids of ``held`` but those in ``gone``."""

    def __init__(self, held: Container[str], gone: Collection[str]) -> None:
        self.held = held
        self.gone = gone

    def __contains__(self, external_id: object) -> bool:
        return external_id in self.held and external_id not in self.gone
