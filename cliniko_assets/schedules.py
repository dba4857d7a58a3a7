"""Nightly re-sync of every clinic still running both systems.

Each tenant's latest successful import run is repeated for the same import (its id, recorded on the run
whether run config gave it or the run found it), with the same run config overrides if it had any; the
mapping is read from Splose at run time like any run's (:mod:`cliniko_assets.resolution`). The extraction
is incremental and the loads are idempotent upserts, so a re-sync fetches and writes only what changed.
Only imports Splose holds as ``complete`` are re-synced: never a deleted one (the clinic's undo), one of
another workspace, or one with an import of its workspace in progress.

What a re-sync tells the clinic: nothing when it completes with no new warnings (the clinic already has
its completion email); one email when it finds records needing attention that were not reported before;
one email per failed re-sync ("your Cliniko sync needs attention"), while the import stays ``complete``.
"""

import dagster as dg

from cliniko_assets.jobs import import_job
from cliniko_assets.lifecycle import IMPORT_ID_TAG, PARTITION_TAG, import_id_of
from cliniko_assets.partitions import tenants
from cliniko_assets.sensors import imports_in_progress
from splose_resources.splose import SploseImportClient, SploseNotFound, SploseResource

RESYNC_TAG = "splose/resync"


def resync_refusal(imports: SploseImportClient, import_id: str | None, tenant: str) -> str | None:
    """Why the tenant's import must not be re-synced tonight, or None."""
    if not import_id:
        return None  # a local run without an import request: nothing in Splose to check
    try:
        record = imports.get_import(int(import_id))
    except SploseNotFound:
        return f"Splose has no import {import_id}"
    if str(record.get("workspaceId")) != tenant:
        return f"import {import_id} is not of workspace '{tenant}'"
    if record["status"] != "complete":
        return f"import {import_id} is {record['status']}, not complete"
    return None


@dg.schedule(
    cron_schedule="0 2 * * *",
    job=import_job,
    execution_timezone="Australia/Sydney",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def nightly_resync(context: dg.ScheduleEvaluationContext, splose: SploseResource):
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    with splose.imports(log=context.log) as imports:
        for tenant in tenants.get_partition_keys(dynamic_partitions_store=context.instance):
            runs = context.instance.get_runs(
                filters=dg.RunsFilter(
                    job_name=import_job.name, tags={PARTITION_TAG: tenant}, statuses=[dg.DagsterRunStatus.SUCCESS]
                ),
                limit=1,
            )
            if not runs or imports_in_progress(context.instance, tenant):
                continue
            previous = runs[0]
            import_id = import_id_of(previous)
            refusal = resync_refusal(imports, import_id, tenant)
            if refusal:
                context.log.info(f"No re-sync of tenant '{tenant}' tonight: {refusal}.")
                continue
            yield dg.RunRequest(
                run_key=f"resync-{tenant}-{day}",
                partition_key=tenant,
                run_config=resync_config(previous, import_id),
                tags={RESYNC_TAG: day, **({IMPORT_ID_TAG: import_id} if import_id else {})},
            )


def resync_config(previous: dg.DagsterRun, import_id: str | None) -> dict:
    """The previous run's resource config (overrides included), for the import it worked for."""
    resources = dict((previous.run_config or {}).get("resources") or {})
    request = dict((resources.get("import_request") or {}).get("config") or {})
    if import_id:
        request["import_id"] = import_id
    if request:
        resources["import_request"] = {"config": request}
    return {"resources": resources}
