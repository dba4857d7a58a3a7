"""A page of a Cliniko collection decoded for staging: each record's own text, and the few fields read before.

An extraction reads a handful of a listed record's fields before it stages it (its id and links, its
timestamps, the flags that give its state) and stages the record whole. Decoding every field of every
record into dicts, only to encode each record again and free the dicts, was most of what a page cost once
fetched. Here the page is scanned once with msgspec: the envelope's list is split into each record's text
as Cliniko sent it (copied once, never encoded again), and each record is decoded into :data:`LISTED_FIELDS`
alone, skipping the rest without building it. What comes out, a :class:`ListedRecord`, reads like the dict
it stands for (``record.get(name)``) for those fields, and raises for any other: a rule that reads a field
not kept fails loudly in the tests rather than seeing None. A list item that is not an object (a null,
say) comes out as the value it is, as a whole decode would give it, so the crawl counts it unreadable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

# Every field of a listed record the extraction reads before staging it: the id and links (record_id), the
# timestamps (cursor, newest-first check), and every field a state rule of the catalog looks at (a unit
# test checks each rule against this list).
LISTED_FIELDS = (
    "id",
    "links",
    "updated_at",
    "deleted_at",
    "archived_at",
    "cancelled_at",
    "merged_at",
    "user_active",
    "active",
    "did_not_arrive",
    "patient_arrived",
    "arrived",
    "draft",
)
_KEPT = frozenset(LISTED_FIELDS)


class ListedRecord(
    msgspec.defstruct(  # type: ignore[misc]
        "_Fields",
        [*((name, object, None) for name in LISTED_FIELDS), ("text", bytes, b"")],
        rename={"text": "~listed text~"},  # set after decoding; a record holding this key has it overwritten
        gc=False,  # holds no cycles: not tracked by the garbage collector, as a dict of strings would be
    )
):
    """The fields of :data:`LISTED_FIELDS` of one listed record (None when absent) and ``text``: the record
    as Cliniko sent it, UTF-8 JSON, staged as it is."""

    def get(self, name: str, default: Any = None) -> Any:
        if name not in _KEPT:
            raise LookupError(f"a listed record keeps only {', '.join(LISTED_FIELDS)}; '{name}' is not kept")
        value = getattr(self, name)
        return default if value is None else value


@dataclass
class DecodedPage:
    """A collection page: its records (:class:`ListedRecord`, or the value of an item that is not an
    object), and the envelope's ``links`` and count fields as decoded values."""

    records: list
    envelope: dict[str, Any]


class InvalidJSON(ValueError):
    """The body is not UTF-8 JSON (truncated, say)."""


class MalformedPage(ValueError):
    """The body is JSON, but not an object whose ``list_key`` is a list."""


_ENVELOPE = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ITEMS = msgspec.json.Decoder(list[msgspec.Raw])
_RECORD = msgspec.json.Decoder(ListedRecord)
_ANY = msgspec.json.Decoder()
ENVELOPE_FIELDS = ("links", "total_entries", "total_entires")  # what a page's envelope is read for


def decode_page(body: bytes, list_key: str) -> DecodedPage:
    """Raises :class:`InvalidJSON` or :class:`MalformedPage`."""
    try:
        body.decode()  # the whole body is UTF-8 (a skipped string is not checked by the scan)
        envelope = _ENVELOPE.decode(body)
    except msgspec.ValidationError:
        raise MalformedPage(f"not an object holding '{list_key}'") from None
    except (UnicodeDecodeError, msgspec.DecodeError):
        raise InvalidJSON("truncated or invalid JSON") from None
    try:
        items = _ITEMS.decode(envelope[list_key])
    except (KeyError, msgspec.ValidationError):
        raise MalformedPage(f"'{list_key}' is missing or not a list") from None
    fields = {name: _ANY.decode(envelope[name]) for name in ENVELOPE_FIELDS if name in envelope}
    return DecodedPage([_record(item) for item in items], fields)


def _record(item: msgspec.Raw) -> ListedRecord | Any:
    try:
        record = _RECORD.decode(item)
    except msgspec.ValidationError:  # not an object, or one holding the key the text is kept under: whole
        return _ANY.decode(item)
    record.text = bytes(item)
    return record
