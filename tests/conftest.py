"""Shared fixtures: a real Cliniko sandbox on loopback, a real Dagster instance, private staging."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import zlib
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

# The session opens a Dagster instance hundreds of times, and Dagster's SQLite storages read every migration
# script of theirs each time; loaded here, as a run's fork server loads it for its steps, they are read once.
import cliniko_assets.preload  # noqa: F401
from cliniko_assets.catalog import CATALOG
from cliniko_assets.definitions import cliniko_resource, splose_resource
from cliniko_assets.extract import ExtractionSettings
from cliniko_assets.file_step import EXTRACTION, EXTRACTION_ASSETS
from cliniko_assets.mapping import ImportRequestResource
from cliniko_assets.partitions import tenants
from sandbox.admin import ClinikoSandboxAdmin
from sandbox.harness import running_server
from sandbox.local import tenant_key_variable
from splose_resources.cliniko import ClinikoResource
from splose_resources.splose import SploseResource
from splose_resources.staging import StagingStore

_accounts = itertools.count(1)

# Every Splose sandbox started in this session records its v1 responses here; the last test of the
# session checks them all against the published spec. A process the session starts that imports this module
# again inherits the folder rather than making one of its own (only the session removes it).
RECORD_V1_VARIABLE = "SPLOSE_SANDBOX_RECORD_V1_DIR"
_V1_RECORDINGS_MADE_HERE = not os.environ.get(RECORD_V1_VARIABLE)
V1_RECORDINGS = Path(os.environ.get(RECORD_V1_VARIABLE) or tempfile.mkdtemp(prefix="splose-v1-"))
os.environ[RECORD_V1_VARIABLE] = str(V1_RECORDINGS)
SESSION_CONTRACT_TEST = "test_every_v1_response_of_the_session_matches_the_published_spec"


# The default suite's longest tests (half a minute or more each with four workers on two cores), started
# first (in the first worker's first batch), so that no worker is left running one of them after the rest end.
LONGEST_FIRST = frozenset(
    {
        "test_an_account_without_older_routes_that_refuses_undocumented_filters_is_imported_and_what_it_hides_reported",
        "test_a_killed_extraction_resumes_without_refetching_what_it_staged",
        "test_killing_a_load_midway_and_running_again_ends_exact_without_duplicates",
        "test_each_module_of_the_resources_and_each_entry_point_imports_first_in_a_fresh_interpreter",
    }
)


def pytest_collection_modifyitems(items):
    """The longest tests run first; the session-wide contract test runs last, after every other test has talked
    to Splose."""
    items.sort(key=lambda item: (item.name == SESSION_CONTRACT_TEST, item.name not in LONGEST_FIRST))


def pytest_sessionfinish(session, exitstatus):
    """Under pytest-xdist, the session's controller checks every worker's v1 recordings against the published spec
    once all have finished (the contract test is skipped on the workers), failing the session on a breach. The
    session's recordings are removed with it (a test run leaves nothing behind in the temp folder); a folder given
    in the environment is the caller's and stays."""
    if getattr(session.config.option, "numprocesses", None) and not hasattr(session.config, "workerinput"):
        from tests.splose_sandbox.openapi_contract import read_records, rule_breaches

        records = read_records(V1_RECORDINGS)
        problems = rule_breaches(records)
        said = [f"{len(records)} v1 responses of the session checked against the published spec"]
        if problems:
            said += [f"{len(problems)} ways v1 responses break the spec:", *problems[:50]]
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write("\n")
            for number, line in enumerate(said):
                reporter.write_line(line, red=number > 0)
    if _V1_RECORDINGS_MADE_HERE:
        shutil.rmtree(V1_RECORDINGS, ignore_errors=True)


# Local development runs: the extraction reads the key from CLINIKO_API_KEY__<TENANT> and Splose is never asked.
LOCAL_KEY_RESOURCES = {"splose": SploseResource(), "import_request": ImportRequestResource(local_development=True)}


def initialized(resource: dg.ConfigurableResource):
    """``resource`` with its config processed (environment variables read now), for use outside a run: as
    ``process_config_and_initialize`` gives it, with the throwaway instance Dagster opens for its init context
    closed again (left open, its in-memory database is finalized at the interpreter's exit, and SQLAlchemy
    prints "Cannot operate on a closed database"). The project's resources keep nothing to tear down."""
    with resource.process_config_and_initialize_cm() as value:
        return value


def splose_from_env(**settings) -> SploseResource:
    """The code location's Splose resource with its environment variables read now, for use outside a run."""
    return initialized(splose_resource(**settings))


@pytest.fixture(scope="session")
def cliniko_sandbox(tmp_path_factory):
    """One Cliniko sandbox for the session; each test makes its own account in it."""
    workdir = tmp_path_factory.mktemp("cliniko-sandbox")
    with running_server(
        "sandbox.cliniko",
        ["--account", "base:7:tiny:au1", "--latency-ms", "0", "--jitter-ms", "0", "--data-dir", str(workdir)],
        log_dir=workdir,
    ) as server:
        yield server


