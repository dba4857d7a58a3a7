"""The run process of an import killed under a real daemon: run monitoring fails the run, never `running`.

``dagster dev`` runs the daemon with the embedded default's instance config: run monitoring polls every
30 seconds with the launcher's worker health check (the code server that spawned the worker usually
notices first), and run retries relaunch a run whose worker died once. The import-request sensor
launches the import; its run worker is killed with SIGKILL as soon as it has reported its pid. Within
the monitoring interval the run is failed with the reason, and the import ends `complete` through the
retry (or `failed` if the retry failed too), never `running`.
"""

from __future__ import annotations

import os
import signal
import time

import dagster as dg
import pytest

from cliniko_assets.monitoring import _worker_start
from sandbox.dagster_server import dagster_server
from tests.test_import import Import, splose_sandbox  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

POLL_INTERVAL_SECONDS = 30
# The daemon's own loop and the worker start add a little to the monitoring interval.
MARGIN_SECONDS = 60


def wait_for(what: str, check, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s")


def import_runs(instance: dg.DagsterInstance, tenant: str) -> list[dg.DagsterRun]:
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": tenant}))
    return sorted((run for run in runs if run.job_name == "import_job"), key=lambda run: run.run_id)


def test_a_killed_import_run_is_failed_by_monitoring_and_its_import_never_stays_running(
    clinic, splose_sandbox, tmp_path, monkeypatch
):
    imp = Import(clinic, splose_sandbox.url, tmp_path, monkeypatch)
    home = tmp_path / "dagster-home"
    with dagster_server(home, daemon=True) as server:
        import_id = imp.submit()["id"]
        with dg.DagsterInstance.from_config(str(home)) as instance:
            run = wait_for("the sensor's import run", lambda: import_runs(instance, clinic.tenant), 240)[0]
            pid, _ = wait_for("the run worker's pid", lambda: _worker_start(instance, run.run_id), 240, every=0.1)
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()

            def failed() -> dg.DagsterRun | None:
                latest = instance.get_run_by_id(run.run_id)
                return latest if latest.status == dg.DagsterRunStatus.FAILURE else None

            wait_for("the killed run marked failed", failed, POLL_INTERVAL_SECONDS + MARGIN_SECONDS)
            took = time.monotonic() - killed_at
            messages = [
                record.event_log_entry.message or "" for record in instance.get_records_for_run(run.run_id).records
            ]
            # Whichever notices first says why: the code server that spawned the worker, or run monitoring.
            explained = [m for m in messages if "signal 9" in m or (f"pid {pid}" in m and "Re-run the tenant" in m)]
            assert explained, [m for m in messages if "pid" in m or "fail" in m.lower()]

            def settled() -> dict | None:
                status = imp.status(import_id)
                runs = import_runs(instance, clinic.tenant)
                done = all(r.status in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE) for r in runs)
                return status if done and status["status"] in ("complete", "failed") else None

            final = wait_for("the import settled", settled, 600, every=2)
            runs = import_runs(instance, clinic.tenant)
    assert took <= POLL_INTERVAL_SECONDS + MARGIN_SECONDS, server.log
    retried = [r for r in runs if r.tags.get("dagster/parent_run_id") == run.run_id]
    assert len(retried) == 1, [(r.run_id, r.status, r.tags) for r in runs]
    if retried[0].status == dg.DagsterRunStatus.SUCCESS:
        assert final["status"] == "complete"
        truth = clinic.truth()
        assert len(imp.dump("clients")) == sum(n for state, n in truth["patients"].items() if state != "deleted")
    else:
        assert final["status"] == "failed"
