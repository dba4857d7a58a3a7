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
# A warning that names a value imported adjusted rather than a field left out (the report's ADJUSTED_LABELS).
ZERO_MINUTES = "zero_minutes"

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
    """Cut each string of a record that is longer than Splose holds (:data:`SHORT_TEXT`, free text aside) to fit,
    and keep the whole value in free text of the record (one labelled line each), instead of Splose rejecting the
    record and, with a client, everything of theirs; returns how many fields were cut.

    ``clients``, ``contacts``, ``appointments``: their top-level strings, kept whole in the record's free text.
    ``progressNotes``, ``progressNoteTemplates``: the title (a template's name), a section's or question's name and
    a choice, kept whole in the section's description (the title: the first section's). A value with nowhere to be
    kept whole (a note without a section) or no room left there (65,535 characters) is left as it is, and so are
    other entities' values: Splose names the field if it refuses."""
    if entity in SECTIONED:
        return _fit_sections(record, SECTIONED[entity])
    kept_in = KEPT_WHOLE_IN.get(entity)
    if kept_in is None:
        return 0
    cuts = [_Cut(record, name) for name, value in list(record.items()) if name not in FREE_TEXT and _too_long(value)]
    return _keep(record, kept_in, cuts)


SECTIONED = {"progressNotes": "title", "progressNoteTemplates": "name"}  # records of sections: their title field


def _fit_sections(record: dict[str, Any], title: str) -> int:
    sections = [s for s in record.get("sections") or [] if isinstance(s, dict)]
    kept = 0
    for number, section in enumerate(sections):
        cuts = [_Cut(record, title)] if number == 0 and _too_long(record.get(title)) else []
        cuts += [_Cut(section, "name", "section name")] if _too_long(section.get("name")) else []
        questions = section.get("questions") or []
        for q, question in enumerate(questions, start=1):
            if not isinstance(question, dict):
                continue
            cuts += [_Cut(question, "name", f"question {q} name")] if _too_long(question.get("name")) else []
            options = question.get("options") or []
            for n, option in enumerate(options):
                holder, field = (option, "value") if isinstance(option, dict) else (options, n)
                if _too_long(option.get("value") if isinstance(option, dict) else option):
                    cuts.append(_Cut(holder, field, f"question {q} option {n + 1}"))
        kept += _keep(section, "description", cuts)
    return kept


class _Cut:
    """A value cut to fit (at once), with the line that keeps it whole."""

    def __init__(self, holder: Any, field: Any, label: object = None) -> None:
        self.holder, self.field, self.value = holder, field, holder[field]
        holder[field] = self.value[: SHORT_TEXT - 1] + "…"
        self.line = f"{label or field} (longer than Splose's {SHORT_TEXT} characters, cut there), whole: {self.value}"

    def undo(self) -> None:
        self.holder[self.field] = self.value


def _too_long(value: object) -> bool:
    return isinstance(value, str) and len(value) > SHORT_TEXT


def _keep(holder: dict[str, Any], kept_in: str, cuts: list[_Cut]) -> int:
    """Append the cut values' lines to ``holder[kept_in]`` and return how many; when they do not all fit there
    whole, undo the cuts (Splose then names the field) and return 0."""
    if not cuts:
        return 0
    lines = [cut.line for cut in cuts]
    whole = "\n".join([holder[kept_in], *lines] if holder.get(kept_in) else lines)
    if len(whole) > FREE_TEXT_MAX:
        for cut in cuts:
            cut.undo()
        return 0
    holder[kept_in] = whole
    return len(cuts)
