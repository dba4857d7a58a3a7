import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from sandbox.local import PROJECT
from splose_resources.staging import ARENA_MAX, StagingBusy, StagingStore


def _row(rid: str, updated: str | None, state: str = "active", **fields) -> dict:
    record = {"id": rid, "updated_at": updated, **fields}
    return {"id": rid, "updated_at": updated, "state": state, "source": "main", "record": json.dumps(record)}


@pytest.fixture
def store(tmp_path):
    return StagingStore(uri=str(tmp_path / "staging"))


@pytest.fixture
def root(tmp_path):
    return tmp_path / "staging"


def test_incremental_commit_keeps_the_newest_version_and_deletions_win(store, root):
    batch = store.batch("clinic-a", "patients")
    batch.write_part([_row("1", "2024-01-01T00:00:00Z", name="a"), _row("2", "2024-01-01T00:00:00Z")])
    assert batch.commit(replace=True).records == 2

    batch.write_part([_row("1", "2024-02-01T00:00:00Z", name="b")])
    batch.write_part([_row("1", "2023-01-01T00:00:00Z", name="stale"), _row("3", "2024-03-01T00:00:00Z")])
    batch.write_part([_row("2", None, state="deleted")])
    stats = batch.commit(replace=False)

    assert stats.records == 3
    assert stats.by_state == {"active": 2, "deleted": 1}
    assert stats.max_updated_at == "2024-03-01T00:00:00Z"
    records = {r["id"]: r for batch_ in store.iter_records("clinic-a", "patients") for r in batch_}
    assert records["1"]["name"] == "b"
    assert records["2"]["_state"] == "deleted"
    assert not (root / "clinic-a" / "cliniko" / "patients" / "incoming").exists()


def test_a_full_listing_replaces_the_data_and_counts_what_disappeared(store):
    batch = store.batch("clinic-a", "practitioner_reference_numbers")
    batch.write_part([_row("1", "2024-01-01T00:00:00Z"), _row("2", "2024-01-01T00:00:00Z")])
    batch.commit(replace=True)
    batch.write_part([_row("2", "2024-01-01T00:00:00Z")])
    stats = batch.commit(replace=True)
    assert (stats.records, stats.removed) == (1, 1)
    assert store.count_rows("clinic-a", "practitioner_reference_numbers") == 1
    assert store.count_rows("clinic-a", "patients") == 0  # nothing staged yet


def test_checkpoints_survive_until_commit(store):
    batch = store.batch("clinic-a", "patients")
    batch.save_checkpoint({"since": None, "streams": {"main": {"done": [1, 2]}}})
    assert store.batch("clinic-a", "patients").load_checkpoint()["streams"]["main"]["done"] == [1, 2]
    batch.commit(replace=True)
    assert batch.load_checkpoint() is None


def test_staging_is_private_and_one_writer_per_tenant(store, root):
    store.batch("clinic-a", "patients").save_checkpoint({})
    directory = root / "clinic-a" / "cliniko" / "patients"
    assert oct(directory.stat().st_mode & 0o777) == "0o700"
    with store.tenant_lock("clinic-a"), pytest.raises(StagingBusy, match="clinic-a"), store.tenant_lock("clinic-a"):
        pass


@pytest.mark.parametrize("tenant", ["abc\n", "../clinic-b", "clinic-a/../clinic-b", "", ".", "CLINIC"])
def test_no_path_is_built_from_a_key_that_is_not_a_tenant_slug(store, root, tenant):
    from cliniko_assets.partitions import InvalidTenant

    reaches = (
        store.has_tenant,
        store.purge,
        lambda t: store.batch(t, "patients"),
        lambda t: store.write_json(t, "splose/mapping-1.json", {}),
        lambda t: store.tenant_lock(t).__enter__(),
    )
    for reach in reaches:
        with pytest.raises(InvalidTenant):
            reach(tenant)
    assert not root.exists() or not any(root.iterdir())


@pytest.mark.parametrize("name", ["../clinic-b/splose/x.json", "splose/../../x", "/etc/x", "splose/.lock", ""])
def test_no_file_name_reaches_outside_its_tenant(store, name):
    with pytest.raises(ValueError, match="plain relative name"):
        store.write_json("clinic-a", name, {})


def test_every_staged_folder_is_0700_and_every_file_0600_parents_included(tmp_path):
    import os
    import stat

    store = StagingStore(uri=str(tmp_path / "deep" / "er" / "staging"))
    old = os.umask(0o022)  # the usual umask: what mkdir(parents=True) and open() would leave readable
    try:
        batch = store.batch("clinic-a", "patient_attachments")
        batch.write_part([_row("1", "2024-01-01T00:00:00Z")])
        batch.save_checkpoint({"since": None, "streams": {}})
        batch.commit(replace=True)
        with store.file_writer("clinic-a", "patient_attachments", "1") as out:
            out.write(b"%PDF")
        store.write_file_failures("clinic-a", "patient_attachments", {"2": "file missing"})
        with store.tenant_lock("clinic-a"):
            pass
    finally:
        os.umask(old)
    modes = {
        str(path.relative_to(tmp_path)): stat.S_IMODE(path.stat().st_mode)
        for path in [tmp_path / "deep", *(tmp_path / "deep").rglob("*")]
    }
    assert {name for name, mode in modes.items() if mode != (0o700 if (tmp_path / name).is_dir() else 0o600)} == set()
    assert len(modes) >= 10


