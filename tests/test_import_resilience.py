"""The import under stress: killed mid-load and run again, every v1 response checked against the spec, a small clinic.

Real servers on loopback, real Dagster instances. Assertions compare counts and ids only, so a failure never
prints patient data.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import dagster as dg
import pytest

from cliniko_assets.definitions import cliniko_resource, defs, splose_resource
from cliniko_assets.partitions import tenants
from cliniko_assets.rows import ROWS
from cliniko_assets.sensors import run_config_for
from sandbox.admin import ClinikoSandboxAdmin
from sandbox.harness import running_server
from splose_resources.notifier import NotifierResource
from splose_resources.staging import StagingStore
from tests.conftest import PROJECT, Clinic, materializations
from tests.splose_sandbox.openapi_contract import read_records, violations
from tests.test_import import TOKEN, Import

# Splose tables the import writes, each keyed by the Cliniko id it came from.
IMPORTED_TABLES = (
    "contacts",
    "clients",
    "appointments",
    "availability",
    "providerNumbers",
    "progressNoteTemplates",
    "progressNotes",
    "files",
)

KILLED_IMPORT = textwrap.dedent(
    """
    import json
    import sys
    import dagster as dg
    from cliniko_assets.definitions import cliniko_resource, defs, splose_resource
    from splose_resources.notifier import NotifierResource
    from splose_resources.staging import StagingStore

    home, tenant, staging, outbox, run_config = sys.argv[1:6]
    with dg.DagsterInstance.from_config(home) as instance:
        defs.resolve_job_def("import_job").execute_in_process(
            instance=instance,
            partition_key=tenant,
            run_config=json.loads(run_config),
            resources={"staging": StagingStore(uri=staging), "notifier": NotifierResource(outbox=outbox)},
        )
    """
)


def _splose(tmp_path, name: str, extra: list[str]):
    workdir = tmp_path / name
    workdir.mkdir()
    args = ["--platform-token", TOKEN, "--db", str(workdir / "splose.db"), *extra]
    return running_server("sandbox.splose", args, log_dir=workdir)


def _rows(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Every row of the reconciliation a run reported, attendees included."""
    found = materializations(result)
    rows = {name: found[name] for name in ROWS if name in found}
    group = found.get("group_appointments", {})
    rows["attendees"] = {k.removeprefix("attendees_"): v for k, v in group.items() if k.startswith("attendees_")}
    return rows


def _assert_every_row_reconciles(result: dg.ExecuteInProcessResult, rows: dict[str, dict]) -> None:
    assert result.success
    assert set(rows) == set(ROWS)
    unaccounted = {name: row["unaccounted"] for name, row in rows.items() if row["unaccounted"] != 0}
    assert unaccounted == {}
    for name, row in rows.items():
        assert row["cliniko"] == row["loaded"] + row["skipped"] + row["rejected"], name
    checks = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    reconciled = {c.asset_key.path[-1] for c in checks if c.check_name == "reconciled" and c.passed}
    # Attendees are reported with their group appointments; the clients found by id are a row's part.
    assert reconciled == set(ROWS) - {"attendees"} | {"referenced_clients"}
    assert [c.check_name for c in checks if not c.passed] == []


def _assert_splose_holds_what_was_loaded(tiny: Import, rows: dict[str, dict]) -> dict[str, int]:
    """Splose holds exactly the loaded records, each Cliniko record once; returns the table sizes."""
    dumps = {table: tiny.dump(table) for table in IMPORTED_TABLES}
    duplicated = {
        table: sum(n - 1 for n in Counter(r["externalId"] for r in records).values() if n > 1)
        for table, records in dumps.items()
    }
    assert duplicated == dict.fromkeys(IMPORTED_TABLES, 0), "records imported more than once (counts per table)"
    assert sum(r["externalId"] is None for records in dumps.values() for r in records) == 0
    sizes = {table: len(records) for table, records in dumps.items()}
    expected = {
        "contacts": rows["contacts"]["loaded"],
        "clients": rows["clients"]["loaded"],
        "appointments": rows["appointments"]["loaded"] + rows["group_appointments"]["loaded"],
        "providerNumbers": rows["provider_numbers"]["loaded"],
        "progressNoteTemplates": rows["progress_note_templates"]["loaded"],
        "progressNotes": rows["progress_notes"]["loaded"],
        "files": rows["files"]["loaded"],
    }
    assert {table: sizes[table] for table in expected} == expected
    # Availability is one Splose row per range, so a Cliniko availability may hold several.
    assert sizes["availability"] >= rows["availability"]["loaded"] > 0

    truth = tiny.clinic.truth()
    live = {
        resource: sum(n for state, n in truth[resource].items() if state != "deleted")
        for resource in ("patients", "treatment_notes")
    }
    assert sizes["clients"] == live["patients"] > 0
    assert sizes["progressNotes"] == live["treatment_notes"] > 0
    assert sizes["contacts"] == sum(truth["contacts"].values()) > 0
    client_ids = {c["id"] for c in dumps["clients"]}
    dangling = sum(
        entry["patientId"] not in client_ids
        for a in dumps["appointments"]
        for entry in a["data"]["appointmentPatients"]
    )
    assert dangling == 0
    return sizes


