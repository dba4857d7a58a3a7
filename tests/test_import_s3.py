"""Whole imports with staging on a real S3-protocol server: nothing a run needs is on the machine that launched it.

A tiny clinic imports, re-syncs and is purged with staging in a bucket (moto, server mode, on 127.0.0.1).
Then two clinics import at once, each run in its own process with its own working directory, ``TMPDIR`` and
instance home, sharing only Postgres and the S3 server (and the two APIs); a third process re-syncs one of
them from what Postgres and the bucket hold. Assertions compare counts, ids and keys only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from cliniko_assets.partitions import tenants
from cliniko_assets.sensors import run_config_for
from sandbox.admin import ClinikoSandboxAdmin
from sandbox.harness import running_server
from tests.conftest import PROJECT, RESOURCES, Clinic, materializations, splose_from_env
from tests.s3_server import s3_server, s3_staging  # noqa: F401 (fixtures)
from tests.test_extract_safety import kill_mid_extraction
from tests.test_import import Import, purge_deleted_imports, splose_sandbox, tiny_import  # noqa: F401 (fixtures)
from tests.test_import_resilience import _assert_every_row_reconciles, _assert_splose_holds_what_was_loaded, _rows
from tests.test_postgres_instance import postgres_database  # noqa: F401 (fixture)
from tests.test_trust import other_clinic

pytestmark = pytest.mark.slow


def _staged_here(folder: Path) -> list[str]:
    """Anything of staging left in a local folder: parquet, checkpoints, the mapping, row reports."""
    names = ("checkpoint", "mapping-", "report-", "group-entries-", "account", "files-failed")
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and (p.suffix == ".parquet" or p.name.startswith(names) or "staging" in p.parts)
    )


def test_a_tiny_clinic_imports_resyncs_and_is_purged_with_staging_on_s3(
    tiny_import, s3_staging, s3_server, instance, tmp_path
):
    store, bucket = s3_staging
    tiny_import.clinic.staging = store
    tenant = tiny_import.clinic.tenant
    request = tiny_import.submit()

    first = tiny_import.run(instance, request)

    rows = _rows(first)
    _assert_every_row_reconciles(first, rows)
    _assert_splose_holds_what_was_loaded(tiny_import, rows)
    exported = tiny_import.clinic.export("patient_attachments")
    files = tiny_import.dump("files")
    assert len(files) == rows["files"]["loaded"] > 0
    assert sum(f["data"]["sha256"] != exported[f["externalId"]]["_sha256"] for f in files) == 0
    keys = s3_server.keys(bucket)
    assert [k for k in keys if not k.startswith(f"staging/{tenant}/")] == []
    prefix = f"staging/{tenant}"
    assert f"{prefix}/cliniko/patients/data.parquet" in keys
    # The crosswalks the run read once and its steps' own writes live in the bucket, not on the machine.
    assert f"{prefix}/splose/crosswalk-{request['id']}-clients.parquet" in keys
    assert f"{prefix}/splose/written-{request['id']}-clients-by-clients.parquet" in keys
    # Every loaded file's bytes are in the bucket (an attachment the load skipped, e.g. of a client not
    # imported, may have its bytes staged too: staging holds what Cliniko has).
    staged_bytes = {k.rsplit("/", 1)[-1] for k in keys if k.startswith(f"{prefix}/cliniko/patient_attachments/files/")}
    assert {f["externalId"] for f in files} <= staged_bytes
    assert [k for k in keys if "/incoming/" in k or k.endswith(".lock")] == []  # every part committed
    assert _staged_here(tmp_path) == []

    resync = tiny_import.run(instance, request)

    again = _rows(resync)
    _assert_every_row_reconciles(resync, again)
    assert {name: (row["created"], row["updated"]) for name, row in again.items() if "created" in row} == {
        name: (0, 0) for name, row in again.items() if "created" in row
    }
    assert {materializations(resync)[name]["mode"] for name in ("patients", "individual_appointments")} == {
        "incremental"
    }
    assert len(tiny_import.dump("files")) == len(files)

    with splose_from_env().imports() as imports:
        imports.delete_import(request["id"])
    assert purge_deleted_imports(instance, store).success
    assert (s3_server.keys(bucket), s3_server.unfinished_uploads(bucket)) == ([], [])


# A run of the import job in a process of its own: its own working directory, TMPDIR and instance home
# (whose dagster.yaml points at the shared Postgres); staging from STAGING_URI, as the code location reads it.
RUN = textwrap.dedent(
    """
    import json, sys
    import dagster as dg
    from cliniko_assets.definitions import defs

    tenant, run_config = sys.argv[1:3]
    with dg.DagsterInstance.get() as instance:
        result = defs.resolve_job_def("import_job").execute_in_process(
            instance=instance, partition_key=tenant, run_config=json.loads(run_config), raise_on_error=False
        )
    print(json.dumps({"run_id": result.run_id}))
    """
)


class Machine:
    """Where one run happens: a working directory, a TMPDIR and an instance home nothing else uses."""

    def __init__(self, root: Path, bucket: str) -> None:
        self.root = root
        self.home, self.work, self.tmp = (root / "home", root / "work", root / "tmp")
        for folder in (self.home, self.work, self.tmp):
            folder.mkdir(parents=True)
        shutil.copyfile(PROJECT / "dagster.yaml", self.home / "dagster.yaml")
        shared = {k: v for k, v in os.environ.items() if k not in ("RATE_LIMIT_STATE_DIR", "DAGSTER_HOME")}
        self.env = {
            **shared,
            "DAGSTER_HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "STAGING_URI": f"s3://{bucket}/staging",
            "PYTHONPATH": str(PROJECT),
        }

    def start(self, tenant: str, request: dict) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-c", RUN, tenant, json.dumps(run_config_for(request))],
            cwd=self.work,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=(self.root / "run.log").open("wb"),
        )


def _finished(child: subprocess.Popen, instance: dg.DagsterInstance) -> SimpleNamespace:
    """The run a child made, read back from Postgres, shaped as the result helpers read it."""
    out, _ = child.communicate(timeout=900)
    assert child.returncode == 0
    run_id = json.loads(out.decode().strip().splitlines()[-1])["run_id"]
    run = instance.get_run_by_id(run_id)
    events = [entry.dagster_event for entry in instance.all_logs(run_id) if entry.dagster_event]
    return SimpleNamespace(success=run.status == dg.DagsterRunStatus.SUCCESS, all_events=events)


def test_two_clinics_import_at_once_from_separate_machines_sharing_only_postgres_and_s3(
    clinic, splose_sandbox, s3_staging, s3_server, postgres_database, tmp_path, monkeypatch
):
    _, bucket = s3_staging
    clinic_b = other_clinic(clinic, monkeypatch)
    imports = {c.tenant: Import(c, splose_sandbox.url, tmp_path / "tests", monkeypatch) for c in (clinic, clinic_b)}
    requests = {tenant: tiny.submit() for tenant, tiny in imports.items()}
    here = Machine(tmp_path / "launcher", bucket)
    monkeypatch.setenv("DAGSTER_HOME", str(here.home))
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(tenants.name, list(imports))
        machines = {tenant: Machine(tmp_path / f"machine-{tenant}", bucket) for tenant in imports}
        children = {tenant: machines[tenant].start(tenant, requests[tenant]) for tenant in imports}
        results = {tenant: _finished(child, instance) for tenant, child in children.items()}

        for tenant, tiny in imports.items():
            rows = _rows(results[tenant])
            _assert_every_row_reconciles(results[tenant], rows)
            _assert_splose_holds_what_was_loaded(tiny, rows)
            truth = tiny.clinic.truth()
            assert rows["clients"]["loaded"] == sum(n for s, n in truth["patients"].items() if s != "deleted")
            assert tiny.status(requests[tenant]["id"])["status"] == "complete"
            assert _staged_here(machines[tenant].root) == []
        keys = s3_server.keys(bucket)
        assert {k.split("/")[1] for k in keys} == set(imports)
        for tenant in imports:
            assert f"staging/{tenant}/cliniko/patients/data.parquet" in keys

        # A third machine re-syncs the first clinic from what Postgres (cursors) and the bucket (data) hold.
        third = Machine(tmp_path / "machine-resync", bucket)
        resync = _finished(third.start(clinic.tenant, requests[clinic.tenant]), instance)
        again = _rows(resync)
        _assert_every_row_reconciles(resync, again)
        changed = {name: (row["created"], row["updated"]) for name, row in again.items() if "created" in row}
        assert changed == dict.fromkeys(changed, (0, 0))
        assert materializations(resync)["patients"]["mode"] == "incremental"
        assert _staged_here(third.root) == []


def _mid_crawl(store) -> bool:
    """The run has staged a checkpoint of appointments in the bucket, and not finished them."""
    checkpoint = store.batch("resumed", "individual_appointments").load_checkpoint() or {}
    state = checkpoint.get("streams", {}).get("main")
    return bool(state) and state["windows"] is not None and not state["complete"]


def test_an_extraction_killed_mid_crawl_resumes_from_its_checkpoint_in_the_bucket(s3_staging, tmp_path, monkeypatch):
    store, _ = s3_staging
    args = ["--account", "slow:4:tiny:au1", "--latency-ms", "700", "--jitter-ms", "0", "--data-dir", str(tmp_path)]
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with running_server("sandbox.cliniko", args, log_dir=tmp_path) as server:
        admin = ClinikoSandboxAdmin(server.url)
        monkeypatch.setenv("CLINIKO_API_URL", f"{server.url}/v1")
        monkeypatch.setenv("RATE_LIMIT_STATE_DIR", str(tmp_path / "rate"))
        baseline = Clinic(admin, "slow", "baseline", store, monkeypatch)
        clinic = Clinic(admin, "slow", "resumed", store, monkeypatch)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.add_dynamic_partitions("tenants", ["baseline", "resumed"])
            full = materializations(baseline.extract(instance))

        kill_mid_extraction(
            home,
            "resumed",
            store.uri,
            lambda: _mid_crawl(store),
            120,
            poll=0.1,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(PROJECT)},
        )

        with dg.DagsterInstance.from_config(str(home)) as instance:
            resumed = materializations(clinic.extract(instance))
        truth = {r: {s: n for s, n in c.items() if n} for r, c in admin.truth("slow").items()}
        staged = {resource: clinic.staged_states(resource) for resource in RESOURCES}

    assert staged == truth
    assert resumed["individual_appointments"]["mode"] == "resumed"
    assert resumed["individual_appointments"]["requests"] < full["individual_appointments"]["requests"]
    assert _staged_here(tmp_path) == []
