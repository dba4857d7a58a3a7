"""Each step's stdout and stderr kept for the UI and echoed to the run's output, with no helper process:
real file descriptors in a process of its own, a real multiprocess run on the embedded default, its webserver."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import dagster as dg
import requests

from cliniko_assets.compute_logs import MirroredComputeLogManager
from sandbox.dagster_server import dagster_server
from tests.conftest import PROJECT

CAPTURED_LOGS = "query Logs($logKey: [String!]!) { capturedLogs(logKey: $logKey) { stdout stderr } }"
CAPTURE = """
import json, os, sys, threading
import psutil
from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager
from cliniko_assets.compute_logs import MirroredComputeLogManager

manager = {"mirrored": MirroredComputeLogManager, "dagster": LocalComputeLogManager}[sys.argv[1]](base_dir=sys.argv[2])
key = ["run", "compute_logs", "step"]
with manager.capture_logs(key):
    print("printed to stdout", flush=True)
    os.write(1, b"written to fd 1\\n")
    print("printed to stderr", file=sys.stderr, flush=True)
    helpers = [" ".join(p.cmdline()) for p in psutil.Process().children(recursive=True)]
    threads = [t.name for t in threading.enumerate()]
print("after the capture", flush=True)
data = manager.get_log_data(key)
with open(sys.argv[3], "w") as out:
    json.dump({"helpers": helpers, "threads": threads, "complete": manager.is_capture_complete(key),
               "stdout": data.stdout.decode(), "stderr": data.stderr.decode()}, out)
"""


def capture(kind: str, tmp_path) -> tuple[subprocess.CompletedProcess, dict]:
    result = tmp_path / f"{kind}.json"
    process = subprocess.run(
        [sys.executable, "-c", CAPTURE, kind, str(tmp_path / kind), str(result)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert process.returncode == 0, process.stderr
    return process, json.loads(result.read_text())


def test_a_step_s_output_is_kept_and_echoed_by_a_thread_with_no_helper_process(tmp_path):
    process, found = capture("mirrored", tmp_path)

    assert found["helpers"] == []
    assert "compute-log-mirror" in found["threads"]
    assert found["stdout"] == "printed to stdout\nwritten to fd 1\n"  # what the UI shows
    assert found["stderr"] == "printed to stderr\n"
    assert found["complete"] is True
    assert process.stdout == "printed to stdout\nwritten to fd 1\nafter the capture\n"  # echoed, in order
    assert process.stderr == "printed to stderr\n"


def test_dagster_s_own_manager_starts_helper_processes_for_the_same_capture(tmp_path):
    """What the mirrored manager saves: Dagster's starts a ``tail`` and a watcher per stream, every step."""
    _, found = capture("dagster", tmp_path)

    assert len([cmd for cmd in found["helpers"] if cmd.startswith("tail -F")]) == 2
    assert len([cmd for cmd in found["helpers"] if "watch_orphans" in cmd]) == 2
    assert found["stdout"] == "printed to stdout\nwritten to fd 1\n"


@dg.op
def speaks() -> None:
    print("a line a step printed")


@dg.job(executor_def=dg.multiprocess_executor)
def speaking_job() -> None:
    speaks()


def test_the_embedded_default_keeps_a_multiprocess_step_s_output_where_dagster_keeps_it(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(PROJECT / "dagster.local.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        manager = instance.compute_log_manager
        assert isinstance(manager, MirroredComputeLogManager)
        assert manager._base_dir == str(home / "storage")  # Dagster's default place

        with dg.execute_job(dg.reconstructable(speaking_job), instance=instance) as result:
            assert result.success
            captured = [
                e.dagster_event.logs_captured_data
                for e in instance.all_logs(result.run_id)
                if e.dagster_event and e.dagster_event.event_type_value == "LOGS_CAPTURED"
            ]
        assert len(captured) == 1
        log_key = [result.run_id, "compute_logs", captured[0].file_key]
        data = manager.get_log_data(log_key)
        assert data.stdout.decode() == "a line a step printed\n"
        assert "STEP_START" in data.stderr.decode()  # the step's own log lines

    with dagster_server(home) as server:  # what the step's stdout and stderr tabs ask the webserver
        response = requests.post(
            f"{server.url}/graphql",
            json={"query": CAPTURED_LOGS, "variables": {"logKey": log_key}},
            timeout=60,
        )
    logs = response.json()["data"]["capturedLogs"]
    assert logs["stdout"] == "a line a step printed\n" and "STEP_START" in logs["stderr"]
