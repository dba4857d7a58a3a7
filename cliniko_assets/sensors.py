"""Import requests submitted in Splose become tenant partitions and runs; failed runs settle their import.

The sensors never mark an import ``running``: the run does, when it starts (:mod:`cliniko_assets.lifecycle`).
A sensor tick that dies therefore leaves nothing behind but a request still ``submitted``, which the next
tick launches (the run key keeps it to one run).
"""

from functools import partial

import dagster as dg

from cliniko_assets.jobs import import_job
from cliniko_assets.lifecycle import (
    IMPORT_ID_TAG,
    PARTITION_TAG,
    cancelled_message,
    import_id_of,
    settle_failed_run,
    settle_unfinished_run,
)
from cliniko_assets.partitions import InvalidTenant, tenants, validate_tenant
from splose_resources.notifier import NotifierResource
from splose_resources.splose import SploseImportClient, SploseResource

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def run_config_for(request: dict) -> dict:
    """The run config of one import request: its id alone. The run reads the request's mapping and data
    types from Splose when it starts, as a run launched with nothing typed does. Never its key."""
    return {"resources": {"import_request": {"config": {"import_id": str(request["id"])}}}}


def run_request_for(request: dict, tenant: str) -> dg.RunRequest:
    return dg.RunRequest(
        # The creation time keeps run keys unique even where import ids restart (a fresh sandbox).
        run_key=f"import-{request['id']}-{request.get('createdAt', '')}",
        partition_key=tenant,
        run_config=run_config_for(request),
        tags={IMPORT_ID_TAG: str(request["id"])},
    )


def imports_in_progress(instance: dg.DagsterInstance, tenant: str) -> set[str]:
    """Import ids of the tenant's runs that are queued or running in Dagster."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: tenant}, statuses=IN_PROGRESS))
    return {import_id for run in runs if (import_id := import_id_of(run))}


def _refuse(imports: SploseImportClient, request: dict, problem: InvalidTenant) -> None:
    """A request whose workspace id is not a slug can never run: failed (through running, as the contract says)."""
    if request["status"] == "submitted":
        imports.update_import(request["id"], status="running")
    imports.update_import(request["id"], status="failed", message=str(problem))


def _wait(request: dict, holders: set[str], context: dg.SensorEvaluationContext) -> None:
    # Logged on the tick (Splose keeps a submitted import's message for the run that starts it).
    context.log.info(
        f"Import {request['id']} waits: import {min(holders, key=int)} of workspace '{request['workspaceId']}' is in "
        "progress; one import runs per workspace at a time, and this one starts when it has finished."
    )


@dg.sensor(job=import_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def import_requests(context: dg.SensorEvaluationContext, splose: SploseResource) -> dg.SensorResult:
    """Registers each submitted request's workspace as a tenant and launches its import once (run key).

    One import per workspace at a time: a request whose workspace has another import running (in Splose
    or in Dagster) waits, with a message saying so, and is launched by a later tick.
    """
    new_tenants: list[str] = []
    run_requests: list[dg.RunRequest] = []
    active: dict[str, str] = {}
    with splose.imports(log=context.log) as imports:
        for request in imports.list_imports(status="running"):
            try:
                active.setdefault(validate_tenant(str(request.get("workspaceId", ""))), str(request["id"]))
            except InvalidTenant as exc:
                _refuse(imports, request, exc)
        for request in sorted(imports.list_imports(status="submitted"), key=lambda r: int(r["id"])):
            try:
                tenant = validate_tenant(str(request.get("workspaceId", "")))
            except InvalidTenant as exc:
                _refuse(imports, request, exc)
                context.log.warning(f"Import {request['id']} refused: {exc}")
                continue
            own = str(request["id"])
            holders = ({active[tenant]} if tenant in active else set()) | imports_in_progress(context.instance, tenant)
            if holders - {own}:
                _wait(request, holders - {own}, context)
                continue
            active[tenant] = own
            if not context.instance.has_dynamic_partition(tenants.name, tenant) and tenant not in new_tenants:
                new_tenants.append(tenant)
            run_requests.append(run_request_for(request, tenant))
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[tenants.build_add_request(new_tenants)] if new_tenants else [],
    )


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING)
def import_failed(context: dg.RunFailureSensorContext, splose: SploseResource, notifier: NotifierResource) -> None:
    """A failed run with an import request settles it: ``failed`` with the steps' own messages, the clinic told.

    Unless the import is not the run's tenant's, was deleted, completed (never downgraded), will be retried,
    or a later run of it speaks for it (:func:`cliniko_assets.lifecycle.settle_failed_run`).
    """
    context.log.info(settle_failed_run(context, splose, notifier))


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.CANCELED, default_status=dg.DefaultSensorStatus.RUNNING)
def import_cancelled(context: dg.RunStatusSensorContext, splose: SploseResource, notifier: NotifierResource) -> None:
    """A cancelled run settles its import as a failed one does: ``failed`` (or still complete, saying the latest
    sync was cancelled), so the request is not left ``running``, which would refuse the clinic's next import."""
    tenant = context.dagster_run.tags.get(PARTITION_TAG, "")
    why = partial(cancelled_message, context.dagster_run, tenant)
    context.log.info(settle_unfinished_run(context, splose, notifier, why))