def test_killing_a_load_midway_and_running_again_ends_exact_without_duplicates(clinic, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # 150 ms per Splose call makes the load take seconds, so the kill lands inside it.
    with _splose(tmp_path, "splose", ["--latency-ms", "150"]) as splose:
        tiny = Import(clinic, splose.url, tmp_path, monkeypatch)
        request = tiny.submit()
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions(tenants.name, [clinic.tenant])

        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                KILLED_IMPORT,
                str(home),
                clinic.tenant,
                clinic.staging.uri,
                str(tiny.outbox),
                json.dumps(run_config_for(request)),
            ],
            cwd=PROJECT,
            env={**os.environ},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 180
            clients_at_kill = 0
            while time.monotonic() < deadline and child.poll() is None:
                clients_at_kill = len(tiny.dump("clients"))
                if clients_at_kill:
                    break
                time.sleep(0.05)
            child.send_signal(signal.SIGKILL)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
        assert child.returncode == -signal.SIGKILL, "the import finished or failed before it could be killed"
        assert clients_at_kill > 0, "the killed run never wrote a client to Splose"
        assert tiny.status(request["id"])["status"] != "complete"
        partial = {table: len(tiny.dump(table)) for table in IMPORTED_TABLES}
        assert not tiny.outbox.exists() or not list(tiny.outbox.iterdir())

        with dg.DagsterInstance.from_config(str(home)) as instance:
            result = tiny.run(instance, request)
        rows = _rows(result)

        _assert_every_row_reconciles(result, rows)
        sizes = _assert_splose_holds_what_was_loaded(tiny, rows)
        # The killed run really left the load unfinished, and the second run did not create again what it wrote.
        assert sum(partial.values()) < sum(sizes.values())
        assert rows["clients"]["created"] == sizes["clients"] - partial["clients"]
        assert rows["clients"]["unchanged"] + rows["clients"]["updated"] == partial["clients"]
        assert tiny.status(request["id"])["status"] == "complete"
        (email,) = tiny.outbox.iterdir()
        assert "complete" in email.read_text()


def test_every_v1_response_the_import_saw_matches_the_published_spec(clinic, instance, tmp_path, monkeypatch):
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    with _splose(tmp_path, "splose", ["--record-v1", str(recorded / "v1.ndjson")]) as splose:
        tiny = Import(clinic, splose.url, tmp_path, monkeypatch)
        request = tiny.submit()
        result = tiny.run(instance, request)
        assert result.success
        assert tiny.status(request["id"])["status"] == "complete"

    records = read_records(recorded)
    answered = Counter((r["method"], r["path_template"]) for r in records if r["status"] == 200)
    # The mapping step reads every location, practitioner and service of the workspace through v1.
    assert {("GET", "/locations"), ("GET", "/practitioners"), ("GET", "/services")} <= set(answered)
    assert sum(len(r["body"]["data"]) for r in records if r["status"] == 200 and "data" in (r["body"] or {})) > 0
    problems = [problem for record in records for problem in violations(record)]
    assert not problems, f"{len(problems)} violation(s) in {len(records)} responses:\n" + "\n".join(problems[:200])


@pytest.mark.slow
def test_a_small_clinic_imports_end_to_end(tmp_path, monkeypatch):
    cliniko_args = [
        "--account",
        "small:3:small:au1",
        "--latency-ms",
        "0",
        "--jitter-ms",
        "0",
        "--rate-limit",
        "2000",
        "--rate-window",
        "60",
        "--data-dir",
        str(tmp_path / "cliniko"),
    ]
    splose_args = ["--import-rate-limit", "6000", "--v1-rate-limit", "600"]
    with (
        running_server("sandbox.cliniko", cliniko_args, log_dir=tmp_path / "cliniko") as cliniko,
        _splose(tmp_path, "splose", splose_args) as splose,
    ):
        monkeypatch.setenv("CLINIKO_API_URL", f"{cliniko.url}/v1")
        monkeypatch.setenv("RATE_LIMIT_STATE_DIR", str(tmp_path / "rate"))
        staging = StagingStore(uri=str(tmp_path / "staging"))
        clinic = Clinic(ClinikoSandboxAdmin(cliniko.url), "small", "small-clinic", staging, monkeypatch)
        small = Import(clinic, splose.url, tmp_path, monkeypatch)
        request = small.submit()
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(tenants.name, [clinic.tenant])
            result = defs.resolve_job_def("import_job").execute_in_process(
                instance=instance,
                partition_key=clinic.tenant,
                run_config=run_config_for(request),
                resources={
                    "staging": staging,
                    "notifier": NotifierResource(outbox=str(small.outbox)),
                    "cliniko": cliniko_resource(requests_per_window=2000),
                    "splose": splose_resource(import_requests_per_window=6000, v1_requests_per_window=600),
                },
            )
        rows = _rows(result)

        _assert_every_row_reconciles(result, rows)
        truth = clinic.truth()
        assert rows["clients"]["cliniko"] == sum(truth["patients"].values()) >= 1000
        assert rows["appointments"]["cliniko"] == sum(truth["individual_appointments"].values()) >= 9000
        sizes = _assert_splose_holds_what_was_loaded(small, rows)
        assert sizes["appointments"] > 9000
        assert small.status(request["id"])["status"] == "complete"
        # Nothing was turned away: a small clinic's data all fits Splose.
        assert {name: row["rejected"] for name, row in rows.items() if row["rejected"]} == {}
