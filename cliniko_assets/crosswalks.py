"""A crosswalk held compactly: memory per record stays a few dozen bytes whatever the clinic's size.

Cliniko ids are decimal numbers: those external ids are kept as sorted ``uint64`` keys beside their Splose
ids (``int64``) and content hashes of this version as 32-byte digests, in NumPy arrays (about 50 bytes an
entry, where a dict of strings and tuples takes about 350). The few external ids that are not a Cliniko id
in canonical form (availability rows ``<id>:<n>``, a leading zero) and hashes of another shape stay in small
dicts beside them. Staging holds the same columns as Parquet (:data:`SCHEMA`), read and written a batch at
a time.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from typing import ParamSpec, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from splose_resources.splose import CrosswalkEntry

P = ParamSpec("P")
T = TypeVar("T")
HASH_VERSION = "c2"  # bump when what is hashed changes: every record is then sent once more
PREFIX = f"{HASH_VERSION}-"
DIGEST = 32
PENDING = 8_192  # entries recorded one by one are merged into the arrays this many at a time
SCHEMA = pa.schema(
    [
        ("key", pa.uint64()),  # the external id when it is a Cliniko id, else null
        ("external_id", pa.string()),  # the external id otherwise
        ("id", pa.int64()),
        ("digest", pa.binary(DIGEST)),  # the content hash when it is of this version
        ("hash", pa.string()),  # any other content hash
    ]
)


def numeric_key(external_id: str) -> int | None:
    """The external id as a number when it is one in canonical form (so the text comes back the same)."""
    if not (external_id.isascii() and external_id.isdigit()) or len(external_id) > 20:
        return None
    if external_id[0] == "0" and external_id != "0":
        return None
    value = int(external_id)
    return value if value < 1 << 64 else None


def digest_of(content_hash: str | None) -> bytes | None:
    """The 32 bytes of a hash of this version (its version, ``-`` and 64 lowercase hex digits), else ``None``."""
    if content_hash is None or len(content_hash) != len(PREFIX) + 2 * DIGEST or not content_hash.startswith(PREFIX):
        return None
    hexdigits = content_hash[len(PREFIX) :]
    if not (hexdigits.islower() or hexdigits.isdigit()):
        return None
    try:
        digest = bytes.fromhex(hexdigits)
    except ValueError:
        return None
    return digest if len(digest) == DIGEST else None


def _locked(method: Callable[P, T]) -> Callable[P, T]:
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


class CrosswalkTable(Mapping[str, CrosswalkEntry]):
    """External id -> :class:`CrosswalkEntry`, compact (see the module's docstring)."""

    def __init__(self) -> None:
        self._keys = np.empty(0, np.uint64)
        self._ids = np.empty(0, np.int64)
        self._digests = np.empty((0, DIGEST), np.uint8)
        self._hashed = np.empty(0, bool)
        self._texts: dict[int, str] = {}  # numeric keys whose hash is not of this version's shape
        self._pending: dict[int, tuple[int, str | None]] = {}
        self._odd: dict[str, CrosswalkEntry] = {}  # external ids that are not Cliniko ids
        # A load's batches are answered on threads of their own (cliniko_assets.in_flight) while the next
        # batch is checked: reads and writes take turns, and a merge replaces the arrays as a whole.
        self._lock = threading.RLock()

    # -- reading ----------------------------------------------------------------------------------

    @_locked
    def get(self, external_id: str, default: CrosswalkEntry | None = None) -> CrosswalkEntry | None:  # type: ignore[override]
        entry = self._odd.get(external_id)
        if entry is not None:
            return entry
        key = numeric_key(external_id)
        if key is None:
            return default
        pending = self._pending.get(key)
        if pending is not None:
            return CrosswalkEntry(*pending)
        at = self._find(key)
        if at < 0:
            return default
        if self._hashed[at]:
            content_hash: str | None = PREFIX + self._digests[at].tobytes().hex()
        else:
            content_hash = self._texts.get(key)
        return CrosswalkEntry(int(self._ids[at]), content_hash)

    def __getitem__(self, external_id: str) -> CrosswalkEntry:
        entry = self.get(external_id)
        if entry is None:
            raise KeyError(external_id)
        return entry

    @_locked
    def __contains__(self, external_id: object) -> bool:
        if not isinstance(external_id, str):
            return False
        if external_id in self._odd:
            return True
        key = numeric_key(external_id)
        return key is not None and (key in self._pending or self._find(key) >= 0)

    @_locked
    def __len__(self) -> int:
        self._merge_pending()
        return len(self._keys) + len(self._odd)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            self._merge_pending()
            keys, odd = self._keys, list(self._odd)  # arrays are replaced, never changed in place
        yield from (str(key) for key in keys.tolist())
        yield from odd

    def ids(self) -> Mapping[str, int]:
        """External id -> Splose id, read through this table (no copy)."""
        return _Ids(self)

    @_locked
    def key_set(self) -> KeySet:
        """The external ids held now, as a compact set that later writes leave as it is."""
        self._merge_pending()
        return KeySet(self._keys.copy(), frozenset(self._odd))

    def _find(self, key: int) -> int:
        wanted = np.uint64(key)
        at = int(self._keys.searchsorted(wanted))
        return at if at < len(self._keys) and self._keys[at] == wanted else -1

    # -- writing ----------------------------------------------------------------------------------

    @_locked
    def put(self, external_id: str, splose_id: int, content_hash: str | None) -> None:
        key = numeric_key(external_id)
        if key is None:
            self._odd[external_id] = CrosswalkEntry(splose_id, content_hash)
            return
        self._pending[key] = (splose_id, content_hash)
        if len(self._pending) >= PENDING:
            self._merge_pending()

    @_locked
    def update_from(self, batches: Iterable[pa.RecordBatch]) -> None:
        """Add the rows of :data:`SCHEMA` batches (later rows win)."""
        for batch in batches:
            self._merge_pending()
            keys = batch.column("key")
            numeric = keys.is_valid().to_numpy(zero_copy_only=False)
            others = batch.filter(pa.array(~numeric))
            for external_id, splose_id, digest, text in zip(
                *(others.column(name).to_pylist() for name in ("external_id", "id", "digest", "hash")), strict=True
            ):
                self.put(external_id, splose_id, PREFIX + digest.hex() if digest is not None else text)
            rows = batch if numeric.all() else batch.filter(pa.array(numeric))
            keys, ids, digests, hashed = _columns(rows)
            self._merge(keys, ids, digests, hashed)
            if self._texts or rows.column("hash").null_count < len(rows):
                for key, text in zip(keys.tolist(), rows.column("hash").to_pylist(), strict=True):
                    if text is None:
                        self._texts.pop(key, None)
                    else:
                        self._texts[key] = text

    def _merge_pending(self) -> None:
        if not self._pending:
            return
        keys = np.fromiter(self._pending, np.uint64, len(self._pending))
        ids = np.fromiter((value[0] for value in self._pending.values()), np.int64, len(self._pending))
        found = [digest_of(content_hash) for _, content_hash in self._pending.values()]
        hashed = np.fromiter((digest is not None for digest in found), bool, len(found))
        raw = b"".join(digest or bytes(DIGEST) for digest in found)
        digests = np.frombuffer(raw, np.uint8).reshape(-1, DIGEST).copy()
        for key, (_, content_hash), digest in zip(self._pending, self._pending.values(), found, strict=True):
            if digest is None and content_hash is not None:
                self._texts[key] = content_hash
            elif self._texts:
                self._texts.pop(key, None)
        self._pending.clear()
        self._merge(keys, ids, digests, hashed)

    def _merge(self, keys: np.ndarray, ids: np.ndarray, digests: np.ndarray, hashed: np.ndarray) -> None:
        """Fold sorted-or-not new entries into the arrays; a new entry replaces an old one of its key (of two
        new ones, the later). The new entries are inserted where they sort, column by column: a merge holds
        the table once plus one column's copy, not the table's every column twice over."""
        if not len(keys):
            return
        order = np.argsort(keys, kind="stable")  # equal keys keep their order: the later one last
        keys = keys[order]
        last = np.ones(len(keys), bool)
        last[:-1] = keys[1:] != keys[:-1]
        keys, order = keys[last], order[last]
        ids, digests, hashed = ids[order], digests[order], hashed[order]
        at = np.searchsorted(self._keys, keys)
        held = at < len(self._keys)
        held[held] = self._keys[at[held]] == keys[held]
        if held.any():  # copies, not writes in place: a snapshot taken by batches() stays as it was
            self._ids = self._ids.copy()
            self._ids[at[held]] = ids[held]
            self._hashed = self._hashed.copy()
            self._hashed[at[held]] = hashed[held]
            self._digests = self._digests.copy()
            self._digests[at[held]] = digests[held]
        fresh = ~held
        if fresh.any():
            where = at[fresh]
            self._keys = np.insert(self._keys, where, keys[fresh])
            self._ids = np.insert(self._ids, where, ids[fresh])
            self._hashed = np.insert(self._hashed, where, hashed[fresh])
            self._digests = np.insert(self._digests, where, digests[fresh], axis=0)

    # -- staging ----------------------------------------------------------------------------------

    @_locked
    def entries_of(self, keys: pa.Array, external_ids: pa.Array) -> pa.RecordBatch:
        """The :data:`SCHEMA` rows of external ids this table holds, given as :data:`SCHEMA` would hold them."""
        self._merge_pending()
        numeric = keys.is_valid().to_numpy(zero_copy_only=False)
        at = np.searchsorted(self._keys, keys.fill_null(0).to_numpy()).clip(max=max(len(self._keys) - 1, 0))
        ids = self._ids[at] if len(self._keys) else np.zeros(len(keys), np.int64)
        hashed = self._hashed[at] & numeric if len(self._keys) else np.zeros(len(keys), bool)
        digests = self._digests[at] if len(self._keys) else np.zeros((len(keys), DIGEST), np.uint8)
        texts: list[str | None] = [None] * len(keys)
        for row, (key, external_id) in enumerate(zip(keys.to_pylist(), external_ids.to_pylist(), strict=True)):
            if external_id is not None:
                entry = self._odd[external_id]
                ids[row], texts[row] = entry.id, entry.content_hash
            elif self._texts:
                texts[row] = self._texts.get(key)
        return pa.RecordBatch.from_arrays(
            [
                keys,
                external_ids,
                pa.array(ids, pa.int64()),
                _digest_array(digests, hashed),
                pa.array(texts, pa.string()),
            ],
            schema=SCHEMA,
        )

    def batches(self, size: int = 65_536) -> Iterator[pa.RecordBatch]:
        """The table as :data:`SCHEMA` batches (to write to staging), as it is when this is called."""
        with self._lock:
            self._merge_pending()
            all_keys, ids, digests, hashed = self._keys, self._ids, self._digests, self._hashed
            texts, odd = dict(self._texts), [(ext, entry.id, entry.content_hash) for ext, entry in self._odd.items()]
        for start in range(0, len(all_keys), size):
            keys = all_keys[start : start + size]
            found = [texts.get(key) for key in keys.tolist()] if texts else None
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(keys, pa.uint64()),
                    pa.nulls(len(keys), pa.string()),
                    pa.array(ids[start : start + size], pa.int64()),
                    _digest_array(digests[start : start + size], hashed[start : start + size]),
                    pa.nulls(len(keys), pa.string()) if found is None else pa.array(found, pa.string()),
                ],
                schema=SCHEMA,
            )
        if odd:
            yield entries_batch(odd)


