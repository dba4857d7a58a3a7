"""Crosswalks held compactly answer exactly what a dict of every entry would, through staging and back."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

from cliniko_assets.changes import RunCrosswalk, content_hash
from cliniko_assets.crosswalks import CrosswalkTable, key_set, numeric_key
from splose_resources.splose import CrosswalkEntry, UpsertedRecord
from splose_resources.staging import StagingStore

HASH_1, HASH_2 = content_hash({"n": 1}), content_hash({"n": 2})


class HeldBySplose:
    """What Splose answers for the crosswalk before the run (one page, in the import API's shape)."""

    def crosswalk_rows(self, import_id: int, entity: str) -> Iterator[tuple[str, CrosswalkEntry]]:
        yield "1", CrosswalkEntry(100, "c0-an-older-hash")
        yield "7263336031863177338", CrosswalkEntry(700, HASH_1)
        yield "42:0", CrosswalkEntry(420, None)


def test_only_canonical_cliniko_ids_are_kept_as_numbers():
    assert numeric_key("7263336031863177338") == 7263336031863177338
    assert numeric_key("18446744073709551615") == 2**64 - 1
    assert [numeric_key(v) for v in ("18446744073709551616", "007", "42:0", "", "١٢", "-3")] == [None] * 6


def test_a_table_answers_like_a_dict_of_its_latest_entries():
    table, plain = CrosswalkTable(), {}
    for n in range(20_000):  # past the pending buffer: entries merged into the arrays several times
        external_id = str(10**18 + n * 7) if n % 5 else f"{n}:1"
        entry = CrosswalkEntry(n, (HASH_1, HASH_2, None, "c0-old")[n % 4])
        table.put(external_id, *entry)
        plain[external_id] = entry
    for n in range(0, 20_000, 3):  # rewritten with a new id and hash
        external_id = str(10**18 + n * 7) if n % 5 else f"{n}:1"
        table.put(external_id, n + 1, HASH_2)
        plain[external_id] = CrosswalkEntry(n + 1, HASH_2)
    assert len(table) == len(plain) and dict(table) == plain
    assert "5" not in table and table.get("0005") is None and dict(table.ids()) == {k: v.id for k, v in plain.items()}

    copy = CrosswalkTable()
    copy.update_from(table.batches(size=4_096))
    assert dict(copy) == plain

    frozen = key_set(table.ids())
    table.put("99", 1, None)
    assert "99" in table and "99" not in frozen and all(k in frozen for k in plain)


def test_a_later_step_sees_the_crosswalk_and_every_step_s_writes_and_the_report_their_references(tmp_path):
    staging = StagingStore(uri=str(tmp_path))

    def step(writer: str) -> RunCrosswalk:
        return RunCrosswalk(HeldBySplose(), 3, staging, "tenant-a", "run-1", writer)

    appointments = step("appointments")
    assert appointments.unchanged("appointments", "7263336031863177338", HASH_1) == (700, HASH_1)
    assert appointments.unchanged("appointments", "1", HASH_1) is None  # held with another version's hash
    appointments.record(
        "appointments",
        [UpsertedRecord("1", 101, "updated"), UpsertedRecord("2", 102, "created"), UpsertedRecord("x-3", 103, "new")],
        {"1": HASH_1, "2": HASH_1, "x-3": HASH_2},
        {"1": {"clients": ["c1"], "practitionerId": 5}, "2": {"clients": [], "practitionerId": None},
         "x-3": {"clients": ["c3", None], "practitionerId": 7}},
    )  # fmt: skip
    appointments.record("appointments", [UpsertedRecord("2", 202, "updated")], {"2": HASH_2},
                        {"2": {"clients": ["c2"], "practitionerId": 8}})  # fmt: skip
    appointments.save()
    groups = step("group_appointments")
    groups.record("appointments", [UpsertedRecord("4", 104, "created"), UpsertedRecord("1", 111, "updated")],
                  {"4": HASH_1, "1": HASH_2}, {"4": {"clients": ["c4"], "practitionerId": 9},
                  "1": {"clients": ["c9"], "practitionerId": 1}})  # fmt: skip
    groups.save()

    report = step("import_report")
    assert dict(report.entries("appointments")) == {
        "1": (111, HASH_2),
        "2": (202, HASH_2),
        "x-3": (103, HASH_2),
        "4": (104, HASH_1),
        "7263336031863177338": (700, HASH_1),
        "42:0": (420, None),
    }
    assert sorted(report.written_refs("appointments")) == [
        ("1", {"clients": ["c9"], "practitionerId": 1}),
        ("2", {"clients": ["c2"], "practitionerId": 8}),
        ("4", {"clients": ["c4"], "practitionerId": 9}),
        ("x-3", {"clients": ["c3", None], "practitionerId": 7}),
    ]
    assert report.known_entities() == ["appointments"]
    assert RunCrosswalk(HeldBySplose(), 3, staging, "tenant-a", "run-2", "x").known_entities() == []


def test_a_crosswalk_entry_takes_about_fifty_bytes():
    table = CrosswalkTable()
    for key in np.arange(10**18, 10**18 + 100_000, dtype=np.uint64).tolist():
        table.put(str(key), key % 10**9, HASH_1)
    held = sum(a.nbytes for a in (table._keys, table._ids, table._digests, table._hashed))
    assert len(table) == 100_000 and held < 100_000 * 50
    assert table[str(10**18 + 123)] == (123, HASH_1)


def test_answers_recorded_from_other_threads_while_the_load_reads_are_all_kept():
    table = CrosswalkTable()

    def answer(first: int) -> None:  # as a batch's answers come back on a thread of the load
        for n in range(first, first + 30_000):
            table.put(str(10**15 + n), n, HASH_1)

    threads = [threading.Thread(target=answer, args=(k * 30_000,)) for k in range(3)]
    for thread in threads:
        thread.start()
    seen = [str(10**15 + n) in table for n in range(0, 90_000, 7)]  # reads meanwhile never fail
    for thread in threads:
        thread.join()
    assert len(seen) == 12_858 and len(table) == 90_000
    assert all(table[str(10**15 + n)] == (n, HASH_1) for n in range(0, 90_000, 997))
