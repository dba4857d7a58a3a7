"""The import request a run works for: bound to the run's tenant, its status truthful, the clinic told once.

Rules (the state machine of the Splose import API: ``submitted -> running -> complete | failed``,
``failed -> running`` for a retry, ``complete -> running`` for a re-sync, ``deleted`` final):

- An import id is used only by a run of the import's own workspace: every step checks it with
  :func:`bound_import` before it touches Cliniko, staging or Splose, and refuses anything else; a load
  after its run's mapping step relies on that step's check (:func:`cliniko_assets.loading.import_of_load`).
  A run given no import id works for its tenant's latest (:mod:`cliniko_assets.resolution`).
- ``running`` is set by the run itself, when a step of a run that ends with ``splose/import_report``
  starts; never by a sensor before the run exists.
- A deleted import is never re-synced or re-staged: the step refuses it before any Cliniko request.
- ``failed`` carries the pipeline's own message (:func:`failure_message`), never Dagster's wrapper text.
- An import that completed once is never downgraded: a later failure (a re-sync, a dead run cleaned up
  after completion) leaves it ``complete`` and says what happened in its message.
- A cancelled run settles its import as a failed one does (sensor ``import_cancelled``): left ``running``,
  the request would refuse the clinic's next import.
- The clinic hears about each outcome once (:func:`tell_clinic`): the email's file name is derived from
  the import and its outcome, so a retry, a re-evaluated sensor or a re-sync never sends it twice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

import dagster as dg
from dagster._core.storage.tags import WILL_RETRY_TAG

from cliniko_assets.mapping import ImportRequestResource
from cliniko_assets.partitions import validate_tenant
from cliniko_assets.resolution import (
    IMPORT_ID_TAG,
    RunImport,
    chosen_import_id,
    latest_import,
    no_import,
    record_on_run,
    run_import_for,
)
from splose_resources.notifier import NotifierResource
from splose_resources.splose import SploseImportClient, SploseNotFound, SploseResource

PARTITION_TAG = "dagster/partition"
REPORT_KEY = dg.AssetKey(["splose", "import_report"])
REPORT_STEP = "splose__import_report"
ATTENTION = "needsAttention"
ROWS = "rows"

LEFT_BEHIND = (
    "Not migrated, by design: cases, online forms, body charts, letters, invoices and payments "
    "(Cliniko keeps them; export them from Cliniko if you need them)."
)


def bound_import(
    context: dg.AssetExecutionContext, splose: SploseResource, import_request: ImportRequestResource
) -> RunImport | None:
    """The run's import (never its key), checked to belong to the run's tenant and not deleted.

    Found from the partition key alone when run config names none (:mod:`cliniko_assets.resolution`).
    Marks it ``running`` when this run will end with the import report (so its status will be settled by
    the report or by the failure sensor). ``None`` only for local development runs without an import.
    """
    tenant = validate_tenant(context.partition_key)
    refuse_other_tenants_reexecution(context.instance, context.run, tenant)
    import_id, source = chosen_import_id(context, import_request, tenant)
    if import_id is None and import_request.local_development:
        return None
    with splose.imports(log=context.log) as imports:
        if import_id is None:
            with splose.imports(log=context.log, workspace_id=tenant) as own:
                latest = latest_import(own, tenant)
            if latest is None:
                raise no_import(tenant)
            import_id = int(latest["id"])
        record = _import_of(imports, import_id, tenant)
        refuse_foreign(record, tenant)
        if record["status"] == "deleted":
            raise dg.Failure(
                description=f"Import {import_id} of tenant '{tenant}' was deleted in Splose (the clinic's undo): it "
                "is never re-synced or staged again, and nothing was fetched from Cliniko. To import again, the "
                "clinic submits a new import request.",
                metadata={"tenant": tenant, "import_id": import_id, "what_to_do": "the clinic submits a new import"},
            )
        previous = record["status"]
        if REPORT_KEY in context.job_def.asset_layer.executable_asset_keys and previous != "running":
            record = imports.update_import(import_id, status="running")
            context.log.info(f"Import {import_id} of tenant '{tenant}' is now running (was {previous}).")
    run_import = run_import_for(record, tenant, import_request, source)
    record_on_run(context, run_import)
    return run_import


def refuse_other_tenants_reexecution(instance: dg.DagsterInstance, run: dg.DagsterRun, tenant: str) -> None:
    """A re-execution takes its parent's plan and outputs: one whose partition was changed to another tenant
    would load and report this tenant from what the other's run left (or from nothing). Refused, naming both."""
    for run_id in dict.fromkeys(r for r in (run.parent_run_id, run.root_run_id) if r):
        parent = instance.get_run_by_id(run_id)
        other = parent.tags.get(PARTITION_TAG) if parent is not None else None
        if other and other != tenant:
            raise dg.Failure(
                description=f"This run re-executes run {run_id[:8]} of tenant '{other}' with partition '{tenant}': a "
                f"re-execution reuses its parent's plan and outputs, so it would import tenant '{tenant}' from what "
                f"tenant '{other}''s run left. Refused before anything was read or written. Launch a new run for "
                f"partition '{tenant}' instead (or re-execute run {run_id[:8]} for '{other}' as it was).",
                metadata={"tenant": tenant, "parent_run_tenant": other, "what_to_do": "launch a new run"},
            )


