"""Dead run workers and runs stuck in the queue are noticed (run monitoring's health check, queue timeout)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import dagster as dg
import pytest
import yaml
from dagster._core.events import EngineEventData
from dagster._core.launcher import WorkerStatus
from dagster._core.test_utils import in_process_test_workspace
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

from cliniko_assets import monitoring
from cliniko_assets.definitions import defs
from cliniko_assets.monitoring import LocalProcessRunLauncher, stale_queued_runs
from tests.conftest import PROJECT

LAUNCHER = {"module": "cliniko_assets.monitoring", "class": "LocalProcessRunLauncher"}


@pytest.mark.parametrize("config", ["dagster.yaml", "dagster.local.yaml"])
def test_both_instance_configs_monitor_runs_with_a_health_checking_launcher(config):
    settings = yaml.safe_load((PROJECT / config).read_text())
    assert settings["run_launcher"] == LAUNCHER
    assert settings["run_monitoring"]["enabled"] is True
    assert settings["run_monitoring"]["poll_interval_seconds"] <= 60
    assert settings["run_retries"] == {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}


@pytest.fixture
def instance():
    with dg.instance_for_test(overrides={"run_launcher": LAUNCHER}) as instance:
        yield instance


def _started_run(instance: dg.DagsterInstance, pid: int) -> dg.DagsterRun:
    run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job(), run_id=None)
    instance.report_engine_event(f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid))
    return run


def test_a_live_worker_is_running_and_a_killed_one_is_failed(instance):
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        launcher = instance.run_launcher
        assert isinstance(launcher, LocalProcessRunLauncher)
        run = _started_run(instance, worker.pid)
        assert launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
        worker.kill()
        worker.wait()
        result = launcher.check_run_worker_health(run)
        assert result.status == WorkerStatus.FAILED
        assert f"pid {worker.pid}" in result.msg and "Re-run the tenant" in result.msg
    finally:
        worker.kill()


def test_a_pid_reused_by_a_younger_process_is_not_the_worker():
    # This process is alive, but it is not a worker that started an hour ago under the same pid.
    assert monitoring._process_alive_since(os.getpid(), time.time()) is True
    assert monitoring._process_alive_since(os.getpid(), time.time() - 3600) is False


def test_a_run_without_a_worker_yet_is_unknown(instance):
    run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job(), run_id=None)
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.UNKNOWN


def _queued_import_run(instance: dg.DagsterInstance, tenant: str) -> dg.DagsterRun:
    """A run of import_job queued as the queued run coordinator leaves it (from the real code location)."""
    origin = LoadableTargetOrigin(module_name="cliniko_assets.definitions", attribute="defs")
    with in_process_test_workspace(instance, origin) as workspace:
        (location,) = workspace.code_locations
        remote_job = location.get_repository("__repository__").get_full_job("import_job")
        return instance.create_run_for_job(
            defs.resolve_job_def("import_job"),
            status=dg.DagsterRunStatus.QUEUED,
            tags={"dagster/partition": tenant},
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
        )


def test_a_run_queued_past_the_timeout_is_failed_with_a_message(instance, monkeypatch):
    # The code location's settings, as the process that creates a run has them (nothing is contacted).
    for name, value in (("CLINIKO_API_URL", "http://127.0.0.1:9/v1"), ("SPLOSE_API_URL", "http://127.0.0.1:9/v1")):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SPLOSE_PLATFORM_TOKEN", "unused")
    stuck = _queued_import_run(instance, tenant="clinic-9")

    assert stale_queued_runs(dg.build_sensor_context(instance=instance)).skip_message == "no run queued too long"
    assert instance.get_run_by_id(stuck.run_id).status == dg.DagsterRunStatus.QUEUED

    monkeypatch.setattr(monitoring, "QUEUE_TIMEOUT_SECONDS", 0)
    time.sleep(0.01)
    assert stale_queued_runs(dg.build_sensor_context(instance=instance)).skip_message == (
        "failed 1 run(s) queued too long"
    )
    assert instance.get_run_by_id(stuck.run_id).status == dg.DagsterRunStatus.FAILURE
    (failure,) = instance.get_records_for_run(stuck.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records
    message = failure.event_log_entry.dagster_event.message
    assert "tenant 'clinic-9' waited more than 0 minutes in the run queue" in message
