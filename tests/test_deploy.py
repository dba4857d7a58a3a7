"""Deploying past one machine, checked as far as this machine allows.

The Helm values name only keys of Dagster's official chart (``deploy/helm/chart-facts.yaml``, taken from the
chart's values schema) and carry the same run queue, monitoring and storage settings as ``dagster.yaml``; the
production instance config loads as ``dagster instance info`` loads it; the Dockerfile builds the code location
that the values and ``workspace.yaml`` name.
"""

from __future__ import annotations

import shlex
import shutil
import tomllib
import uuid

import dagster as dg
import pytest
import yaml

from sandbox import postgres
from tests.conftest import PROJECT

VALUES = yaml.safe_load((PROJECT / "deploy/helm/values.yaml").read_text())
FACTS = yaml.safe_load((PROJECT / "deploy/helm/chart-facts.yaml").read_text())
INSTANCE = yaml.safe_load((PROJECT / "dagster.yaml").read_text())
# What the code location reads from the environment (cliniko_assets/definitions.py), and which are secrets.
SETTINGS = {"CLINIKO_API_URL", "SPLOSE_API_URL", "STAGING_URI", "SMTP_HOST", "SMTP_PORT", "AWS_REGION"}
SECRETS = {"SPLOSE_PLATFORM_TOKEN", "SHARED_STATE_POSTGRES_URL", "SMTP_USERNAME", "SMTP_PASSWORD"}


def key_paths(node, path: str = "") -> list[tuple[str, str, object]]:
    """(parent path, key, value) for every mapping key, lists marked ``[]`` as chart-facts.yaml marks them."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append((path, key, value))
            found.extend(key_paths(value, f"{path}.{key}" if path else key))
    elif isinstance(node, list):
        for item in node:
            found.extend(key_paths(item, f"{path}[]"))
    return found


def test_the_helm_values_name_only_keys_of_the_chart():
    checked = 0
    for parent, key, value in key_paths(VALUES):
        if parent in FACTS["keys"]:
            assert key in FACTS["keys"][parent], f"{parent}.{key} is not a key of the chart"
            checked += 1
        path = f"{parent}.{key}" if parent else key
        if path in FACTS["enums"]:
            assert value in FACTS["enums"][path], f"{path}: {value!r}"
    assert checked >= 40
    # A known path whose parent is listed is itself checked, so a typo one level down cannot hide.
    listed_parents = {parent for parent, _, _ in key_paths(VALUES) if parent in FACTS["keys"]}
    assert {"", "dagsterDaemon.runCoordinator.config.queuedRunCoordinator", "runLauncher.config.k8sRunLauncher"} <= (
        listed_parents
    )
    assert FACTS["source"]["repository"] == "dagster-io/dagster" and len(FACTS["source"]["schema_commit"]) == 40


def test_a_misspelt_key_would_be_caught():
    wrong = {"dagsterDaemon": {"runCoordinator": {"config": {"queuedRunCoordinator": {"maxConcurentRuns": 5}}}}}
    parent, key, _ = key_paths(wrong)[-1]
    assert key not in FACTS["keys"][parent]


def test_the_helm_values_carry_the_production_instance_settings():
    daemon = VALUES["dagsterDaemon"]
    queue = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    runs = INSTANCE["concurrency"]["runs"]
    assert queue["maxConcurrentRuns"] == runs["max_concurrent_runs"]
    assert queue["tagConcurrencyLimits"] == runs["tag_concurrency_limits"]
    monitoring = INSTANCE["run_monitoring"]
    assert daemon["runMonitoring"] == {
        "enabled": monitoring["enabled"],
        "startTimeoutSeconds": monitoring["start_timeout_seconds"],
        "pollIntervalSeconds": monitoring["poll_interval_seconds"],
    }
    assert daemon["runRetries"] == {"enabled": True, "maxRetries": INSTANCE["run_retries"]["max_retries"]}
    assert VALUES["postgresql"]["postgresqlScheme"] == INSTANCE["storage"]["postgres"]["postgres_db"]["scheme"]
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    assert VALUES["telemetry"]["enabled"] == INSTANCE["telemetry"]["enabled"]


def test_the_code_location_gets_its_settings_in_clear_and_its_secrets_from_a_secret():
    (deployment,) = VALUES["dagster-user-deployments"]["deployments"]
    assert set(deployment["env"]) <= SETTINGS
    assert not set(deployment["env"]) & SECRETS
    assert deployment["env"]["STAGING_URI"].startswith("s3://")
    assert deployment["envSecrets"] == VALUES["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    text = (PROJECT / "deploy/helm/values.yaml").read_text()
    for secret in SECRETS:
        assert secret in text  # named in the header, as what the Secret must hold
    assert "postgresqlPassword" not in VALUES["postgresql"]


def test_the_dockerfile_builds_the_code_location_the_values_name():
    lines = [line.strip() for line in (PROJECT / "Dockerfile").read_text().splitlines() if line.strip()]
    instructions = [line for line in lines if not line.startswith("#")]
    base = next(line for line in instructions if line.startswith("FROM "))
    assert base.startswith("FROM python:3.1") and int(base.split(":")[1].split(".")[1].split("-")[0]) >= 11
    copied = " ".join(line for line in instructions if line.startswith("COPY "))
    assert "cliniko_assets" in copied and "splose_resources" in copied
    assert "sandbox" not in copied and "tests" not in copied and "bench" not in copied
    assert any("pip install '.[deploy]'" in line for line in instructions)
    user = next(line for line in instructions if line.startswith("USER "))
    assert user.split()[1] not in ("root", "0")

    (deployment,) = VALUES["dagster-user-deployments"]["deployments"]
    exposed = next(line for line in instructions if line.startswith("EXPOSE "))
    assert int(exposed.split()[1]) == deployment["port"]
    command = yaml.safe_load(next(line for line in instructions if line.startswith("CMD ")).removeprefix("CMD "))
    workspace = yaml.safe_load((PROJECT / "workspace.yaml").read_text())["load_from"][0]["python_module"]
    module_args = ["-m", workspace["module_name"], "-a", workspace["attribute"]]
    assert command[:3] == ["dagster", "code-server", "start"] and shlex.join(module_args) in shlex.join(command)
    assert deployment["codeServerArgs"] == module_args


def test_the_image_extras_match_the_pinned_dagster_release():
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    pins = {dep.split("==")[0]: dep.split("==")[1] for dep in project["dependencies"] if "==" in dep}
    extras = {dep.split("==")[0]: dep.split("==")[1] for dep in project["optional-dependencies"]["deploy"]}
    assert set(extras) == {"dagster-k8s", "dagster-aws"}
    assert set(extras.values()) == {pins["dagster-postgres"]}  # libraries share one release line


@pytest.mark.postgres
def test_the_production_instance_config_loads_as_dagster_instance_info_does(tmp_path, monkeypatch):
    postgres.ensure_running()
    database = f"deploy_test_{uuid.uuid4().hex[:10]}"
    postgres.create_database(database)
    try:
        for variable, value in postgres.instance_environment(database).items():
            monkeypatch.setenv(variable, value)
        shutil.copyfile(PROJECT / "dagster.yaml", tmp_path / "dagster.yaml")
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            info = instance.info_str()
            schema = instance.schema_str()
            coordinator = type(instance.run_coordinator).__name__
    finally:
        postgres.drop_database(database)
    for part in ("PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage", "max_concurrent_runs: 20"):
        assert part in info, part
    assert coordinator == "QueuedRunCoordinator"
    assert "cliniko_assets.monitoring" in info
    assert "unused-with-trust-auth" not in info and "unused-with-trust-auth" not in schema