def _import_of(imports: SploseImportClient, import_id: int, tenant: str) -> dict:
    try:
        return imports.get_import(import_id)
    except SploseNotFound:
        raise dg.Failure(
            description=f"Splose has no import {import_id} (run for tenant '{tenant}'): check "
            "resources.import_request.config.import_id, or leave it empty to use the tenant's latest import; "
            "nothing was fetched from Cliniko.",
            metadata={"tenant": tenant, "import_id": import_id, "what_to_do": "fix or clear the import id"},
        ) from None


def refuse_foreign(record: dict, tenant: str) -> None:
    """An import of another workspace is refused, naming both, before anything of it is fetched."""
    workspace = str(record.get("workspaceId", ""))
    if workspace != tenant:
        raise dg.Failure(
            description=f"Import {record['id']} belongs to Splose workspace '{workspace}', not to tenant '{tenant}' "
            f"(this run's partition). Refused before any Cliniko request: nothing of workspace '{workspace}' was "
            f"read or staged. Run it for partition '{workspace}', or give tenant '{tenant}' an import id of its "
            "own workspace (or none: the tenant's latest import).",
            metadata={
                "tenant": tenant,
                "import_id": int(record["id"]),
                "what_to_do": f"run the import for partition '{workspace}', or clear the import id",
            },
        )


def import_id_of(run: dg.DagsterRun) -> str | None:
    resources = (run.run_config or {}).get("resources") or {}
    config = (resources.get("import_request") or {}).get("config") or {}
    return str(config.get("import_id") or run.tags.get(IMPORT_ID_TAG) or "") or None


# -- failures -------------------------------------------------------------------------------------


def own_message(event: dg.DagsterEvent) -> str:
    """A step failure's own text: the ``dg.Failure`` description, else the innermost exception's message.

    Dagster wraps user exceptions ("Error occurred while executing op ..."); the cause under the wrapper is
    the pipeline's message (tenant, resource, fix), without its class name.
    """
    data = event.step_failure_data
    if data.user_failure_data is not None and data.user_failure_data.description:
        return data.user_failure_data.description.strip()
    error = data.error
    if error is None:
        return f"step {event.step_key} failed"
    while error.cause is not None:
        error = error.cause
    return re.sub(rf"^[\w.]*{re.escape(error.cls_name or '')}: ", "", error.message.strip()).strip()


def failure_message(context: dg.RunFailureSensorContext, tenant: str) -> str:
    reasons = [own_message(event) for event in context.get_step_failure_events()]
    if reasons:
        return "\n".join(dict.fromkeys(reasons))
    return (
        f"The import run of tenant '{tenant}' stopped before it finished: its process ended unexpectedly (run "
        f"{context.dagster_run.run_id[:8]}). Nothing is lost: the extraction resumes and the loads are "
        "idempotent. Re-run the import (Dagster UI: the run > Re-execute) to finish it."
    )


