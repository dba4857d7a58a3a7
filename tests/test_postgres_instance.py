"""The production instance (dagster.yaml) against the machine's real PostgreSQL."""

from __future__ import annotations

import shutil
import uuid

import dagster as dg
import pytest

from cliniko_assets.compute_logs import MirroredComputeLogManager
from cliniko_assets.monitoring import LocalProcessRunLauncher
from sandbox import postgres
from tests.conftest import PROJECT, materializations

pytestmark = pytest.mark.postgres


@pytest.fixture
def postgres_database(monkeypatch):
    postgres.ensure_running()
    name = f"cliniko_import_test_{uuid.uuid4().hex[:10]}"
    postgres.create_database(name)
    for variable, value in postgres.instance_environment(name).items():
        monkeypatch.setenv(variable, value)
    try:
        yield name
    finally:
        postgres.drop_database(name)


def test_production_instance_materializes_a_tenant_on_postgres(clinic, postgres_database, tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT / "dagster.yaml", home / "dagster.yaml")

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert isinstance(instance.compute_log_manager, MirroredComputeLogManager)
        assert instance.compute_log_manager._base_dir == str(home / "storage")
        assert isinstance(instance.run_launcher, LocalProcessRunLauncher)
        assert instance.run_monitoring_enabled
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        instance.add_dynamic_partitions("tenants", [clinic.tenant])

        result = clinic.extract(instance, selection=["businesses", "patients", "patient_attachments"])

        assert result.success
        assert materializations(result)["patients"]["by_state"] == clinic.truth()["patients"]
        stored = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["cliniko", "patients"]), asset_partitions=[clinic.tenant]),
            limit=5,
        ).records
        assert len(stored) == 1
        assert instance.get_dynamic_partitions("tenants") == [clinic.tenant]

    with postgres.connect(postgres_database) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs")
        assert cursor.fetchone()[0] == 1
