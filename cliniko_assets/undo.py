"""The clinic's undo, and staged data that must not outlive its import.

``undo_import_job`` (one tenant, the partition key alone; the CLI's ``delete-import``) deletes the
tenant's latest import through the import API: Splose deletes every record it created and enforces the
48-hour window, so a closed window fails the run with Splose's own message naming the deadline. Then
the tenant's staged data (health data) is purged.

``purge_deleted_imports_job`` (hourly, ``purge_deleted_imports_schedule``) purges the staged data of
every tenant whose latest import the clinic deleted in Splose itself, with a line in the run's log per
tenant. Only the latest import counts: a clinic that deleted an import and imported again keeps the
staging of its new import.
"""

import dagster as dg

from cliniko_assets.failures import step_failures
from cliniko_assets.partitions import InvalidTenant, tenants, validate_tenant
from cliniko_assets.resolution import HOW_TO_SUBMIT, latest_import
from splose_resources.splose import SploseConflict, SploseResource
from splose_resources.staging import StagingStore


@dg.op(
    out=dg.Out(dg.Nothing),
    description="Deletes the tenant's latest import in Splose (within Splose's 48-hour window), then purges "
    "the tenant's staged data.",
)
def undo_latest_import(context: dg.OpExecutionContext, splose: SploseResource, staging: StagingStore) -> dg.Output:
    with step_failures(context.partition_key, "the undo of the tenant's latest import") as where:
        tenant = validate_tenant(context.partition_key)
        with splose.imports(log=context.log, workspace_id=tenant) as imports:
            latest = latest_import(imports, tenant)
            if latest is None:
                raise dg.Failure(
                    description=f"Tenant '{tenant}' has no import to undo: its workspace lists none that is not "
                    "deleted already.",
                    metadata={"what_to_do": "nothing: there is no import of the tenant in Splose"},
                )
            where.import_id = import_id = int(latest["id"])
            try:
                deleted = imports.delete_import(import_id)
            except SploseConflict as refused:
                raise dg.Failure(
                    description=f"Import {import_id} of tenant '{tenant}' was not undone: {refused} Splose allows "
                    "an undo until 48 hours after the import first completed; after that the clinic removes "
                    "records in Splose itself. The staged data was kept.",
                    metadata={"what_to_do": "nothing to retry: the undo window is closed"},
                ) from None
        staging.purge(tenant)
    context.log.info(
        f"Import {import_id} of tenant '{tenant}' deleted in Splose ({_total(deleted, 'deletedRecords')} records, "
        f"{_total(deleted, 'cascadedRecords')} of them other imports' records that referred to them); the tenant's "
        f"staged data is purged. {HOW_TO_SUBMIT}"
    )
    return dg.Output(
        None,
        metadata={
            "tenant": tenant,
            "import_id": dg.MetadataValue.text(str(import_id)),
            "deleted_records": _total(deleted, "deletedRecords"),
            "deleted_by_entity": dg.MetadataValue.json(deleted.get("deletedRecords") or {}),
            "cascaded_records": _total(deleted, "cascadedRecords"),
        },
    )


def _total(answer: dict, key: str) -> int:
    return sum(int(n) for n in (answer.get(key) or {}).values())


@dg.job(
    partitions_def=tenants,
    tags={"splose/kind": "undo"},
    description="Undo a tenant's latest import (Splose's 48-hour window) and purge its staged data.",
)
def undo_import_job() -> None:
    undo_latest_import()


@dg.op(out=dg.Out(dg.Nothing), description="Purges the staged data of every tenant whose latest import is deleted.")
def purge_deleted_imports(context: dg.OpExecutionContext, splose: SploseResource, staging: StagingStore) -> dg.Output:
    latest: dict[str, dict] = {}
    with (
        step_failures("(all tenants)", "the purge of deleted imports' staged data"),
        splose.imports(log=context.log) as imports,
    ):
        for request in imports.list_imports():
            workspace = str(request.get("workspaceId", ""))
            if workspace not in latest or int(request["id"]) > int(latest[workspace]["id"]):
                latest[workspace] = request
    purged = []
    for workspace, request in sorted(latest.items()):
        try:
            tenant = validate_tenant(workspace)
        except InvalidTenant:
            continue
        if request.get("status") == "deleted" and staging.has_tenant(tenant):
            staging.purge(tenant)
            purged.append(tenant)
            context.log.info(
                f"Purged the staged data of tenant '{tenant}': its latest import ({request['id']}) was deleted."
            )
    context.log.info(f"Purged {len(purged)} tenant(s) of {len(latest)} with imports in Splose.")
    return dg.Output(None, metadata={"purged": len(purged), "tenants_purged": dg.MetadataValue.json(purged)})


@dg.job(description="Purge the staged data of tenants whose latest import the clinic deleted in Splose.")
def purge_deleted_imports_job() -> None:
    purge_deleted_imports()


purge_deleted_imports_schedule = dg.ScheduleDefinition(
    name="purge_deleted_imports_schedule",
    job=purge_deleted_imports_job,
    cron_schedule="17 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly: staged health data does not outlive an import the clinic deleted.",
)