def owns_status(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """A run settles its import only if it would have reported it (it executes the import report), as
    :func:`bound_import` marks ``running`` only for such runs: an extraction alone never moves the status."""
    steps = run.step_keys_to_execute
    if steps is None and run.execution_plan_snapshot_id:
        snapshot = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        steps = [step.key for step in snapshot.steps]
    return REPORT_STEP in (steps or [])


def superseded(instance: dg.DagsterInstance, run: dg.DagsterRun, import_id: str) -> bool:
    """A later run of the same import (running, done or failed) speaks for it, not this one."""
    tenant = run.tags.get(PARTITION_TAG)
    if not tenant:
        return False
    later = instance.get_runs(filters=dg.RunsFilter(tags={PARTITION_TAG: tenant}), limit=50)
    for other in later:
        if other.run_id == run.run_id:
            return False  # runs come newest first: the rest are older
        if import_id_of(other) == import_id:
            return True
    return False


def cancelled_message(run: dg.DagsterRun, tenant: str) -> str:
    return (
        f"The import run of tenant '{tenant}' was cancelled before it finished (run {run.run_id[:8]}). Nothing is "
        "lost: the extraction resumes and the loads are idempotent. Re-run the import (Dagster UI: the run > "
        f"Re-execute, or cliniko-import import {tenant}) to finish it; the clinic may also submit a new import."
    )


def settle_failed_run(context: dg.RunFailureSensorContext, splose: SploseResource, notifier: NotifierResource) -> str:
    """What the failure sensor does for one failed run; returns what it did, for the tick's log."""
    tenant = context.dagster_run.tags.get(PARTITION_TAG, "")
    return settle_unfinished_run(context, splose, notifier, lambda: failure_message(context, tenant))


def settle_unfinished_run(
    context: dg.RunStatusSensorContext, splose: SploseResource, notifier: NotifierResource, why: Callable[[], str]
) -> str:
    """What a sensor does for one run that ended without finishing (failed, or cancelled): the import it was
    running becomes ``failed`` with ``why()`` (or stays complete, saying the latest sync did not finish), the
    clinic told; returns what it did, for the tick's log."""
    run = context.dagster_run
    import_id = import_id_of(run)
    tenant = run.tags.get(PARTITION_TAG, "")
    if not import_id or not import_id.isdigit():
        return "no import request behind the run"
    if not owns_status(context.instance, run):
        return f"import {import_id}: the run does not report the import (no splose/import_report); status left as is"
    if run.tags.get(WILL_RETRY_TAG) == "true":
        return f"import {import_id}: the run is retried automatically; the retry settles the status"
    if superseded(context.instance, run, import_id):
        return f"import {import_id}: a later run of the import settles its status"
    with splose.imports(log=context.log) as imports:
        record = imports.get_import(int(import_id))
        if str(record.get("workspaceId")) != tenant:
            return f"import {import_id} is not of tenant '{tenant}': left untouched"
        if record["status"] == "deleted":
            return f"import {import_id} was deleted: left as it is"
        message = why()
        ended = "was cancelled" if run.status == dg.DagsterRunStatus.CANCELED else "failed"
        note = f"Complete; the latest sync (run {run.run_id[:8]}) {ended}, what was imported before is unchanged: "
        if record["status"] == "complete":
            if str(record.get("message") or "").startswith(note):  # this tick died before its email
                tell_clinic(notifier, record, failed_run=run.run_id, reason=message)
            tell_clinic(notifier, record)  # the run may have died between the status and the email
            return f"import {import_id} is complete: not downgraded"
        if record.get("completedAt"):  # a failed re-sync: the import stays complete, the message says so
            record = imports.update_import(int(import_id), status="complete", message=(note + message)[:4000])
        elif record["status"] != "failed":  # a re-evaluated tick finds it failed already
            if record["status"] == "submitted":
                imports.update_import(int(import_id), status="running")  # failed is reached from running only
            record = imports.update_import(int(import_id), status="failed", message=message[:4000])
    tell_clinic(notifier, record, failed_run=run.run_id, reason=message)
    return f"import {import_id} marked {record['status']} with the run's own message"


# -- telling the clinic -----------------------------------------------------------------------------


def outcome_key(record: dict, failed_run: str | None) -> str:
    """One email per outcome: a failed run once; a completion once per set of items needing attention.

    A re-sync that completes with nothing new to report finds its email already sent and sends none; one
    that finds new problems (a different list) sends one.
    """
    if failed_run:
        return f"failed-{failed_run}"
    attention = (record.get("counts") or {}).get(ATTENTION) or []
    if not attention:
        return "complete"
    return "complete-" + hashlib.sha256("\n".join(attention).encode()).hexdigest()[:16]


def tell_clinic(
    notifier: NotifierResource, record: dict, *, failed_run: str | None = None, reason: str | None = None
) -> bool:
    """Email the clinic this outcome of its import, unless it was told already; True when sent now."""
    tenant = str(record["workspaceId"])
    counts = record.get("counts") or {}
    attention = counts.get(ATTENTION) or []
    if failed_run and record.get("completedAt"):
        subject = "Your Cliniko sync needs attention"
        opening = (
            "The latest sync of your Cliniko data did not finish. What was imported before is unchanged in "
            f"Splose; our team has been told.\n\nWhat went wrong:\n{reason}"
        )
    elif failed_run:
        subject = "Your Cliniko import needs attention"
        opening = f"Your import {record['id']} from Cliniko did not finish.\n\nWhat went wrong:\n{reason}"
    elif attention:
        subject = f"Your Cliniko import is complete: {len(attention)} item(s) need your attention"
        opening = f"Your import {record['id']} from Cliniko is complete, with warnings.\n\n{record.get('message')}"
    else:
        subject = "Your Cliniko import is complete"
        opening = f"Your import {record['id']} from Cliniko is complete.\n\n{record.get('message')}"
    table = counts_table(counts.get(ROWS) or {})
    undo = ""
    if record.get("deleteDeadline") and not failed_run:
        undo = f"\n\nYou can undo this import from Splose until {record['deleteDeadline']}."
    body = f"{opening}\n\n{table}\n\n{LEFT_BEHIND}{undo}"
    return notifier.send_once(
        tenant=tenant, import_id=int(record["id"]), outcome=outcome_key(record, failed_run), subject=subject, body=body
    )


def counts_table(rows: dict[str, dict]) -> str:
    """The reconciliation a person reads, one line per row of the mission's table."""
    lines = [
        "| row | Cliniko | loaded | skipped (by reason) | rejected |",
        "|---|---:|---:|---|---:|",
    ]
    for row in rows.values():
        reasons = row.get("skippedByReason") or {}
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())) or "0"
        lines.append(f"| {row['row']} | {row['cliniko']} | {row['loaded']} | {skipped} | {row['rejected']} |")
    return "\n".join(lines)
