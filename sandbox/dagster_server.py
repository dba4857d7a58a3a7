"""A real Dagster webserver (and, when asked, the daemon) on loopback, for the CLI and UI tests and the UI tour."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from cliniko_assets.cli_graphql import Dagster
from sandbox.harness import stop_process_group

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SENSOR = """
query Sensor($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) { __typename ... on Sensor { id } }
}"""
STOP_SENSOR = """
mutation Stop($id: String) {
  stopSensor(id: $id) { __typename ... on StopSensorMutationResult { instigationState { status } } }
}"""


@dataclass
class DagsterServer:
    url: str
    home: Path
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def dagster_server(home: Path, *, daemon: bool = False, env: dict[str, str] | None = None) -> Iterator[DagsterServer]:
    """``dagster dev`` (webserver + daemon) or the webserver alone, with ``home`` as DAGSTER_HOME.

    ``home`` gets the embedded default's instance config unless it already has one.
    """
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(PROJECT / "dagster.local.yaml", home / "dagster.yaml")
    port = free_port()
    where = ["-w", str(PROJECT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]
    command = [str(BIN / "dagster"), "dev", *where] if daemon else [str(BIN / "dagster-webserver"), *where]
    log = home / f"dagster-{port}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            cwd=PROJECT,
            env={**os.environ, **(env or {}), "DAGSTER_HOME": str(home)},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_loaded(url, process, log)
        yield DagsterServer(url=url, home=home, log=log)
    finally:
        stop_process_group(process, grace=60)


def stop_sensor(url: str, name: str) -> None:
    """Stop a sensor as its switch in the UI does (so that only what a caller launches runs)."""
    dagster = Dagster.connect(url)
    selector = {"repositoryName": dagster.repository, "repositoryLocationName": dagster.location, "sensorName": name}
    sensor = dagster.query(SENSOR, selector=selector)["sensorOrError"]
    if sensor["__typename"] != "Sensor":
        raise RuntimeError(f"No sensor {name} on {url}: {sensor}")
    stopped = dagster.query(STOP_SENSOR, id=sensor["id"])["stopSensor"]
    if stopped.get("instigationState", {}).get("status") != "STOPPED":
        raise RuntimeError(f"Sensor {name} on {url} did not stop: {stopped}")


def _wait_until_loaded(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Dagster exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            body = requests.post(f"{url}/graphql", json={"query": query}, timeout=5).json()
            entries = body["data"]["workspaceOrError"]["locationEntries"]
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                return
        except (requests.RequestException, KeyError, TypeError, ValueError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"Dagster did not load the code location in {timeout:.0f}s:\n{log.read_text()[-3000:]}")
