"""What every transform shares: the result types, the import context, and tolerant readers of Cliniko fields.

Cliniko records come as the API returns them (ids as strings or ints, ``""`` for an unset timestamp in
older payloads, optional fields missing) plus ``_state`` and ``_source`` added by staging. The readers
below turn each field into the value Splose wants or raise :class:`Malformed` naming the field; the
``total`` decorator turns that into a :class:`Skip`, so no record ever makes a transform raise and no
reason ever carries a value (only field names and ids).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from cliniko_assets.catalog import is_set, linked_id, record_id

DELETED = "deleted in Cliniko"
LOCATION_IGNORED = "location ignored"
LOCATION_NOT_MAPPED = "location not mapped"
CLIENT_NOT_IMPORTED = "client not imported"
PRACTITIONER_NOT_MAPPED = "practitioner not mapped"
SERVICE_NOT_MAPPED = "appointment type not mapped"

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Skip:
    """A Cliniko record deliberately not sent to Splose, with a short stable reason (field names and ids only)."""

    cliniko_id: str
    reason: str


@dataclass(frozen=True)
class ImportContext:
    """The clinic's mapping and what is already in Splose: everything a transform may depend on."""

    locations: Mapping[str, int | None]
    practitioners: Mapping[str, int]
    users: Mapping[str, int]
    services: Mapping[str, int]
    business_time_zones: Mapping[str, str]
    imported: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def is_imported(self, entity: str, external_id: str) -> bool:
        """Whether a dependency made it into Splose; an entity the context does not track counts as present."""
        present = self.imported.get(entity)
        return present is None or external_id in present


class Malformed(Exception):
    """A field a transform needs is missing or unusable; the message names the field, never its value."""

    def __init__(self, name: str, problem: str = "malformed") -> None:
        super().__init__(f"{problem} {name}")
        self.reason = f"{problem} {name}"


class Skipped(Exception):
    """Raised inside a transform to skip the record for a reason other than malformed input."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


P = ParamSpec("P")
R = TypeVar("R")


def total(transform: Callable[P, R]) -> Callable[P, R | Skip]:
    """Make ``transform(record, ...)`` total: :class:`Malformed` and :class:`Skipped` become a :class:`Skip`."""

    first = next(iter(inspect.signature(transform).parameters))

    @wraps(transform)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Skip:
        record = args[0] if args else kwargs.get(first)
        if not isinstance(record, Mapping):
            return Skip("", "malformed record")
        try:
            return transform(*args, **kwargs)
        except (Malformed, Skipped) as problem:
            return Skip(cliniko_id(record) or "", problem.reason)

    return wrapper


def _link_self(value: Any) -> str | None:
    links = value.get("links") if isinstance(value, Mapping) else None
    target = links.get("self") if isinstance(links, Mapping) else None
    return target if isinstance(target, str) else None


def cliniko_id(record: Record) -> str | None:
    """The record's id as a string (int or string ids; deletion stubs carry it only in ``links.self``)."""
    value = record.get("id")
    if isinstance(value, bool) or not isinstance(value, (str, int, type(None))):
        return None
    if value in (None, "") and _link_self(record) is None:
        return None
    return record_id({"id": value, "links": {"self": _link_self(record) or ""}})


def require_id(record: Record) -> str:
    found = cliniko_id(record)
    if not found:
        raise Malformed("id", "missing")
    return found


def link(record: Record, name: str) -> str | None:
    """The id behind link ``name`` (``{"links": {"self": ".../patients/82"}}``), or a plain ``<name>_id``."""
    target = record.get(name)
    if _link_self(target) is not None:
        return linked_id({name: {"links": {"self": _link_self(target)}}}, name)
    plain = record.get(f"{name}_id")
    if isinstance(plain, int) and not isinstance(plain, bool):
        return str(plain)
    if isinstance(plain, str) and plain.isdigit():
        return plain
    return None


def require_link(record: Record, name: str) -> str:
    found = link(record, name)
    if found is None:
        raise Malformed(f"{name} link", "missing")
    return found


def is_deleted(record: Record) -> bool:
    return record.get("_state") == "deleted" or record.get("_source") == "deleted" or is_set(record.get("deleted_at"))


