"""Import requests submitted in Splose become tenant partitions and runs of the import job."""

import dagster as dg

from cliniko_assets.jobs import import_job
from cliniko_assets.mapping import mapping_from_request
from cliniko_assets.partitions import InvalidTenant, tenants, validate_tenant
from splose_resources.splose import SploseResource


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
