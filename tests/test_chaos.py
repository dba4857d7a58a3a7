"""Chaos: SIGKILL the import run and the sensors at the worst moments, then let the daemon's machinery settle it.

Each scenario runs the import (or a sensor evaluation) in a child process on a real on-disk Dagster instance,
with both sandboxes on loopback, and kills it with SIGKILL at a named point: right after the import-request
tick has decided its runs, mid-extraction, mid-load, between marking the import complete and writing the
email, and between the failure sensor's status update and its email. Then, as the daemon would, the dead run
is marked failed (run monitoring) and the run-failure sensor is evaluated; support runs the import again.
Every scenario ends with exact counts, no duplicates in Splose, a truthful status and one email per outcome.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import dagster as dg
import pytest
import yaml

from cliniko_assets.partitions import tenants
from cliniko_assets.sensors import import_requests, run_config_for
from tests.conftest import PROJECT, embedded_instance_config, splose_from_env
from tests.test_import import Import, splose_sandbox  # noqa: F401 (the module's Splose sandbox)
from tests.test_import_resilience import _assert_every_row_reconciles, _assert_splose_holds_what_was_loaded, _rows
from tests.test_trust import read_email, settle

pytestmark = pytest.mark.slow

# The child: one import run or one sensor evaluation, killed by SIGKILL at the named point.
CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    import dagster as dg
    from cliniko_assets.definitions import defs, splose_resource
    from splose_resources.notifier import NotifierResource
    from splose_resources.splose import SploseImportClient
    from splose_resources.staging import StagingBatch, StagingStore

    home, tenant, staging, outbox, run_config, point = sys.argv[1:7]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def after(cls, name, when):
        original = getattr(cls, name)
        def patched(self, *args, **kwargs):
            result = original(self, *args, **kwargs)
            if when(*args, **kwargs):
                die()
            return result
        setattr(cls, name, patched)

    saves = []
    if point == "mid-extraction":  # the third checkpoint of any resource is staged, then the process dies
        after(StagingBatch, "save_checkpoint", lambda *a, **k: saves.append(1) or len(saves) == 3)
    if point == "mid-load":  # the clients are in Splose, appointments and the rest are not
        after(SploseImportClient, "upsert", lambda import_id, entity, *a, **k: entity == "clients")
    if point in ("between-complete-and-email", "failure-sensor-before-email"):
        NotifierResource.send_once = lambda self, **kwargs: die()

    resources = {"splose": splose_resource(), "notifier": NotifierResource(outbox=outbox)}
    with dg.DagsterInstance.from_config(home) as instance:
        if point == "import-requests-tick":
            from cliniko_assets.sensors import import_requests
            result = import_requests(dg.build_sensor_context(instance=instance, resources=resources))
            assert result.run_requests  # the tick decided to launch; it dies before the launch
            die()
        if point == "failure-sensor-before-email":
            from tests.test_trust import settle
            settle(instance, run_config, outbox)  # here: the failed run's id
        defs.resolve_job_def("import_job").execute_in_process(
            instance=instance,
            partition_key=tenant,
            run_config=json.loads(run_config),
            resources={"staging": StagingStore(uri=staging), "notifier": NotifierResource(outbox=outbox)},
        )
    """
)


class Chaos:
    """A tiny clinic's import on an on-disk instance, and children that die."""

    def __init__(self, tiny: Import, home) -> None:
        self.tiny = tiny
        self.home = home
        home.mkdir()
        (home / "dagster.yaml").write_text(yaml.safe_dump(embedded_instance_config()))  # as `make demo` runs
        with self.instance() as instance:
            instance.add_dynamic_partitions(tenants.name, [tiny.clinic.tenant])

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def kill_at(self, point: str, argument: str = "{}") -> None:
        clinic = self.tiny.clinic
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                CHILD,
                str(self.home),
                clinic.tenant,
                clinic.staging.uri,
                str(self.tiny.outbox),
                argument,
                point,
            ],
            cwd=PROJECT,
            env={**os.environ},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=300,
        )
        assert child.returncode == -signal.SIGKILL, f"the child was not killed at {point} ({child.returncode})"

    def dead_run(self) -> str:
        """Run monitoring finds the killed run's process gone and marks the run failed; returns its id."""
        with self.instance() as instance:
            (run,) = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
            instance.report_run_failed(run, "The run worker process exited unexpectedly (SIGKILL).")
            return run.run_id

    def settle(self, run_id: str) -> None:
        with self.instance() as instance:
            settle(instance, run_id, self.tiny.outbox)

    def run_again(self, request: dict) -> dict[str, dict]:
        with self.instance() as instance:
            result = self.tiny.run(instance, request)
        rows = _rows(result)
        _assert_every_row_reconciles(result, rows)
        _assert_splose_holds_what_was_loaded(self.tiny, rows)
        return rows

    def emails(self) -> dict[str, str]:
        return {path.name: read_email(path) for path in sorted(self.tiny.outbox.glob("*.eml"))}

    def status(self, request: dict) -> dict:
        return self.tiny.status(request["id"])


