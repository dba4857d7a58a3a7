"""One bad field is not a lost record: what a transform does with a value it cannot use.

A transform reads the fields a record can live without through a :class:`Salvage`. An unusable value
(an impossible date, an address that is not text, a malformed email, phone number or custom field) is
left out of the Splose record, its Cliniko field name is counted as a warning, and the value itself is
kept verbatim in a line the transform appends to the record's free text (a client's ``extraInfo``, a
contact's ``notes``, an appointment's ``note``) where Splose has room for it. The field names travel
with the record under the reserved key :data:`WARNINGS`, which the load step removes and counts before
the record is sent; metadata only ever holds the names, never the values.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from cliniko_assets.transforms.common import PHONE_TYPES, Malformed, Record, text
from cliniko_assets.transforms.phones import split_phone

WARNINGS = "_warnings"
VERBATIM_LIMIT = 500
# Warnings that name a value imported adjusted rather than a field left out, each with what was done: the report
# gives each a line of its own.
ZERO_MINUTES = "zero_minutes"
ADJUSTED = {
    ZERO_MINUTES: "of 0 minutes (Cliniko's end is its start): imported ending a minute later, said in their notes",
}

T = TypeVar("T")


def verbatim(value: object) -> str:
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return shown if len(shown) <= VERBATIM_LIMIT else shown[:VERBATIM_LIMIT] + "..."


class Salvage:
    """The unusable fields of one Cliniko record, as it is transformed."""

    def __init__(self, record: Record) -> None:
        self.record = record
        self.fields: list[str] = []
        self.lines: list[str] = []

    def read(self, reader: Callable[..., T], name: str, *args: Any) -> T | None:
        """``reader(record, name, *args)``; a :class:`Malformed` value is dropped and kept verbatim."""
        try:
            return reader(self.record, name, *args)
        except Malformed:
            self.drop(name, self.record.get(name))
            return None

    def drop(self, name: str, value: object, why: str = "unusable") -> None:
        self.fields.append(name)
        self.lines.append(f"Cliniko {name} ({why}, not imported): {verbatim(value)}")

    def note(self, name: str, line: str) -> None:
        """A warning about ``name`` whose explanation is not a Cliniko value (e.g. a dangling reference)."""
        self.fields.append(name)
        self.lines.append(line)

    def appended_to(self, existing: str | None) -> str | None:
        """``existing`` free text with the dropped values after it, or null when there is nothing."""
        return "\n".join([existing, *self.lines] if existing else self.lines) or None

    def finish(self, record: dict[str, Any]) -> dict[str, Any]:
        if self.fields:
            record[WARNINGS] = sorted(set(self.fields))
        return record


def pop_warnings(record: dict[str, Any]) -> list[str]:
    """The field names a transform could not use; removes them from ``record`` (Splose rejects unknown keys)."""
    return list(record.pop(WARNINGS, None) or [])


def phone_numbers(salvage: Salvage, name: str, regions: Iterable[str | None]) -> list[dict[str, Any]]:
    """Cliniko ``[{phone_type, number}]`` -> Splose ``[{type, code, phoneNumber}]``.

    ``phone_type`` Mobile/Home/Work/Fax/Other (any case) keeps its name, any other type becomes ``Other``
    and a missing one null. ``code`` and ``phoneNumber`` come from :func:`phones.split_phone` with
    ``regions`` as default regions. Entries without a number are left out; an entry that is not a phone
    number at all (no digit, not an object) is dropped with a warning and kept verbatim.
    """
    items = salvage.record.get(name)
    if items is None or items == "":
        return []
    if not isinstance(items, list):
        salvage.drop(name, items)
        return []
    regions = list(regions)
    result = []
    for item in items:
        entry = _phone_entry(item, regions)
        if entry is None:
            salvage.drop(name, item)
        elif entry:
            result.append(entry)
    return result


def _phone_entry(item: object, regions: list[str | None]) -> dict[str, Any] | None:
    """The Splose entry, ``{}`` for an entry without a number, ``None`` for one that is unusable."""
    if not isinstance(item, Mapping):
        return None
    try:
        number, kind = text(item, "number"), text(item, "phone_type")
    except Malformed:
        return None
    if number is None or not number.strip():
        return {}
    split = split_phone(number, regions)
    if split is None:
        return None
    code, rest = split
    return {
        "type": None if kind is None else PHONE_TYPES.get(kind.strip().lower(), "Other"),
        "code": code,
        "phoneNumber": rest,
    }


SHORT_TEXT = 255  # the most characters of a Splose string field other than free text (the import API's contract)
FREE_TEXT = frozenset(
    {
        *("note", "notes", "alert", "extraInfo", "extraBillingInfo"),
        *("description", "answer", "defaultAnswer", "cancellationNote"),
    }
)
FREE_TEXT_MAX = 65_535
# Where a record keeps, whole, a value longer than its Splose field holds.
KEPT_WHOLE_IN = {"clients": "extraInfo", "contacts": "notes", "appointments": "note"}


def fit_short_fields(entity: str, record: dict[str, Any]) -> int:
    """Cut each top-level string of a ``clients``, ``contacts`` or ``appointments`` record that is longer than
    Splose holds (:data:`SHORT_TEXT`, free text aside) to fit, and keep the whole value in the record's free text
    (one labelled line each), instead of Splose rejecting the record and, with a client, everything of theirs;
    returns how many fields were cut. Other entities are left as they are (Splose names the field if it refuses)."""
    kept_in = KEPT_WHOLE_IN.get(entity)
    if kept_in is None:
        return 0
    lines = []
    for name, value in record.items():
        if isinstance(value, str) and name not in FREE_TEXT and len(value) > SHORT_TEXT:
            record[name] = value[: SHORT_TEXT - 1] + "…"
            lines.append(f"{name} (longer than Splose's {SHORT_TEXT} characters, cut there), whole: {value}")
    if lines:
        whole = "\n".join([record[kept_in], *lines] if record.get(kept_in) else lines)
        record[kept_in] = whole if len(whole) <= FREE_TEXT_MAX else whole[: FREE_TEXT_MAX - 1] + "…"
    return len(lines)
