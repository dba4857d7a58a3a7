"""The standing row of each id when staged sources are folded, worked out on int64 ids (re-reading the keys
of repeated ids only) or on the text of every key, against the rule written out in plain Python."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from splose_resources.standing import _by_text, standing_rows


def _reader(sources: list[list[tuple[str, str | None, str]]]):
    reads: list[tuple[int, tuple[str, ...]]] = []

    def read(number: int, columns: list[str]) -> pa.Table:
        reads.append((number, tuple(columns)))
        rows = sources[number]
        table = pa.table(
            {
                "id": pa.array([r[0] for r in rows], pa.string()),
                "updated_at": pa.array([r[1] for r in rows], pa.string()),
                "state": pa.array([r[2] for r in rows], pa.string()),
            }
        )
        return table.select(columns)

    return read, reads


def _rule(sources: list[list[tuple[str, str | None, str]]]) -> list[int]:
    """A deletion first, then the newest updated_at as text (none counts as ""), then the latest position."""
    best: dict[str, tuple[bool, str, int]] = {}
    position = 0
    for rows in sources:
        for rid, updated, state in rows:
            key = (state == "deleted", updated or "", position)
            if rid not in best or key > best[rid]:
                best[rid] = key
            position += 1
    return sorted(key[2] for key in best.values())


def _clinic(seed: int, ids: list[str]) -> list[list[tuple[str, str | None, str]]]:
    rng = random.Random(seed)
    sources = []
    for _ in range(rng.randint(1, 6)):
        rows = []
        for _ in range(rng.randint(0, 40)):
            updated = rng.choice([None, "", f"2024-0{rng.randint(1, 3)}-01T00:00:00Z", "2024-02-01T00:00:00.5Z"])
            rows.append((rng.choice(ids), updated, rng.choice(["active", "active", "archived", "deleted"])))
        sources.append(rows)
    return sources


@pytest.mark.parametrize("seed", range(40))
def test_the_standing_rows_follow_the_rule_whichever_way_they_are_worked_out(seed):
    sources = _clinic(seed, [str(n) for n in range(1, 30)])
    read, reads = _reader(sources)
    positions, offsets = standing_rows(read, len(sources))
    assert positions.tolist() == _rule(sources)
    assert offsets.tolist()[-1] == sum(len(rows) for rows in sources)
    assert _by_text(_reader(sources)[0], len(sources))[0].tolist() == _rule(sources)
    # ids as int64: the other keys are read for the sources holding a repeated id, and only then
    assert {columns for _, columns in reads} <= {("id",), ("updated_at", "state")}


@pytest.mark.parametrize("odd", ["007", "-3", "12a", " 5", "+4", ""])
def test_ids_that_are_not_plain_digits_are_compared_as_text(odd):
    sources = [[("7", "2024-01-01T00:00:00Z", "active"), (odd, "2024-01-01T00:00:00Z", "active")],
               [("7", "2023-01-01T00:00:00Z", "active")]]  # fmt: skip
    read, reads = _reader(sources)
    assert standing_rows(read, len(sources))[0].tolist() == _rule(sources) == [0, 1]
    assert ("id", "updated_at", "state") in {columns for _, columns in reads}


def test_unique_ids_need_no_key_but_the_id():
    sources = [[(str(n), None, "active") for n in range(100)], [("100", "2024-01-01T00:00:00Z", "deleted")]]
    read, reads = _reader(sources)
    assert standing_rows(read, len(sources))[0].tolist() == list(range(101))
    assert {columns for _, columns in reads} == {("id",)}
    assert standing_rows(_reader([])[0], 0)[0].tolist() == []
