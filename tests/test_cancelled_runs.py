"""A cancelled import run settles its import as a failed one does: the request is never left ``running``
(which refuses the clinic's next import request) and a completed import is never downgraded. Real sandboxes,
a real Dagster instance; the run is cancelled through the instance, as the UI and the CLI cancel it."""

from __future__ import annotations

import dagster as dg
import requests

from cliniko_assets.definitions import defs
from cliniko_assets.lifecycle import IMPORT_ID_TAG, PARTITION_TAG
from cliniko_assets.sensors import import_cancelled, run_config_for
from splose_resources.notifier import NotifierResource
from tests.conftest import splose_from_env
from tests.test_import import splose_sandbox, tiny_import  # noqa: F401 (fixtures)


def cancel_a_run_of(tiny_import, instance, request: dict) -> dg.DagsterRun:
    """A run of the import, as the sensor launches it, that had marked the import running and is cancelled."""
    with splose_from_env().imports() as imports:
        if imports.get_import(int(request["id"]))["status"] != "running":
            imports.update_import(int(request["id"]), status="running")  # as the run's first step does
    run = instance.create_run_for_job(
        job_def=defs.resolve_job_def("import_job"),
        run_config=run_config_for(request),
        tags={PARTITION_TAG: tiny_import.clinic.tenant, IMPORT_ID_TAG: str(request["id"])},
    )
    instance.report_run_canceling(run)
    instance.report_run_canceled(run)
    return instance.get_run_by_id(run.run_id)


def settle(tiny_import, instance, run: dg.DagsterRun) -> None:
    (event,) = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_CANCELED).records
    import_cancelled(
        dg.build_run_status_sensor_context(
            sensor_name="import_cancelled",
            dagster_event=event.event_log_entry.dagster_event,
            dagster_instance=instance,
            dagster_run=run,
            resources={"splose": splose_from_env(), "notifier": NotifierResource(outbox=str(tiny_import.outbox))},
        )
    )


def test_a_cancelled_first_import_is_failed_saying_so_and_the_clinic_can_submit_again(tiny_import, instance):
    request = tiny_import.submit()
    run = cancel_a_run_of(tiny_import, instance, request)

    settle(tiny_import, instance, run)

    status = tiny_import.status(int(request["id"]))
    assert status["status"] == "failed"
    assert "was cancelled before it finished" in status["message"] and run.run_id[:8] in status["message"]
    assert tiny_import.submit()["status"] == "submitted"  # no longer refused as "still running"
    (email,) = tiny_import.outbox.iterdir()
    assert "cancelled" in email.read_text()


def test_a_cancelled_resync_leaves_a_completed_import_complete_saying_the_sync_did_not_finish(tiny_import, instance):
    request = tiny_import.submit()
    assert tiny_import.run(instance, request).success
    run = cancel_a_run_of(tiny_import, instance, request)

    settle(tiny_import, instance, run)

    status = tiny_import.status(int(request["id"]))
    assert status["status"] == "complete"
    assert status["message"].startswith(
        f"Complete; the latest sync (run {run.run_id[:8]}) was cancelled, what was imported before is unchanged: "
    )
    assert "was cancelled before it finished" in status["message"]
    response = requests.post(
        f"{tiny_import.url}/v1/imports",
        headers={"Authorization": f"Bearer {tiny_import.workspace['key']}"},
        json={"source": "cliniko", "clinikoApiKey": tiny_import.clinic.keys["admin"], "mapping": tiny_import.mapping},
    )
    assert response.status_code == 201
