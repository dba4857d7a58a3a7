"""Dead and stuck runs are noticed: a run worker that died, and a run that waits in the queue too long.

Dagster's run monitoring (``run_monitoring`` in both instance configs) fails a run whose worker is gone,
but only for run launchers that can check a worker's health; the default launcher (one subprocess per
run on the code server's host) cannot. :class:`LocalProcessRunLauncher` is that launcher plus the check:
the worker's pid, which Dagster records when the run starts, must still be a live process started before
that event. Once monitoring marks the run failed, the ``import_failed`` sensor marks the import failed.

Dagster has no limit on how long a run may stay queued; :func:`stale_queued_runs` fails import runs
queued for longer than ``QUEUE_TIMEOUT_SECONDS`` with a message that says why and what to do.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.launcher.default_run_launcher import DefaultRunLauncher

QUEUE_TIMEOUT_SECONDS = int(os.environ.get("IMPORT_QUEUE_TIMEOUT_SECONDS", 4 * 3600))
WORKER_STARTED = "Started process for run (pid: "
# A pid recorded by a run may since belong to another process: it must have started by then.
START_TOLERANCE_SECONDS = 5.0


class LocalProcessRunLauncher(DefaultRunLauncher):
    """The default run launcher, with the worker health check that Dagster's run monitoring needs."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        started = _worker_start(self._instance, run.run_id)
        if started is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run worker has not reported its process yet")
        pid, at = started
        if _process_alive_since(pid, at):
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run worker process (pid {pid}) is gone: it was killed or crashed (for example out of memory). "
            "Re-run the tenant: the extraction resumes from its checkpoints and the loads are idempotent.",
        )


def _worker_start(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The pid and time of the latest 'Started process for run' event of the run."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, ascending=False, limit=50
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or not (event.message or "").startswith(WORKER_STARTED):
            continue
        pid = getattr(event.engine_event_data.metadata.get("pid"), "value", None)
        if isinstance(pid, str) and pid.isdigit():
            return int(pid), record.event_log_entry.timestamp
    return None


def _process_alive_since(pid: int, at: float) -> bool:
    """Whether ``pid`` is a live process (not a zombie) that started no later than ``at``."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    if fields[0] == "Z":
        return False
    boot = _boot_time()
    started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return started <= at + START_TOLERANCE_SECONDS


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


@dg.sensor(minimum_interval_seconds=120, default_status=dg.DefaultSensorStatus.RUNNING)
def stale_queued_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """Fails runs queued longer than the queue timeout, so the import they were for does not wait forever."""
    cutoff = time.time() - QUEUE_TIMEOUT_SECONDS
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED], created_before=_utc(cutoff))
    )
    for record in records:
        run = record.dagster_run
        tenant = run.tags.get("dagster/partition", "(no tenant)")
        context.instance.report_run_failed(
            run,
            f"The run for tenant '{tenant}' waited more than {QUEUE_TIMEOUT_SECONDS // 60} minutes in the run "
            "queue without starting (every slot was taken, or another run of the tenant held its slot). "
            "Check the runs in progress, then launch the tenant again.",
        )
    return dg.SkipReason(f"failed {len(records)} run(s) queued too long" if records else "no run queued too long")


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)
