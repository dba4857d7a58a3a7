"""The compact crosswalk answers as a plain dict of the same writes would, whatever their order and size."""

from __future__ import annotations

import hashlib
import random

import pytest

from cliniko_assets.crosswalks import PENDING, PREFIX, CrosswalkTable, entries_batch, key_set
from splose_resources.splose import CrosswalkEntry


def _hash(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.1:
        return None
    if roll < 0.2:
        return f"old-{rng.randrange(10**6)}"  # a hash of another version: kept as text
    return PREFIX + hashlib.sha256(str(rng.random()).encode()).hexdigest()


def _external_id(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.05:
        return f"{rng.randrange(1000)}:{rng.randrange(3)}"  # an availability row: not a Cliniko id
    if roll < 0.5:
        return str(rng.randrange(1, 5_000))  # small ids: written again and again
    return str(rng.randrange(1, 1 << 63))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_table_holds_what_a_dict_of_the_same_writes_holds(seed):
    rng = random.Random(seed)
    table = CrosswalkTable()
    model: dict[str, CrosswalkEntry] = {}
    for _ in range(3):
        for _ in range(PENDING + rng.randrange(PENDING)):  # past a merge, then some left pending
            external_id, entry = _external_id(rng), CrosswalkEntry(rng.randrange(1, 10**9), _hash(rng))
            table.put(external_id, entry.id, entry.content_hash)
            model[external_id] = entry
        rows = []
        for _ in range(rng.randrange(1, 3_000)):  # a staged batch, its ids repeated: its later rows win
            external_id = rng.choice(list(model)) if rng.random() < 0.5 else _external_id(rng)
            entry = CrosswalkEntry(rng.randrange(1, 10**9), _hash(rng))
            rows.append((external_id, entry.id, entry.content_hash))
            model[external_id] = entry
        snapshot = dict(table.items())
        frozen = list(table.batches())
        table.update_from([entries_batch(rows)])
        assert {k: table.get(k) for k in model} == model
        assert len(table) == len(model) and set(table) == set(model)
        assert table.get("999999999999999999999") is None and "0123" not in table
        # What batches() gave before the update is what the table held then.
        again = CrosswalkTable()
        again.update_from(frozen)
        assert dict(again.items()) == snapshot
    keys = key_set(table.ids())
    assert all(k in keys for k in model) and "5000000" not in keys
    copy = CrosswalkTable()
    copy.update_from(table.batches(size=1_000))
    assert dict(copy.items()) == model
    wanted = entries_batch([(k, 0, None) for k in list(model)[:500]])
    found = table.entries_of(wanted.column("key"), wanted.column("external_id"))
    assert found.column("id").to_pylist() == [model[k].id for k in list(model)[:500]]