def is_archived(record: Record) -> bool:
    return record.get("_state") in ("archived", "merged") or is_set(record.get("archived_at"))


def text(record: Record, name: str) -> str | None:
    """An optional string field; ``""`` and null are null, numbers become their decimal text."""
    value = record.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise Malformed(name)


def integer(record: Record, name: str) -> int | None:
    """An optional integer field, also accepted as a string of digits."""
    value = record.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise Malformed(name)


def timestamp(record: Record, name: str) -> str | None:
    """An optional UTC datetime as ``YYYY-MM-DDTHH:MM:SSZ``; ``""`` is null, offsets are converted to UTC."""
    value = record.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}T", value):
        raise Malformed(name)
    try:
        moment = datetime.fromisoformat(value.replace("z", "Z"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (ValueError, OverflowError) as error:
        raise Malformed(name) from error


def require_timestamp(record: Record, name: str) -> str:
    found = timestamp(record, name)
    if found is None:
        raise Malformed(name, "missing")
    return found


def calendar_date(record: Record, name: str) -> str | None:
    """An optional ``YYYY-MM-DD`` date."""
    value = record.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise Malformed(name)
    try:
        date.fromisoformat(value)
    except ValueError as error:
        raise Malformed(name) from error
    return value


def location_for(business_id: str | None, ctx: ImportContext) -> int:
    """The Splose location of a Cliniko business; skips records of ignored or unmapped businesses."""
    if business_id is None:
        raise Malformed("business link", "missing")
    if business_id not in ctx.locations:
        raise Skipped(LOCATION_NOT_MAPPED)
    location = ctx.locations[business_id]
    if location is None:
        raise Skipped(LOCATION_IGNORED)
    return location


def practitioner_for(record: Record, ctx: ImportContext) -> int:
    practitioner = ctx.practitioners.get(require_link(record, "practitioner"))
    if practitioner is None:
        raise Skipped(PRACTITIONER_NOT_MAPPED)
    return practitioner


PHONE_TYPES = {kind.lower(): kind for kind in ("Mobile", "Home", "Work", "Fax", "Other")}
# Calling codes of the countries Cliniko serves (E.164 codes are prefix-free, so the first match is the
# code); a number in another country keeps its whole "+..." text unless a separator marks the code.
CALLING_CODES = (
    "1", "7", "27", "30", "31", "32", "33", "34", "36", "39", "41", "43", "44", "45", "46", "47", "48", "49",
    "52", "55", "60", "61", "62", "63", "64", "65", "66", "81", "82", "86", "91", "351", "352", "353", "354",
    "356", "357", "358", "852", "971", "972",
)  # fmt: skip


def phone_numbers(record: Record, name: str) -> list[dict[str, Any]]:
    """Cliniko ``[{phone_type, number}]`` -> Splose ``[{type, code, phoneNumber}]``.

    ``phone_type`` Mobile/Home/Work/Fax/Other (any case) keeps its name, any other type becomes
    ``Other`` and a missing one null. A leading ``+<calling code>`` goes to ``code`` ("+61") and the
    rest, without the separator, to ``phoneNumber``. Entries without a number are dropped.
    """
    items = record.get(name)
    if items is None or items == "":
        return []
    if not isinstance(items, list):
        raise Malformed(name)
    result = []
    for item in items:
        if not isinstance(item, Mapping):
            raise Malformed(name)
        number = text(item, "number")
        if number is None or not number.strip():
            continue
        kind = text(item, "phone_type")
        code, rest = split_calling_code(number.strip())
        result.append(
            {
                "type": None if kind is None else PHONE_TYPES.get(kind.strip().lower(), "Other"),
                "code": code,
                "phoneNumber": rest,
            }
        )
    return result


def split_calling_code(number: str) -> tuple[str | None, str]:
    if not number.startswith("+"):
        return None, number
    digits = number[1:]
    for code in CALLING_CODES:
        rest = digits[len(code) :].lstrip(" -.")
        if digits.startswith(code) and re.search(r"\d", rest):
            return f"+{code}", rest
    separated = re.match(r"^\+(\d{1,3})[\s\-.]+(.*\d.*)$", number)
    if separated:
        return f"+{separated.group(1)}", separated.group(2)
    return None, number
