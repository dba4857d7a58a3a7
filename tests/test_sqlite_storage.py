"""The embedded default's storage (``cliniko_assets.sqlite_storage``) on a real Dagster instance in a real home."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.events.log import EventLogEntry

from cliniko_assets.sqlite_storage import Engines, EventLogStorage, RunStorage
from tests.conftest import embedded_instance_config


@dg.asset
def first() -> int:
    return 1


@dg.asset
def second(first: int) -> int:
    return first + 1


both = dg.define_asset_job("both", [first, second], executor_def=dg.multiprocess_executor)
defs = dg.Definitions(assets=[first, second], jobs=[both])


def two_steps() -> dg.JobDefinition:
    return defs.resolve_job_def("both")


def _home(path: Path, *, embedded: bool) -> Path:
    """A DAGSTER_HOME with Dagster's default storage, or the embedded default's (``dagster.local.yaml``)."""
    path.mkdir(exist_ok=True)
    config = embedded_instance_config() if embedded else {"telemetry": {"enabled": False}}
    (path / "dagster.yaml").write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def instance(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(_home(tmp_path / "home", embedded=True)))
    with dg.DagsterInstance.get() as instance:
        yield instance


def _log(storage: EventLogStorage, run_id: str, message: str) -> None:
    entry = EventLogEntry(error_info=None, level=20, user_message=message, run_id=run_id, timestamp=time.time())
    storage.store_event(entry)


def test_a_home_of_dagsters_default_storage_keeps_its_runs_and_assets_on_the_embedded_default(tmp_path, monkeypatch):
    home = _home(tmp_path / "home", embedded=False)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as before:
        assert not isinstance(before.event_log_storage, EventLogStorage)
        run_id = dg.materialize([first], instance=before).run_id
    _home(home, embedded=True)
    with dg.DagsterInstance.get() as after:
        assert isinstance(after.event_log_storage, EventLogStorage)
        assert isinstance(after.run_storage, RunStorage)
        assert after.get_run_by_id(run_id).is_success
        assert after.get_latest_materialization_event(dg.AssetKey("first")).run_id == run_id
        assert {p.name for p in home.iterdir()} >= {"history", "schedules"}
        assert not (home / "storage" / "history").exists()


def test_an_instance_opened_from_its_folder_alone_finds_its_storage_there(tmp_path, monkeypatch):
    home = _home(tmp_path / "home", embedded=True)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, EventLogStorage)
        run_id = dg.materialize([first], instance=instance).run_id
    assert (home / "history" / "runs" / f"{run_id}.db").exists()


def test_a_run_with_step_processes_stores_through_one_engine_per_database(instance):
    with dg.execute_job(dg.reconstructable(two_steps), instance=instance) as result:
        assert result.success
        assert [e.event_type_value for e in result.get_step_success_events()] == ["STEP_SUCCESS"] * 2
        run_id = result.run_id
    events = instance.event_log_storage
    materialized = instance.get_latest_materialization_event(dg.AssetKey("second"))
    assert materialized.run_id == run_id
    for n in range(20):
        _log(events, run_id, f"note {n}")
    assert len(instance.all_logs(run_id)) >= 20
    # This process wrote and read one run's database and the asset index: one engine each, however many uses.
    assert events.run_engines.created == 1
    assert events.index_engines.created == 1
    assert instance.run_storage.engines.created == 1


def test_each_event_of_a_run_reaches_its_database_file_which_is_what_the_ui_watches(instance):
    events = instance.event_log_storage
    _log(events, "watched", "first")
    path = Path(events.path_for_shard("watched"))
    seen = []
    for n in range(3):
        before = path.read_bytes()
        _log(events, "watched", f"event {n}")
        seen.append(path.read_bytes() != before)
    assert seen == [True, True, True]


_FORKED: dict[str, dg.DagsterInstance] = {}  # the instance a forked child inherits


def _index_pool(instance: dg.DagsterInstance) -> int:
    events = instance.event_log_storage
    return id(events.index_engines.get(events.conn_string_for_shard("index")).pool)


def _in_child(run_id: str, queue) -> None:
    try:
        instance = _FORKED["instance"]  # the parent's, with its pools as they were at the fork
        pool = _index_pool(instance)
        _log(instance.event_log_storage, run_id, "from the child")
        instance.get_latest_materialization_event(dg.AssetKey("first"))
        queue.put((pool, len(instance.all_logs(run_id))))
    except Exception as exc:  # the parent asserts on what came back
        queue.put((repr(exc), 0))


def test_a_forked_process_opens_its_own_connections_and_the_parents_stay_usable(instance):
    events = instance.event_log_storage
    _log(events, "shared", "from the parent")
    instance.get_latest_materialization_event(dg.AssetKey("first"))  # the index's pooled connection is open
    before = _index_pool(instance)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    _FORKED["instance"] = instance
    child = context.Process(target=_in_child, args=("shared", queue))
    child.start()
    child.join(60)
    pool_in_child, logs_in_child = queue.get(timeout=5)
    assert isinstance(pool_in_child, int) and pool_in_child != before  # the child dropped the parent's pool
    assert logs_in_child == 2
    _log(events, "shared", "from the parent again")
    assert _index_pool(instance) == before
    assert [e.user_message for e in instance.all_logs("shared")] == [
        "from the parent",
        "from the child",
        "from the parent again",
    ]


def test_engines_keep_the_most_recently_used(tmp_path):
    engines = Engines(size=2)
    a, b, c = (f"sqlite:///{tmp_path / name}.db" for name in "abc")
    first_a = engines.get(a)
    engines.get(b)
    assert engines.get(a) is first_a and engines.created == 2
    engines.get(c)  # b is the least recently used
    assert engines.get(a) is first_a and engines.created == 3
    engines.get(b)
    assert engines.created == 4


def test_a_table_is_asked_for_until_the_index_has_it(instance):
    events = instance.event_log_storage
    assert events.has_table("event_logs") is True
    assert events.has_table("not_yet") is False
    with events.index_connection() as conn:
        conn.exec_driver_sql("CREATE TABLE not_yet (id INTEGER)")
    assert events.has_table("not_yet") is True
