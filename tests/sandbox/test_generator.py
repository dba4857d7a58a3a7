"""The generator: deterministic, cached once per (seed, scale), and the scales' promised shapes."""

from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing
import sqlite3
from collections import Counter

import pytest

from cliniko_assets.timezones import iana_zone
from sandbox.cliniko.generator import anchor_for, build_database
from sandbox.cliniko.schema import RESOURCES
from tests.sandbox.conftest import ClinikoClient, start

ANCHOR = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def dump(path) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return [row for table in RESOURCES for row in db.execute(f"SELECT id, body FROM {table} ORDER BY id")]
    finally:
        db.close()


def test_same_seed_same_clinic_other_seed_other_clinic(tmp_path):
    for name, seed in (("a", 4), ("b", 4), ("c", 5)):
        build_database(tmp_path / f"{name}.sqlite", seed, "tiny", ANCHOR)
    assert dump(tmp_path / "a.sqlite") == dump(tmp_path / "b.sqlite")
    assert dump(tmp_path / "a.sqlite") != dump(tmp_path / "c.sqlite")


def test_generated_stamps_are_at_least_a_day_old(tmp_path):
    build_database(tmp_path / "t.sqlite", 2, "tiny", anchor_for())
    db = sqlite3.connect(tmp_path / "t.sqlite")
    latest = max(db.execute(f"SELECT MAX(updated_at) FROM {t}").fetchone()[0] for t in RESOURCES)
    cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert latest <= cutoff
    future = db.execute("SELECT COUNT(*) FROM individual_appointments WHERE starts_at > ?", (cutoff,)).fetchone()[0]
    assert future > 0


def test_restart_reuses_the_cache_and_mutations_never_touch_it(tmp_path):
    cache = tmp_path / "cache"
    for _ in start(tmp_path, "--data-dir", str(tmp_path / "data")):
        pass
    (cached,) = cache.iterdir()
    stamp, digest = cached.stat().st_mtime_ns, hashlib.sha256(cached.read_bytes()).hexdigest()
    for server in start(tmp_path, "--data-dir", str(tmp_path / "data")):
        api = ClinikoClient(server)
        api.admin_post("accounts/main/mutate", {"seed": 1, "updates": 5, "deletes": 3})
        assert sum(api.truth()["patients"].values()) >= 40
    assert cached.stat().st_mtime_ns == stamp
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == digest


@pytest.mark.parametrize("own_server", [["--account", "demo:1:small"]], indirect=True)
def test_small_clinic_is_a_demo_clinic(own_server):
    api = own_server.for_account("demo")
    truth = api.truth()
    totals = {resource: sum(states.values()) for resource, states in truth.items()}
    assert totals["patients"] == 1000
    assert totals["individual_appointments"] == 10_000
    assert totals["treatment_notes"] == 2000
    assert totals["patient_attachments"] == 300
    attachments = api.export("patient_attachments")
    sizes = Counter(a["size"] > 5 * 1024 * 1024 for a in attachments)
    assert 2 <= sizes[True] <= 10
    assert {a["content_type"] for a in attachments} >= {"application/pdf", "image/png", "image/jpeg", "text/plain"}
    zones = {iana_zone(b["time_zone_identifier"] or b["time_zone"]) for b in api.export("businesses")}
    assert {"Australia/Melbourne", "Australia/Perth", "Europe/London"} <= zones


def _build_when_released(path, seed: int, scale: str, barrier) -> None:
    barrier.wait()
    build_database(path, seed, scale, ANCHOR)


@pytest.mark.parametrize(("seed", "scale"), [(6, "tiny"), (1, "examples")])
def test_processes_building_the_same_clinic_at_once_each_finish_with_a_whole_database(tmp_path, seed, scale):
    """Test workers (one per core) can all miss the cache at once: each build writes a file of its own."""
    context = multiprocessing.get_context("fork")
    path = tmp_path / "clinic.sqlite"
    alone = tmp_path / "alone.sqlite"
    build_database(alone, seed, scale, ANCHOR)
    for _ in range(3):
        path.unlink(missing_ok=True)
        barrier = context.Barrier(4)
        builders = [context.Process(target=_build_when_released, args=(path, seed, scale, barrier)) for _ in range(4)]
        for builder in builders:
            builder.start()
        for builder in builders:
            builder.join(120)
        assert [builder.exitcode for builder in builders] == [0, 0, 0, 0]
        assert dump(path) == dump(alone)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alone.sqlite", "clinic.sqlite"]  # no build left behind
