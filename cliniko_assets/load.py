"""The ``splose/*`` assets, made from the rows' declarations (:mod:`cliniko_assets.rows`).

``splose/mapping_check`` (:mod:`cliniko_assets.mapping_check`) checks the mapping before any write; contacts
and clients load after it, while the appointments are extracted. One step resolves the whole mapping (the
four mapping rows); then each loaded row is its own asset: it reads
its staged Cliniko records, turns them into import records with its pure transform, upserts them
(idempotent, keyed by the Cliniko id) and reports its row of the reconciliation: Cliniko count = loaded
+ skipped (by reason) + rejected. That equation is an asset check that blocks the rest of the run when it
does not hold, because then something was lost.

The same code runs as a dry run for ``splose/import_preview`` (:mod:`cliniko_assets.preview`): a
:class:`~cliniko_assets.loading.LoadRun` whose sink writes nothing (:mod:`cliniko_assets.sinks`).
"""

import dagster as dg

from cliniko_assets.failures import step_failures
from cliniko_assets.loading import CHECK_ASSET, MAPPING_ASSET, LoadRun, import_of_load
from cliniko_assets.mapping import ImportRequestResource
from cliniko_assets.mapping_rows import mapping_rows, resolve, staged_for_mapping
from cliniko_assets.partitions import tenants
from cliniko_assets.reconciliation import RECONCILED, RowReport, splose_key
from cliniko_assets.resolution import RunImport
from cliniko_assets.rows import BY_NAME, LOAD_ORDER, MAPPING_ROWS, Row, after_mapping, companions
from splose_resources.collector import bulk_work
from splose_resources.splose import SploseResource
from splose_resources.staging import StagingStore

GROUP = "splose"


def row_spec(row: Row) -> dg.AssetSpec:
    return dg.AssetSpec(
        splose_key(row.name), deps=row.deps(), description=row.description, group_name=GROUP, kinds={"python"}
    )


def check_specs(row: Row) -> list[dg.AssetCheckSpec]:
    reconciled = dg.AssetCheckSpec(
        RECONCILED,
        asset=splose_key(row.name),
        blocking=True,
        description="Cliniko count = loaded + skipped (by reason) + rejected; a failure means data was lost.",
    )
    extra = [dg.AssetCheckSpec(c.name, asset=splose_key(row.name), blocking=True, description=c.description)
             for c in row.checks]  # fmt: skip
    return [reconciled, *extra]


WITH_MAPPING = tuple(row for row in LOAD_ORDER if row.with_mapping)
MAPPING_STEP = (*MAPPING_ROWS, *WITH_MAPPING)


@dg.multi_asset(
    name="splose_mapping",
    specs=[row_spec(row) for row in MAPPING_STEP],
    check_specs=[check for row in MAPPING_STEP for check in check_specs(row)],
    partitions_def=tenants,
)
def splose_mapping(
    context: dg.AssetExecutionContext,
    staging: StagingStore,
    splose: SploseResource,
    import_request: ImportRequestResource,
):
    with (
        step_failures(context.partition_key, "splose/locations, users, practitioners and services") as where,
        bulk_work(),
    ):
        run = LoadRun(context, staging, import_of_load(context, splose, import_request))
        where.import_id = run.import_id
        staged = staged_for_mapping(run)
        with splose.workspace(run.tenant, log=context.log) as workspace:
            resolved = resolve(run, staged, run.request.mapping, workspace.v1)
            if resolved.problems:
                raise dg.Failure(
                    description=resolved.failure_message(run.tenant, checked_before=True),
                    metadata={
                        "problems": len(resolved.problems),
                        "proposed_mapping": dg.MetadataValue.json(resolved.proposals),
                        "what_to_do": "complete the mapping (run config or the import request), then re-run",
                    },
                )
            run.sink = sink = run.splose_sink(workspace.imports, "mapping")
            reports = {row.name: RowReport(row.label) for row in MAPPING_ROWS}
            extras = mapping_rows(run, staged, resolved, reports)
            extras[MAPPING_ASSET].update(run.keep_mapping(resolved))
            for row in WITH_MAPPING:  # the rows this step loads once the mapping is resolved
                reports[row.name], extras[row.name] = load_row(run, row)
            sink.save()
        for row in MAPPING_STEP:
            yield finished(run, row, reports[row.name], extras[row.name])


def load_row(run: LoadRun, row: Row) -> tuple[RowReport, dict]:
    """One row through the run's sink: its report (its companions' in ``run.side_reports``) and extra metadata."""
    report = RowReport(row.label)
    run.side_reports = {other.name: RowReport(other.label) for other in companions(row)}
    run.tracker = run.progress(row.name, run.count(row.source, row.by_id))
    if run.included(row.selected_as) and row.load is not None:
        return report, row.load(run, report) or {}
    for name, skipped in ((row.name, report), *run.side_reports.items()):
        skipped.cliniko = run.count(BY_NAME[name].source, BY_NAME[name].by_id)
        skipped.skip("not requested by the clinic", skipped.cliniko)
    return report, {}


def _load_asset(row: Row) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=f"splose_{row.name}",
        specs=[row_spec(row)],
        check_specs=check_specs(row),
        partitions_def=tenants,
    )
    def _asset(
        context: dg.AssetExecutionContext,
        staging: StagingStore,
        splose: SploseResource,
        import_request: ImportRequestResource,
    ):
        with step_failures(context.partition_key, f"splose/{row.name} ({row.label})") as where, bulk_work():
            run = row_run(context, staging, import_of_load(context, splose, import_request), row)
            where.import_id = run.import_id
            with splose.workspace(run.tenant, log=context.log) as workspace:
                run.sink = sink = run.splose_sink(workspace.imports, row.name)
                report, extra = load_row(run, row)
                sink.save()
            yield finished(run, row, report, extra)

    return _asset


def row_run(
    context: dg.AssetExecutionContext, staging: StagingStore, run_import: RunImport | None, row: Row
) -> LoadRun:
    """The load of ``row`` in its own step: the mapping from the mapping step, or (contacts, clients) from the
    mapping check."""
    run = LoadRun(context, staging, run_import)
    run.mapping_from = MAPPING_ASSET if after_mapping(row) else CHECK_ASSET
    return run


def finished(run: LoadRun, row: Row, report: RowReport, extra: dict) -> dg.MaterializeResult:
    """The row's materialization with its reconciliation and every check of its own."""
    result = run.finish(row.name, report, extra)
    return result._replace(check_results=[*result.check_results, *extra_checks(row, extra)])


def extra_checks(row: Row, extra: dict) -> list[dg.AssetCheckResult]:
    return [
        dg.AssetCheckResult(
            asset_key=splose_key(row.name),
            check_name=check.name,
            passed=not extra.get(check.key),
            metadata={check.key: extra.get(check.key, 0)},
        )
        for check in row.checks
    ]


load_assets = [_load_asset(row) for row in LOAD_ORDER if not (row.with_mapping or row.with_downloads)]
