"""Many clinics at once against one pair of sandboxes, imported by the Dagster daemon on the production instance.

A :class:`Fleet` is one Cliniko sandbox holding one account per tenant (each its own key, so its own
200-per-minute budget) and one Splose sandbox (one platform token, so one import API budget for all),
with every tenant's Splose workspace set up and its import request submitted, as clinics do from
Splose's import button. :func:`daemon` runs ``dagster-daemon`` on an instance folder with the
production ``dagster.yaml`` (Postgres storage, the queued run coordinator: one run per tenant, a global
cap); its import-request sensor launches one run per request. Used by ``tests/test_many_tenants.py`` and
``bench/tenants.py``; never imported by the pipeline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import requests

from sandbox import postgres
from sandbox.admin import ClinikoSandboxAdmin
from sandbox.demo import submit_import
from sandbox.harness import ServerProcess, running_server, stop_process_group
from sandbox.local import PROJECT
from splose_resources.splose import SploseResource

FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass
class Tenant:
    name: str
    scale: str
    account: str
    import_id: int = 0


@dataclass
class Fleet:
    cliniko: ServerProcess
    splose: ServerProcess
    token: str
    tenants: list[Tenant] = field(default_factory=list)

    @property
    def admin(self) -> ClinikoSandboxAdmin:
        return ClinikoSandboxAdmin(self.cliniko.url)

    def environment(self) -> dict[str, str]:
        """What the code location reads, pointed at the sandboxes."""
        return {
            "CLINIKO_API_URL": f"{self.cliniko.url}/{{shard}}/v1",
            "SPLOSE_API_URL": f"{self.splose.url}/v1",
            "SPLOSE_PLATFORM_TOKEN": self.token,
        }

    def submit_all(self) -> None:
        for tenant in self.tenants:
            tenant.import_id = submit_import(self.admin, tenant.account, self.splose.url, tenant.name)

    def import_record(self, tenant: Tenant) -> dict:
        splose = SploseResource(api_url=f"{self.splose.url}/v1", platform_token=self.token)
        with splose.imports(workspace_id=tenant.name) as imports:
            return imports.get_import(tenant.import_id)

    def dump(self, tenant: Tenant, table: str) -> list[dict]:
        response = requests.get(f"{self.splose.url}/_sandbox/workspaces/{tenant.name}/dump/{table}", timeout=60)
        response.raise_for_status()
        return response.json()["data"]

    def cliniko_stats(self) -> dict[str, dict]:
        """Per tenant: the sandbox's counts for its key (requests, 429s, requests per window)."""
        keys = self.admin.stats()["keys"]
        return {tenant.name: keys.get(f"{tenant.account}/admin", {}) for tenant in self.tenants}

    def splose_stats(self) -> dict:
        """The platform token's counts in the Splose sandbox (requests, 429s, peak in any window)."""
        response = requests.get(f"{self.splose.url}/_sandbox/stats", timeout=60)
        response.raise_for_status()
        return response.json()["keys"].get("platform", {})


@contextmanager
def fleet(scales: dict[str, str], workdir: Path, token: str) -> Iterator[Fleet]:
    """Both sandboxes, one Cliniko account per tenant (``scales``: tenant -> tiny/small/large)."""
    with ExitStack() as stack:
        cliniko = stack.enter_context(
            running_server("sandbox.cliniko", ["--data-dir", str(workdir / "cliniko")], log_dir=workdir)
        )
        splose = stack.enter_context(
            running_server(
                "sandbox.splose", [f"--platform-token={token}", "--db", str(workdir / "splose.db")], log_dir=workdir
            )
        )
        pool = Fleet(cliniko, splose, token)
        for seed, (name, scale) in enumerate(sorted(scales.items()), start=11):
            account = name.replace("-", "")
            pool.admin.create_account(account, seed=seed, scale=scale)
            pool.tenants.append(Tenant(name, scale, account))
        yield pool


def production_home(home: Path, database: str) -> dict[str, str]:
    """An instance folder with the production ``dagster.yaml`` on a fresh database of the machine's Postgres;
    returns the environment that points Dagster and the shared rate limits at it."""
    postgres.ensure_running()
    postgres.create_database(database)
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROJECT / "dagster.yaml", home / "dagster.yaml")
    url = f"postgresql://{postgres.USER}@{postgres.HOST}:{postgres.PORT}/{database}"
    return {**postgres.instance_environment(database), "DAGSTER_HOME": str(home), "SHARED_STATE_POSTGRES_URL": url}


@contextmanager
def daemon(home: Path, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    """``dagster-daemon run`` (sensors, the run queue, run monitoring) on ``home``; stopped on exit."""
    command = [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(PROJECT / "workspace.yaml")]
    with open(home / "daemon.log", "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        stop_process_group(process)


def wait_for_imports(instance: dg.DagsterInstance, pool: Fleet, timeout: float) -> dict[str, dg.DagsterRun]:
    """Each tenant's import run, once every one has finished (launched by the daemon from its request)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = {}
        for tenant in pool.tenants:
            found = instance.get_runs(dg.RunsFilter(tags={"splose/import_id": str(tenant.import_id)}), limit=1)
            if found:
                runs[tenant.name] = found[0]
        if len(runs) == len(pool.tenants) and all(run.status in FINISHED for run in runs.values()):
            return runs
        time.sleep(2)
    raise TimeoutError(f"The imports did not all finish in {timeout:.0f}s.")


def run_window(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[float, float]:
    """When a run started and ended (epoch seconds), from the instance's run records."""
    record = instance.get_run_record_by_id(run.run_id)
    return record.start_time or 0.0, record.end_time or 0.0
