"""Import requests submitted in Splose become tenant partitions and runs of the import job."""

import dagster as dg

from cliniko_assets.jobs import import_job
from cliniko_assets.mapping import mapping_from_request
from cliniko_assets.partitions import InvalidTenant, tenants, validate_tenant
from splose_resources.notifier import NotifierResource
from splose_resources.splose import SploseResource
from splose_resources.staging import StagingStore


def run_config_for(request: dict) -> dict:
    """The run config of one import request: its id, mapping and data types. Never its key."""
    mapping = mapping_from_request(request.get("mapping") or {})
    return {
        "resources": {
            "import_request": {
                "config": {
                    "import_id": str(request["id"]),
                    "mapping": mapping.model_dump(),
                    "include": list(request.get("include") or []),
                }
            }
        }
    }


@dg.sensor(job=import_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def import_requests(context: dg.SensorEvaluationContext, splose: SploseResource) -> dg.SensorResult:
    """Registers each submitted request's workspace as a tenant and launches its import once (run key)."""
    new_tenants: list[str] = []
    run_requests: list[dg.RunRequest] = []
    with splose.imports() as imports:
        for request in imports.list_imports(status="submitted"):
            workspace = str(request.get("workspaceId", ""))
            try:
                tenant = validate_tenant(workspace)
            except InvalidTenant as exc:
                imports.update_import(request["id"], status="failed", message=str(exc))
                context.log.warning(f"Import {request['id']} refused: {exc}")
                continue
            if not context.instance.has_dynamic_partition(tenants.name, tenant) and tenant not in new_tenants:
                new_tenants.append(tenant)
            run_requests.append(
                dg.RunRequest(
                    # The creation time keeps run keys unique even where import ids restart (a fresh sandbox).
                    run_key=f"import-{request['id']}-{request.get('createdAt', '')}",
                    partition_key=tenant,
                    run_config=run_config_for(request),
                    tags={"splose/import_id": str(request["id"])},
                )
            )
            imports.update_import(request["id"], status="running")
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[tenants.build_add_request(new_tenants)] if new_tenants else [],
    )


@dg.sensor(minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING)
def purge_deleted_imports(
    context: dg.SensorEvaluationContext, splose: SploseResource, staging: StagingStore
) -> dg.SkipReason:
    """An import the clinic deleted (Splose's 48-hour undo) takes its staged health data with it.

    Only when it is the workspace's latest import: a clinic that deleted an import and imported again
    keeps the staging of its new import.
    """
    latest: dict[str, dict] = {}
    with splose.imports() as imports:
        for request in imports.list_imports():
            workspace = str(request.get("workspaceId", ""))
            if workspace not in latest or int(request["id"]) > int(latest[workspace]["id"]):
                latest[workspace] = request
    purged = []
    for workspace, request in latest.items():
        try:
            tenant = validate_tenant(workspace)
        except InvalidTenant:
            continue
        if request.get("status") == "deleted" and staging.has_tenant(tenant):
            staging.purge(tenant)
            purged.append(tenant)
    return dg.SkipReason(f"purged the staged data of {len(purged)} tenant(s)" if purged else "nothing to purge")


@dg.run_failure_sensor(monitored_jobs=[import_job], default_status=dg.DefaultSensorStatus.RUNNING)
def import_failed(context: dg.RunFailureSensorContext, splose: SploseResource, notifier: NotifierResource) -> None:
    """A failed import run marks its import request failed with what went wrong, and tells the clinic.

    The step failures are the pipeline's own messages (tenant, resource, mapping items and remedies;
    never a key or patient data).
    """
    config = ((context.dagster_run.run_config.get("resources") or {}).get("import_request") or {}).get("config") or {}
    import_id = config.get("import_id") or context.dagster_run.tags.get("splose/import_id")
    if not import_id:
        return  # an extraction or local run with no import request behind it
    reasons = [event.event_specific_data.error.message.strip() for event in context.get_step_failure_events()]
    message = "\n".join(reasons) or context.failure_event.message or "the import run failed"
    with splose.imports() as imports:
        imports.update_import(int(import_id), status="failed", message=message[:4000])
    notifier.import_finished(
        tenant=context.dagster_run.tags.get("dagster/partition", ""),
        import_id=int(import_id),
        succeeded=False,
        summary=message[:4000],
    )