@pytest.fixture(scope="session")
def sandbox_admin(cliniko_sandbox) -> ClinikoSandboxAdmin:
    return ClinikoSandboxAdmin(cliniko_sandbox.url)


class Clinic:
    """A tenant wired to its own sandbox account, with helpers to run and inspect its extraction."""

    def __init__(self, admin: ClinikoSandboxAdmin, account: str, tenant: str, staging: StagingStore, monkeypatch):
        self.admin = admin
        self.account = account
        self.tenant = tenant
        self.staging = staging
        self.keys = admin.keys(account)
        self.use_key("admin", monkeypatch)

    def use_key(self, role: str, monkeypatch) -> None:
        monkeypatch.setenv(tenant_key_variable(self.tenant), self.keys[role])

    def extract(
        self,
        instance,
        *,
        cliniko: ClinikoResource | None = None,
        run_config: dict | None = None,
        selection: list[str] | None = None,
        raise_on_error: bool = True,
    ) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            EXTRACTION_ASSETS,
            selection=[f"cliniko/{name}" for name in selection] if selection else EXTRACTION,
            instance=instance,
            partition_key=self.tenant,
            resources={
                "cliniko": cliniko or cliniko_resource(),
                "extraction": ExtractionSettings(),
                "staging": self.staging,
                **LOCAL_KEY_RESOURCES,
            },
            run_config=run_config,
            raise_on_error=raise_on_error,
        )

    def staged_states(self, resource: str) -> dict[str, int]:
        return dict(Counter(self.staging.read_index(self.tenant, resource)["state"]))

    def staged_records(self, resource: str) -> dict[str, dict]:
        records = {}
        for batch in self.staging.iter_records(self.tenant, resource):
            for record in batch:
                state = record.pop("_state")
                record.pop("_source")
                records[str(record.get("id") or record["links"]["self"].rsplit("/", 1)[-1])] = (state, record)
        return records

    def truth(self) -> dict[str, dict[str, int]]:
        return {
            resource: {s: n for s, n in counts.items() if n}
            for resource, counts in self.admin.truth(self.account).items()
        }

    def export(self, resource: str) -> dict[str, dict]:
        return {str(record["id"]): record for record in self.admin.export(self.account, resource)}


@pytest.fixture
def clinic(request, sandbox_admin, cliniko_sandbox, tmp_path, monkeypatch) -> Clinic:
    """A fresh tiny clinic (its own sandbox account and tenant) with private staging.

    Its seed is the test's own (from its id, one of 64 clinics), not the order tests ran in: a test meets
    the same clinic whichever worker runs it, after whichever tests."""
    number = next(_accounts)
    account = f"clinic{number}"
    seed = 101 + zlib.crc32(request.node.nodeid.encode()) % 64
    sandbox_admin.create_account(account, seed=seed, scale="tiny")
    monkeypatch.setenv("CLINIKO_API_URL", f"{cliniko_sandbox.url}/v1")
    monkeypatch.setenv("RATE_LIMIT_STATE_DIR", str(tmp_path / "rate"))
    staging = StagingStore(uri=str(tmp_path / "staging"))
    return Clinic(sandbox_admin, account, f"clinic-{number}", staging, monkeypatch)


def other_account(clinic: Clinic, instance, monkeypatch, name: str, **options) -> Clinic:
    """A second account of the same generated clinic (same seed) with account ``options``, its own tenant."""
    seed = clinic.admin.describe(clinic.account)["seed"]
    clinic.admin.create_account(f"{clinic.account}{name}", seed=seed, scale="tiny", **options)
    other = Clinic(clinic.admin, f"{clinic.account}{name}", f"{clinic.tenant}-{name}", clinic.staging, monkeypatch)
    instance.add_dynamic_partitions("tenants", [other.tenant])
    return other


@pytest.fixture
def instance(clinic):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(tenants.name, [clinic.tenant])
        yield instance


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """Asset key -> metadata values of every materialization in a run."""
    found = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            found[materialization.asset_key.path[-1]] = {
                k: getattr(v, "value", v) for k, v in materialization.metadata.items()
            }
    return found


RESOURCES = [spec.name for spec in CATALOG]
PROJECT = Path(__file__).resolve().parent.parent


def embedded_instance_config() -> dict:
    """An instance config on the embedded default's instance class (``dagster.local.yaml``: its SQLite
    storage, connections kept open), telemetry off: a test's home stores its runs as ``make demo``'s does."""
    import yaml

    local = yaml.safe_load((PROJECT / "dagster.local.yaml").read_text())
    return {"instance_class": local["instance_class"], "telemetry": {"enabled": False}}
