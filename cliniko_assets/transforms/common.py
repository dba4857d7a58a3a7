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
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from cliniko_assets.catalog import is_set, linked_id, record_id

DELETED = "deleted in Cliniko"
NOT_IN_CLINIKO = "not in Cliniko (only referenced by other records)"

Record = Mapping[str, Any]


@dataclass(frozen=True)
class Skip:
    """A Cliniko record deliberately not sent to Splose, with a short stable reason (field names and ids only).

    Whether the clinic must hear about it is decided from the reason by ``cliniko_assets.attention``.
    """

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
    imported: Mapping[str, Container[str]] = field(default_factory=dict)  # external ids, per entity
    # kind ("business", "practitioner") -> ids the list routes did not return and the mapping does not cover
    unresolved: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # resource ("patients", "treatment_note_templates") -> ids other records point at that Cliniko does not have
    missing: Mapping[str, frozenset[str]] = field(default_factory=dict)
    services_ignored: frozenset[str] = frozenset()
    # ISO 3166-1 alpha-2 region of the clinic (its businesses' country), the default for phone numbers
    default_region: str | None = None
    # The booking of a Cliniko attendee (attendee id -> booking id): a treatment note written for an
    # attendee shows an ``attendee`` link and no ``booking`` link, so its appointment is found through it.
    booking_of_attendee: Callable[[str], str | None] = field(default=lambda _attendee: None)

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


def is_missing(record: Record) -> bool:
    """A stub staged for a record other records point at and Cliniko answers 404 for."""
    return record.get("_state") == "missing"


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
        moment = moment.astimezone(UTC)  # (strftime's %Y does not pad a year before 1000 to four digits)
        return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}Z"
    except (ValueError, OverflowError) as error:
        raise Malformed(name) from error


def require_timestamp(record: Record, name: str) -> str:
    found = timestamp(record, name)
    if found is None:
        raise Malformed(name, "missing")
    return found


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]{2,}\Z")


def email(record: Record, name: str) -> str | None:
    """An optional email address; one that cannot be an address (no ``@``, spaces, no domain) is malformed."""
    value = text(record, name)
    if value is None:
        return None
    if not EMAIL.match(value.strip()):
        raise Malformed(name)
    return value.strip()


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


PHONE_TYPES = {kind.lower(): kind for kind in ("Mobile", "Home", "Work", "Fax", "Other")}