class KeySet(Container[str]):
    """A set of external ids: sorted numeric keys, and the few others as strings."""

    def __init__(self, keys: np.ndarray, odd: frozenset[str]) -> None:
        self._keys = keys
        self._odd = odd

    def __contains__(self, external_id: object) -> bool:
        if not isinstance(external_id, str):
            return False
        key = numeric_key(external_id)
        if key is None:
            return external_id in self._odd
        wanted = np.uint64(key)
        at = int(self._keys.searchsorted(wanted))
        return at < len(self._keys) and self._keys[at] == wanted


def key_set(ids: Mapping[str, int]) -> Container[str]:
    """A snapshot of a crosswalk's external ids, compact when it is a :class:`CrosswalkTable`'s."""
    return ids.table.key_set() if isinstance(ids, _Ids) else frozenset(ids)


class _Ids(Mapping[str, int]):
    def __init__(self, table: CrosswalkTable) -> None:
        self.table = table

    def __getitem__(self, external_id: str) -> int:
        return self.table[external_id].id

    def __contains__(self, external_id: object) -> bool:
        return external_id in self.table

    def __iter__(self) -> Iterator[str]:
        return iter(self.table)

    def __len__(self) -> int:
        return len(self.table)


def entries_batch(entries: list[tuple[str, int, str | None]]) -> pa.RecordBatch:
    """Rows of :data:`SCHEMA` from (external id, Splose id, content hash) triples."""
    keys = [numeric_key(external_id) for external_id, _, _ in entries]
    digests = [digest_of(content_hash) for _, _, content_hash in entries]
    return pa.RecordBatch.from_arrays(
        [
            pa.array(keys, pa.uint64()),
            pa.array([e[0] if k is None else None for e, k in zip(entries, keys, strict=True)], pa.string()),
            pa.array([e[1] for e in entries], pa.int64()),
            pa.array(digests, pa.binary(DIGEST)),
            pa.array([e[2] if d is None else None for e, d in zip(entries, digests, strict=True)], pa.string()),
        ],
        schema=SCHEMA,
    )


def _digest_array(digests: np.ndarray, hashed: np.ndarray) -> pa.Array:
    """32-byte digests, null where there is none."""
    raw = pa.py_buffer(np.ascontiguousarray(digests).tobytes())
    array = pa.FixedSizeBinaryArray.from_buffers(pa.binary(DIGEST), len(hashed), [None, raw])
    return pc.if_else(pa.array(hashed, pa.bool_()), array, pa.scalar(None, pa.binary(DIGEST)))


def _columns(rows: pa.RecordBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    keys = rows.column("key").to_numpy(zero_copy_only=False).astype(np.uint64)
    ids = rows.column("id").to_numpy(zero_copy_only=False).astype(np.int64)
    digest = rows.column("digest")
    hashed = digest.is_valid().to_numpy(zero_copy_only=False)
    raw = np.frombuffer(digest.buffers()[1], np.uint8) if len(digest) else np.empty(0, np.uint8)
    start = digest.offset * DIGEST
    digests = raw[start : start + len(digest) * DIGEST].reshape(-1, DIGEST).copy()
    return keys, ids, digests, hashed