@pytest.fixture
def chaos(clinic, splose_sandbox, tmp_path, monkeypatch) -> Chaos:
    return Chaos(Import(clinic, splose_sandbox.url, tmp_path, monkeypatch), tmp_path / "home")


def test_a_tick_killed_after_deciding_its_run_leaves_the_import_submitted_and_the_next_tick_launches_it(chaos):
    request = chaos.tiny.submit()

    chaos.kill_at("import-requests-tick")

    assert chaos.status(request)["status"] == "submitted"  # never running without a run
    with chaos.instance() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"splose": splose_from_env()})
        (run_request,) = import_requests(context).run_requests
    assert run_request.run_config == run_config_for(request)
    chaos.run_again(request)
    assert chaos.status(request)["status"] == "complete"
    assert list(chaos.emails()) == [f"import-{request['id']}-complete.eml"]


@pytest.mark.parametrize("point", ["mid-extraction", "mid-load"])
def test_a_run_killed_midway_is_marked_failed_with_a_message_and_a_second_run_completes_exactly(chaos, point):
    request = chaos.tiny.submit()

    chaos.kill_at(point, json.dumps(run_config_for(request)))

    assert chaos.status(request)["status"] == "running"  # the run had started
    dead = chaos.dead_run()
    chaos.settle(dead)
    chaos.settle(dead)  # evaluated again: nothing changes, nothing is sent twice
    failed = chaos.status(request)
    assert failed["status"] == "failed"
    assert failed["message"].startswith(f"The import run of tenant '{chaos.tiny.clinic.tenant}' stopped before")
    assert "Error occurred" not in failed["message"]

    rows = chaos.run_again(request)

    assert chaos.status(request)["status"] == "complete"
    if point == "mid-load":  # what the dead run wrote is found again, not written twice
        assert rows["clients"]["created"] == 0 and rows["clients"]["unchanged"] > 0
    emails = chaos.emails()
    assert list(emails) == [f"import-{request['id']}-complete.eml", f"import-{request['id']}-failed-{dead}.eml"]
    assert "needs attention" in emails[f"import-{request['id']}-failed-{dead}.eml"]


def test_a_run_killed_between_complete_and_the_email_stays_complete_and_the_clinic_is_told_once(chaos):
    request = chaos.tiny.submit()

    chaos.kill_at("between-complete-and-email", json.dumps(run_config_for(request)))

    assert chaos.status(request)["status"] == "complete"
    assert chaos.emails() == {}
    dead = chaos.dead_run()
    chaos.settle(dead)  # the failure sensor finds it complete: not downgraded, and the email is sent
    chaos.settle(dead)
    assert chaos.status(request)["status"] == "complete"
    assert list(chaos.emails()) == [f"import-{request['id']}-complete.eml"]

    chaos.run_again(request)  # support runs it again anyway

    assert chaos.status(request)["status"] == "complete"
    assert list(chaos.emails()) == [f"import-{request['id']}-complete.eml"]


def test_a_failure_sensor_killed_before_its_email_sends_it_once_when_evaluated_again(chaos):
    request = chaos.tiny.submit()
    chaos.kill_at("mid-load", json.dumps(run_config_for(request)))
    dead = chaos.dead_run()

    chaos.kill_at("failure-sensor-before-email", dead)

    assert chaos.status(request)["status"] == "failed"
    assert chaos.emails() == {}
    chaos.settle(dead)  # the daemon evaluates the failure again: its cursor never moved past the dead tick
    assert chaos.status(request)["status"] == "failed"
    assert list(chaos.emails()) == [f"import-{request['id']}-failed-{dead}.eml"]