def test_a_staged_record_reads_back_as_cliniko_sent_it_whatever_part_and_batch_it_came_in(store):
    from splose_resources.staging import record_json

    sent = [
        {"id": str(n), "updated_at": f"2024-01-{n:02d}T00:00:00Z", "name": f"Zoë {n}", "notes": {"html": "<p>é</p>"}}
        for n in range(1, 8)
    ]
    batch = store.batch("clinic-a", "patients")
    for part in (sent[:3], sent[3:]):
        rows = [{"id": r["id"], "updated_at": r["updated_at"], "state": "active", "source": "main"} for r in part]
        batch.write_part([{**row, "record": record_json(r)} for row, r in zip(rows, part, strict=True)])
    batch.write_part([_row("2", "2024-02-01T00:00:00Z", state="deleted")])
    assert batch.commit(replace=True).by_state == {"active": 6, "deleted": 1}

    read = [r for chunk in store.iter_records("clinic-a", "patients", batch_size=2) for r in chunk]
    assert [r["id"] for r in read] == ["1", "3", "4", "5", "6", "7", "2"]
    assert read[0] == {**sent[0], "_state": "active", "_source": "main"}
    assert read[-1]["_state"] == "deleted"
    assert record_json(sent[0]) == json.dumps(sent[0], ensure_ascii=False, separators=(",", ":")).encode()


MALLOC_PROBE = r"""
import ctypes, sys, tempfile, threading
if sys.argv[1] == "staging":
    import splose_resources.staging
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc.mallinfo2.restype = Info

def churn():  # ctypes lets go of the GIL: eight threads ask malloc at once, as native code does
    for _ in range(20_000):
        libc.free(libc.malloc(256))

threads = [threading.Thread(target=churn) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with tempfile.NamedTemporaryFile("r") as out:
    handle = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, handle)
    libc.fclose(handle)
    arenas = out.read().count("<heap nr=")
libc.free(libc.malloc(4 << 20))  # a mapping freed: glibc's own threshold rises to its size
before = libc.mallinfo2().hblks
block = libc.malloc(2 << 20)
print(arenas, libc.mallinfo2().hblks - before)  # the arenas, and whether a 2 MiB block is a mapping
libc.free(block)
"""


def test_records_asked_for_by_id_are_the_only_ones_read_and_a_source_still_applies(store, monkeypatch):
    from splose_resources import staging

    batch = store.batch("clinic-a", "attendees")
    rows = [_row(str(n), "2024-01-01T00:00:00Z") for n in range(1, 9)]
    rows[6]["source"] = "by_id"
    batch.write_part(rows)
    batch.commit(replace=True)
    decoded = []
    read = staging._staged_record
    monkeypatch.setattr(staging, "_staged_record", lambda *a: decoded.append(a) or read(*a))

    def ids(**options) -> list[str]:
        chunks = store.iter_records("clinic-a", "attendees", batch_size=3, **options)
        return [r["id"] for chunk in chunks for r in chunk]

    assert ids(ids={"2", "7", "5", "99"}) == ["2", "5", "7"]
    assert len(decoded) == 3  # the others were never decoded
    assert ids(ids=["7", "8"], source="by_id") == ["7"]
    assert ids(ids=["7", "8"], source="by_id", other=True) == ["8"]
    assert ids(ids=[]) == [] and ids() == [str(n) for n in range(1, 9)]


def _malloc(what: str, **env: str) -> tuple[int, int]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")} | env
    done = subprocess.run(
        [sys.executable, "-c", MALLOC_PROBE, what], env=environment, cwd=PROJECT, capture_output=True, text=True,
        check=True, timeout=60,
    )  # fmt: skip
    arenas, mapped = done.stdout.split()
    return int(arenas), int(mapped)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_process_that_stages_keeps_two_arenas_and_maps_large_blocks_unless_the_operator_says_otherwise():
    arenas, mapped = _malloc("plain")  # the probe sees what glibc does by itself
    assert arenas > ARENA_MAX and mapped == 0
    arenas, mapped = _malloc("staging")
    assert arenas <= ARENA_MAX and mapped == 1
    arenas, mapped = _malloc("staging", MALLOC_ARENA_MAX="4", MALLOC_MMAP_THRESHOLD_=str(8 << 20))
    assert ARENA_MAX < arenas <= 4 and mapped == 0


def test_staged_files_keep_no_statistics_of_the_records_text_only_of_the_key_columns(store, root):
    batch = store.batch("clinic-a", "treatment_notes")
    note = "x" * 3_000
    batch.write_part([_row(str(n), "2024-01-01T00:00:00Z", content=note) for n in range(1, 4)])
    part = next((root / "clinic-a" / "cliniko" / "treatment_notes" / "incoming").glob("part-*.parquet"))
    batch.write_part([_row(str(n), "2024-01-02T00:00:00Z", content=note) for n in range(3, 6)])
    files = {"part": pq.ParquetFile(part).metadata}
    batch.commit(replace=True)
    files["data"] = pq.ParquetFile(root / "clinic-a" / "cliniko" / "treatment_notes" / "data.parquet").metadata

    # the data file's first row group: the first part's rows that stand (its id 3 is the second part's now)
    first_ids = {"part": ("1", "3"), "data": ("1", "2")}
    for name, metadata in files.items():
        group = metadata.row_group(0)
        columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
        assert not columns["record"].is_stats_set, name
        assert (columns["id"].statistics.min, columns["id"].statistics.max) == first_ids[name]
    assert files["data"].serialized_size < 3_000  # not one record's text in the footer
    assert store.count_rows("clinic-a", "treatment_notes") == 5
