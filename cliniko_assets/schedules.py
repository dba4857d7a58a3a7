"""Nightly re-sync of every clinic still running both systems.

Each tenant's latest import run is repeated with the same run config (its import id and mapping): the
extraction is incremental and the loads are idempotent upserts, so a re-sync fetches and writes only
what changed. Tenants whose latest import is not a completed run are left to support.
"""

import dagster as dg

from cliniko_assets.jobs import import_job
from cliniko_assets.partitions import tenants

RESYNC_TAG = "splose/resync"


@dg.schedule(
    cron_schedule="0 2 * * *",
    job=import_job,
    execution_timezone="Australia/Sydney",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def nightly_resync(context: dg.ScheduleEvaluationContext):
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for tenant in tenants.get_partition_keys(dynamic_partitions_store=context.instance):
        runs = context.instance.get_runs(
            filters=dg.RunsFilter(job_name=import_job.name, tags={"dagster/partition": tenant}), limit=1
        )
        if not runs or runs[0].status != dg.DagsterRunStatus.SUCCESS:
            continue
        previous = runs[0]
        yield dg.RunRequest(
            run_key=f"resync-{tenant}-{day}",
            partition_key=tenant,
            run_config={"resources": previous.run_config.get("resources", {})},
            tags={RESYNC_TAG: day, **{k: v for k, v in previous.tags.items() if k == "splose/import_id"}},
        )
