"""Which staged row stands for each Cliniko id when a resource's sources (its data and new parts) are folded.

The rule: a deletion first, then the newest ``updated_at`` (compared as the text Cliniko sent), then the
latest position (sources in order, rows in order). Rows are named by their position, counted source by
source from 0.

Memory follows the ids alone: Cliniko ids are digits, so they are held as ``int64`` (8 bytes a row), and
the ``updated_at`` and ``state`` of a row are read only for ids that occur more than once (on a first
import almost none do; on a re-sync, the records that changed). A source whose ids are not all plain
digits is worked out on the text of every key column instead, with the same rule.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# read(number, columns): those columns of source ``number``, every row in order
Reader = Callable[[int, list[str]], pa.Table]


def standing_rows(read: Reader, sources: int) -> tuple[np.ndarray, np.ndarray]:
    """The positions of the standing rows (ascending), and each source's first position (one more entry:
    the total)."""
    ids: list[np.ndarray] = []
    for number in range(sources):
        numeric = _digits(read(number, ["id"]).column("id").combine_chunks())
        if numeric is None:
            return _by_text(read, sources)
        ids.append(numeric)
    offsets = np.cumsum([0, *(len(chunk) for chunk in ids)], dtype=np.int64)
    every = np.concatenate(ids) if ids else np.empty(0, np.int64)
    del ids
    order = np.argsort(every, kind="stable")
    ordered = every[order]
    repeated = ordered[1:] == ordered[:-1]
    del ordered
    if not repeated.any():
        return np.arange(len(every), dtype=np.int64), offsets
    shared = np.zeros(len(every), dtype=bool)
    shared[1:] |= repeated
    shared[:-1] |= repeated
    alone = order[~shared]
    contested = np.sort(order[shared])
    del order, shared, repeated
    keys = []
    for number in range(sources):
        lo, hi = np.searchsorted(contested, [offsets[number], offsets[number + 1]])
        if lo == hi:
            continue
        positions = contested[lo:hi]
        table = read(number, ["updated_at", "state"]).take(pa.array(positions - offsets[number]))
        keys.append((pa.array(every[positions]), table, positions))
    chosen = _last_of_each(
        pa.concat_arrays([k[0] for k in keys]),
        pa.concat_arrays([k[1].column("updated_at").combine_chunks() for k in keys]),
        pa.concat_arrays([k[1].column("state").combine_chunks() for k in keys]),
        np.concatenate([k[2] for k in keys]),
    )
    return np.sort(np.concatenate([alone, chosen])), offsets


def _by_text(read: Reader, sources: int) -> tuple[np.ndarray, np.ndarray]:
    tables = [read(number, ["id", "updated_at", "state"]) for number in range(sources)]
    offsets = np.cumsum([0, *(t.num_rows for t in tables)], dtype=np.int64)
    if not offsets[-1]:
        return np.empty(0, np.int64), offsets
    index = pa.concat_tables(tables).combine_chunks()
    del tables
    chosen = _last_of_each(
        index.column("id").combine_chunks(),
        index.column("updated_at").combine_chunks(),
        index.column("state").combine_chunks(),
        np.arange(index.num_rows, dtype=np.int64),
    )
    return np.sort(chosen), offsets


def _last_of_each(ids: pa.Array, updated_at: pa.Array, state: pa.Array, positions: np.ndarray) -> np.ndarray:
    """Of the rows given (their id, ``updated_at``, ``state`` and position), the position of each id's standing row."""
    keys = pa.table(
        {
            "id": ids,
            "deleted": pc.fill_null(pc.equal(state, "deleted"), False),
            "order": pc.fill_null(updated_at, ""),
            "position": pa.array(positions),
        }
    )
    sort = pc.sort_indices(keys, sort_keys=[(name, "ascending") for name in keys.column_names])
    ordered = ids.take(sort)
    last = pa.concat_arrays([pc.not_equal(ordered[:-1], ordered[1:]), pa.array([True])])
    return positions[sort.filter(last).to_numpy()]


def _digits(ids: pa.Array) -> np.ndarray | None:
    """The ids as ``int64`` when every one is plain digits that read back the same (no sign, no leading zero)."""
    if ids.null_count:
        return None
    try:
        numeric = pc.cast(ids, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if len(ids) and not pc.all(pc.equal(pc.cast(numeric, pa.string()), ids)).as_py():
        return None
    if len(ids) and pc.min(numeric).as_py() < 0:
        return None
    return numeric.to_numpy(zero_copy_only=False)
