"""What an extraction leaves behind: nothing secret or personal outside staging; resumable when killed."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import pytest
from dagster._serdes import serialize_value

from sandbox.admin import ClinikoSandboxAdmin
from sandbox.harness import running_server
from splose_resources.staging import StagingStore
from tests.conftest import PROJECT, RESOURCES, Clinic, materializations


def test_no_key_patient_name_or_birth_date_in_anything_the_runs_logged_or_recorded(
    clinic, instance, monkeypatch, capfd, caplog
):
    assert clinic.extract(instance).success
    clinic.admin.mutate(clinic.account, seed=9, updates=5, creates=2, archives=2, deletes=2)
    assert clinic.extract(instance).success
    clinic.use_key("receptionist", monkeypatch)
    assert not clinic.extract(instance, raise_on_error=False).success  # errors are scanned too

    recorded = []
    for run in instance.get_runs():
        recorded.append(serialize_value(run))  # run config and tags
        recorded.extend(serialize_value(entry) for entry in instance.all_logs(run.run_id))
    out, err = capfd.readouterr()
    everything = "\n".join([*recorded, out, err, caplog.text])

    secrets = set(clinic.keys.values())
    secrets |= {key.rsplit("-", 1)[0] for key in secrets}
    secrets |= {base64.b64encode(f"{key}:".encode()).decode() for key in secrets}
    assert not [s for s in secrets if s in everything], "a Cliniko key was logged or recorded"

    patients = list(clinic.admin.export(clinic.account, "patients"))
    names = {p[f] for p in patients for f in ("first_name", "last_name") if len(p.get(f) or "") >= 4}
    births = {p["date_of_birth"] for p in patients if p.get("date_of_birth") and p["date_of_birth"] < "2010"}
    assert len(names) > 20 and len(births) > 10
    leaked_names = sum(name in everything for name in names)
    leaked_births = sum(birth in everything for birth in births)
    assert (leaked_names, leaked_births) == (0, 0), "patient data reached logs or metadata (counts only shown)"
    assert len(everything) > 10_000  # the scan saw the runs' real output


KILLED_RUN = textwrap.dedent(
    """
    import sys
    import dagster as dg
    from cliniko_assets.extract import ExtractionSettings
    from cliniko_assets.file_step import EXTRACTION, EXTRACTION_ASSETS
    from cliniko_assets.mapping import ImportRequestResource
    from cliniko_assets.definitions import cliniko_resource
    from splose_resources.splose import SploseResource
    from splose_resources.staging import StagingStore

    home, tenant, staging = sys.argv[1:4]
    with dg.DagsterInstance.from_config(home) as instance:
        dg.materialize(EXTRACTION_ASSETS, selection=EXTRACTION, instance=instance, partition_key=tenant,
                       resources={"cliniko": cliniko_resource(), "staging": StagingStore(uri=staging),
                                  "extraction": ExtractionSettings(),
                                  "splose": SploseResource(),
                                  "import_request": ImportRequestResource(local_development=True)})
    """
)


def kill_mid_extraction(
    home, tenant: str, staging_uri: str, started, timeout: float, poll: float = 0.02, **popen
) -> None:
    """Run :data:`KILLED_RUN` for ``tenant`` and SIGKILL it once ``started()`` says it staged a page."""
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(home), tenant, staging_uri],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **popen,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not started():
        time.sleep(poll)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert started(), "the killed run never staged a page"


@contextmanager
def _extracted_once(tmp_path, monkeypatch, account: str, *options: str) -> Iterator[tuple]:
    """A tiny clinic served at 700 ms a request as ``account`` (the sandbox's account ``options``), extracted once
    in full as tenant ``baseline``: yields its admin, the Dagster home, the baseline's materializations and the
    tenant ``resumed`` of the same account, not yet extracted."""
    args = ["--account", f"{account}:4:tiny:au1", *options, "--latency-ms", "700", "--jitter-ms", "0"]
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with running_server("sandbox.cliniko", [*args, "--data-dir", str(tmp_path)], log_dir=tmp_path) as server:
        admin = ClinikoSandboxAdmin(server.url)
        monkeypatch.setenv("CLINIKO_API_URL", f"{server.url}/v1")
        monkeypatch.setenv("RATE_LIMIT_STATE_DIR", str(tmp_path / "rate"))
        staging = StagingStore(uri=str(tmp_path / "staging"))
        baseline = Clinic(admin, account, "baseline", staging, monkeypatch)
        clinic = Clinic(admin, account, "resumed", staging, monkeypatch)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions("tenants", ["baseline", "resumed"])
            full = materializations(baseline.extract(instance))
        yield admin, home, full, clinic


def test_a_killed_extraction_resumes_without_refetching_what_it_staged(tmp_path, monkeypatch):
    with _extracted_once(tmp_path, monkeypatch, "slow") as (admin, home, full, clinic):
        resource = tmp_path / "staging" / "resumed" / "cliniko" / "individual_appointments"
        checkpoint = resource / "incoming" / "checkpoint.json"
        kill_mid_extraction(
            home,
            "resumed",
            str(tmp_path / "staging"),
            lambda: _started(checkpoint),
            60,
            cwd=PROJECT,
            env={**os.environ},
        )

        with dg.DagsterInstance.from_config(str(home)) as instance:
            resumed = materializations(clinic.extract(instance))
        truth = {r: {s: n for s, n in c.items() if n} for r, c in admin.truth("slow").items()}
        staged = {resource: clinic.staged_states(resource) for resource in RESOURCES}

    assert staged == truth
    assert resumed["individual_appointments"]["mode"] == "resumed"
    assert resumed["individual_appointments"]["requests"] < full["individual_appointments"]["requests"]
    assert resumed["individual_appointments"]["records"] == full["individual_appointments"]["records"]


def _started(checkpoint) -> bool:
    try:
        state = json.loads(checkpoint.read_text())["streams"]["main"]
    except (OSError, ValueError, KeyError):
        return False
    return state["windows"] is not None and not state["complete"]


@pytest.mark.slow  # a variant of the kill above (its own server, 700 ms a request): with the slow suites
def test_a_killed_listing_per_practitioner_resumes_with_the_practitioners_left(tmp_path, monkeypatch):
    """On an account listing reference numbers per practitioner only (Cliniko's older docs), a run killed between
    two practitioners' routes resumes with those it had not listed, and stages every reference number."""
    with _extracted_once(tmp_path, monkeypatch, "older", "--nested-reference-numbers", "older") as found:
        admin, home, full, clinic = found
        full = full["practitioner_reference_numbers"]
        resource = tmp_path / "staging" / "resumed" / "cliniko" / "practitioner_reference_numbers"
        checkpoint = resource / "incoming" / "checkpoint.json"
        kill_mid_extraction(
            home, "resumed", str(tmp_path / "staging"), lambda: _between_parents(checkpoint), 90, cwd=PROJECT
        )
        parents = list(json.loads(checkpoint.read_text())["streams"]["main"]["nested"])

        with dg.DagsterInstance.from_config(str(home)) as instance:
            resumed = materializations(clinic.extract(instance))["practitioner_reference_numbers"]
        truth = {s: n for s, n in admin.truth("older")["practitioner_reference_numbers"].items() if n}
        staged = clinic.staged_states("practitioner_reference_numbers")

    assert staged == truth and len(parents) > 1
    assert resumed["mode"] == "resumed" and full["mode"] == "full"
    assert resumed["requests"] < full["requests"], (resumed["requests"], full["requests"])
    assert resumed["old_routes"]["/practitioner_reference_numbers"].startswith("absent (404): listed from")


def _between_parents(checkpoint) -> bool:
    """The listing per practitioner has listed some practitioners' routes and not others."""
    try:
        nested = json.loads(checkpoint.read_text())["streams"]["main"]["nested"]
    except (OSError, ValueError, KeyError):
        return False
    done = [sub["complete"] for sub in nested.values()]
    return any(done) and not all(done)


def test_an_interrupted_extraction_gives_up_its_waits_and_retries_at_once(clinic):
    """Dagster interrupts a step (a cancel, a Ctrl-C) in its main thread, while the extraction's worker threads
    wait on Cliniko: here every request fails and is retried with a backoff growing to 30 s. The threads give
    up at once rather than finish their retries (minutes), and nothing more is sent to Cliniko."""
    from cliniko_assets.catalog import CATALOG
    from cliniko_assets.extraction import Extraction
    from splose_resources.cliniko import ClinikoResource
    from splose_resources.http import Secret

    attempts, ticks = 8, []

    def interrupt() -> None:  # called from the caller's thread every 2 s, as Dagster's interrupt arrives there
        ticks.append(time.monotonic())
        if len(ticks) == 2:
            raise KeyboardInterrupt

    clinic.admin.configure(faults={"error_rate": 1.0}, fault_seed=1)
    try:
        with ClinikoResource(max_attempts=attempts).client(clinic.tenant, Secret(clinic.keys["admin"])) as client:
            extraction = Extraction(client, clinic.staging, clinic.tenant, workers=4)
            extraction.on_tick = interrupt
            with pytest.raises(KeyboardInterrupt):
                list(extraction.run(list(CATALOG), {}))
            sent = clinic.admin.requests_by_route(clinic.account)
            time.sleep(2)
            assert clinic.admin.requests_by_route(clinic.account) == sent
    finally:
        clinic.admin.clear_faults()
    # Without the stop, each request on its way (one per resource at first) would have been tried ``attempts``
    # times before the run could end.
    assert len(sent) >= len(CATALOG) and 0 < max(sent.values()) < attempts, dict(sent)
