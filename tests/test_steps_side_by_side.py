"""The import job as deployed: its steps side by side in processes of their own, sharing the key's budget.

A tiny clinic behind a Cliniko sandbox with a short window (5 requests per 2 s), imported by
``import_job`` with its own executor. The sandbox counts every request per window: the steps never put
more than the budget into one window, and they reach it; the mapping and the loads run while the
attachments are still downloading, and contacts and clients while the appointments are still extracted.
"""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import datetime

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository

from cliniko_assets.rows import crosswalks_of
from cliniko_assets.sensors import run_config_for
from sandbox.admin import ClinikoSandboxAdmin
from sandbox.demo import submit_import
from sandbox.harness import running_server
from tests.conftest import PROJECT, splose_from_env
from tests.test_import import TOKEN, splose_sandbox  # noqa: F401 (fixture)
from tests.test_resync_cost import splose_routes

LIMIT = 5
WINDOW = 2.0
ACCOUNT = "sidebyside"


@pytest.mark.slow
def test_steps_run_side_by_side_within_the_keys_budget_and_loads_overlap_the_extraction(
    splose_sandbox, tmp_path, monkeypatch
):
    args = ["--account", f"{ACCOUNT}:5:tiny:au1", "--latency-ms", "20", "--jitter-ms", "0", "--rate-limit",
            str(LIMIT), "--rate-window", str(WINDOW), "--data-dir", str(tmp_path / "cliniko")]  # fmt: skip
    with running_server("sandbox.cliniko", args, log_dir=tmp_path) as cliniko:
        admin = ClinikoSandboxAdmin(cliniko.url)
        import_id = submit_import(admin, ACCOUNT, splose_sandbox.url, "side-by-side")
        for name, value in {
            "CLINIKO_API_URL": f"{cliniko.url}/{{shard}}/v1",
            "SPLOSE_API_URL": f"{splose_sandbox.url}/v1",
            "SPLOSE_PLATFORM_TOKEN": TOKEN,
            "STAGING_URI": str(tmp_path / "staging"),
            "RATE_LIMIT_STATE_DIR": str(tmp_path / "rate"),
        }.items():
            monkeypatch.setenv(name, value)
        admin.reset_stats()
        splose_before = splose_routes(splose_sandbox.url)
        (tmp_path / "home").mkdir()
        with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
            instance.add_dynamic_partitions("tenants", ["side-by-side"])
            run_config = run_config_for({"id": import_id})
            run_config["resources"] |= {
                # Run config for a resource replaces the code location's: its URL, the deployment's, is then read
                # from the environment (it cannot be given in run config).
                "cliniko": {"config": {"window_seconds": WINDOW, "requests_per_window": LIMIT}},
            }
            code_location = ReconstructableRepository.for_module("cliniko_assets.definitions", "defs", str(PROJECT))
            with dg.execute_job(
                code_location.get_reconstructable_job("import_job"),
                instance=instance,
                run_config=run_config,
                tags={"dagster/partition": "side-by-side"},
            ) as result:
                assert result.success
                entries = [entry for entry in instance.all_logs(result.run_id) if entry.dagster_event]
                files_meta = next(
                    e.asset_materialization.metadata
                    for e in entries
                    if e.asset_materialization is not None
                    and e.asset_materialization.asset_key == dg.AssetKey(["splose", "files"])
                )
        stats = admin.stats()["keys"][f"{ACCOUNT}/admin"]
        splose = splose_routes(splose_sandbox.url) - splose_before

    with splose_from_env().imports() as imports:
        assert imports.get_import(import_id)["status"] == "complete"
    per_window = stats["windows"]
    assert stats["rate_limited"] == 0 and max(per_window.values()) <= LIMIT
    # Together the steps reach the budget: some window holds all of it, and the run needs no more
    # windows than its requests fill, plus the ones its dependencies and the loads take.
    assert max(per_window.values()) == LIMIT
    assert len(per_window) >= math.ceil(stats["total"] / LIMIT)
    # The loads overlap the extraction: the mapping step (which creates services) starts, and resolves the
    # mapping, before the last resource (the attachments, with their downloads) is staged.
    started = {e.step_key: e.timestamp for e in entries if e.dagster_event.event_type_value == "STEP_START"}
    materialized = {
        e.asset_materialization.asset_key.to_user_string(): e.timestamp
        for e in entries
        if e.asset_materialization is not None
    }
    last_extracted = max(t for key, t in materialized.items() if key.startswith("cliniko/"))
    assert materialized["cliniko/patient_attachments"] == last_extracted
    assert started["splose_mapping"] < materialized["splose/locations"] < last_extracted
    assert {"cliniko_clinic", "cliniko_extract", "patient_files", "splose_mapping"} <= set(started)
    # Files go up to Splose while the attachments still download: Splose stored the first one before
    # cliniko/patient_attachments was staged (its last download), and all of them by the time splose/files was.
    stored = files_stored(splose_sandbox)
    assert len(stored) == files_meta["created"].value > 0
    assert min(stored) < materialized["cliniko/patient_attachments"] < max(stored) <= materialized["splose/files"]
    # Contacts and clients load once the clinic's first step is staged and the mapping checked, while the
    # appointments and notes are still being extracted.
    assert materialized["cliniko/patients"] < started["splose__mapping_check"] < started["splose_clients"]
    assert started["splose_clients"] < materialized["cliniko/references"]  # the second step's last asset
    # Each crosswalk is read from Splose once for the whole run (by the mapping check, before the loads
    # start side by side), however many steps use it at once.
    assert splose["GET /v1/imports/{id}/records/{entity}"] == len(crosswalks_of(lambda _: True)) == 9


def files_stored(splose_sandbox) -> list[float]:
    """When the Splose sandbox stored each file of the import (epoch seconds, from each file's history)."""
    with sqlite3.connect(splose_sandbox.log_path.parent / "splose.db") as db:
        histories = [json.loads(row[0]) for row in db.execute("SELECT history FROM objects WHERE kind = 'files'")]
    return [datetime.fromisoformat(history[0]["at"].replace("Z", "+00:00")).timestamp() for history in histories]
