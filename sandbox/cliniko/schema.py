"""How a generated clinic is stored: one SQLite table per resource, the same columns in each.

Each record's full body is kept as JSON text with links written as ``$BASE/<path>``; the server swaps
``$BASE`` for the request's absolute ``.../v1`` prefix when it answers, so one stored clinic serves any
host, port or shard path. The columns beside the body are the ones filters, sorting, hiding rules and
the ground truth need, kept in step with the body by ``row_for``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

BASE = "$BASE"

RESOURCES = (
    "businesses",
    "users",
    "practitioners",
    "practitioner_reference_numbers",
    "appointment_types",
    "patients",
    "contacts",
    "individual_appointments",
    "group_appointments",
    "attendees",
    "daily_availabilities",
    "patient_attachments",
    "treatment_note_templates",
    "treatment_notes",
)

# Foreign-key column -> the body link it is read from.
LINK_COLUMNS = {
    "patient_id": "patient",
    "practitioner_id": "practitioner",
    "business_id": "business",
    "appointment_type_id": "appointment_type",
    "booking_id": "booking",
    "user_id": "user",
    "repeated_from_id": "repeated_from",
    "treatment_note_template_id": "treatment_note_template",
    "attendee_id": "attendee",
}
TIME_COLUMNS = ("created_at", "updated_at", "archived_at", "deleted_at", "cancelled_at", "starts_at", "ends_at")
COLUMNS = ("id", *TIME_COLUMNS, "state", *LINK_COLUMNS, "body")

_DDL = """
CREATE TABLE IF NOT EXISTS {t} (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    archived_at TEXT, deleted_at TEXT, cancelled_at TEXT, starts_at TEXT, ends_at TEXT,
    state TEXT NOT NULL,
    patient_id INTEGER, practitioner_id INTEGER, business_id INTEGER, appointment_type_id INTEGER,
    booking_id INTEGER, user_id INTEGER, repeated_from_id INTEGER, treatment_note_template_id INTEGER,
    attendee_id INTEGER,
    body TEXT NOT NULL
)
"""

# Built after the bulk load (cheaper than maintaining them row by row). The first two serve default lists
# (hidden rows left out) in the two usual sort orders; the next two serve lists that include archived or
# cancelled rows, ordered and filtered without reading a row's body; the rest serve filters by parent.
_INDEXES = (
    ("vis_created", "deleted_at, archived_at, cancelled_at, created_at"),
    ("vis_updated", "deleted_at, archived_at, cancelled_at, updated_at"),
    ("all_created", "created_at, id, deleted_at, archived_at, cancelled_at"),
    ("all_updated", "updated_at, id, deleted_at, archived_at, cancelled_at"),
    ("patient", "patient_id"),
    ("practitioner", "practitioner_id"),
    ("booking", "booking_id"),
    ("state", "state"),
)


# The account's settings (``GET /settings`` and ``/settings/public``): one row, the full documented body.
SETTINGS_DDL = "CREATE TABLE IF NOT EXISTS settings (id INTEGER PRIMARY KEY, body TEXT NOT NULL)"


def create_tables(db: sqlite3.Connection) -> None:
    for table in RESOURCES:
        db.execute(_DDL.format(t=table))
    db.execute(SETTINGS_DDL)


def create_indexes(db: sqlite3.Connection) -> None:
    for table in RESOURCES:
        for name, cols in _INDEXES:
            db.execute(f"CREATE INDEX IF NOT EXISTS {table}_{name} ON {table} ({cols})")
    db.execute("ANALYZE")


def is_set(value: object) -> bool:
    """Cliniko's old docs show ``""`` for an empty timestamp; it counts as not set."""
    return value not in (None, "")


def _link_id(body: dict, key: str) -> int | None:
    link = body.get(key)
    if not isinstance(link, dict):
        return None
    url = link.get("links", {}).get("self", "")
    tail = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _state_patients(b: dict) -> str:
    if is_set(b.get("deleted_at")):
        return "deleted"
    if is_set(b.get("archived_at")):
        return "merged" if is_set(b.get("merged_at")) else "archived"
    return "active"


def _state_individual_appointments(b: dict) -> str:
    for field, state in (("deleted_at", "deleted"), ("archived_at", "archived"), ("cancelled_at", "cancelled")):
        if is_set(b.get(field)):
            return state
    if b.get("did_not_arrive"):
        return "did_not_arrive"
    return "arrived" if b.get("patient_arrived") else "booked"


def _state_attendees(b: dict) -> str:
    for field, state in (("deleted_at", "deleted"), ("archived_at", "archived"), ("cancelled_at", "cancelled")):
        if is_set(b.get(field)):
            return state
    return "arrived" if b.get("arrived") else "booked"


def _state_treatment_notes(b: dict) -> str:
    if is_set(b.get("deleted_at")):
        return "deleted"
    if is_set(b.get("archived_at")):
        return "archived"
    return "draft" if b.get("draft") else "final"


def _deleted_archived_active(b: dict) -> str:
    if is_set(b.get("deleted_at")):
        return "deleted"
    return "archived" if is_set(b.get("archived_at")) else "active"


def _archived_active(b: dict) -> str:
    return "archived" if is_set(b.get("archived_at")) else "active"


def _missing_archived_active(b: dict) -> str:
    """Businesses and appointment types have no deletion feed: a deleted one is listed nowhere and its by-id
    GET answers 404, so an importer only ever meets it as a link it cannot follow ("missing")."""
    return "missing" if is_set(b.get("deleted_at")) else _archived_active(b)


def _practitioner(b: dict) -> str:
    if is_set(b.get("deleted_at")):
        return "missing"
    return "active" if b.get("active") else "inactive"


# Rows whose state the generator sets after the insert, and that no body field shows: practitioners the
# key's lists do not return although GET /practitioners/:id answers ("unlisted"). A write recomputes the
# state from the body, which lists the row again.
UNLISTED = "unlisted"


STATES: dict[str, Callable[[dict], str]] = {
    "businesses": _missing_archived_active,
    "users": lambda b: "active" if b.get("user_active") else "inactive",
    "practitioners": _practitioner,
    "practitioner_reference_numbers": lambda b: "active",
    "appointment_types": _missing_archived_active,
    "patients": _state_patients,
    "contacts": _archived_active,
    "individual_appointments": _state_individual_appointments,
    "group_appointments": _deleted_archived_active,
    "attendees": _state_attendees,
    "daily_availabilities": lambda b: "active",
    "patient_attachments": _archived_active,
    "treatment_note_templates": lambda b: "deleted" if is_set(b.get("deleted_at")) else "active",
    "treatment_notes": _state_treatment_notes,
}


# Every state of every resource, in the order the rules are applied (first match wins).
STATE_NAMES = {
    "businesses": ("missing", "archived", "active"),
    "users": ("inactive", "active"),
    "practitioners": ("missing", "unlisted", "inactive", "active"),
    "practitioner_reference_numbers": ("active",),
    "appointment_types": ("missing", "archived", "active"),
    "patients": ("deleted", "merged", "archived", "active"),
    "contacts": ("archived", "active"),
    "individual_appointments": ("deleted", "archived", "cancelled", "did_not_arrive", "arrived", "booked"),
    "group_appointments": ("deleted", "archived", "active"),
    "attendees": ("deleted", "archived", "cancelled", "arrived", "booked"),
    "daily_availabilities": ("active",),
    "patient_attachments": ("archived", "active"),
    "treatment_note_templates": ("deleted", "active"),
    "treatment_notes": ("deleted", "archived", "draft", "final"),
}


def row_for(resource: str, body: dict) -> tuple:
    """The table row for a record body, in ``COLUMNS`` order."""
    times = [body.get(c) or None for c in TIME_COLUMNS]
    links = [_link_id(body, key) for key in LINK_COLUMNS.values()]
    return (int(body["id"]), *times, STATES[resource](body), *links, json.dumps(body, ensure_ascii=False))


INSERT_SQL = {t: f"INSERT INTO {t} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})" for t in RESOURCES}
REPLACE_SQL = {t: s.replace("INSERT", "INSERT OR REPLACE", 1) for t, s in INSERT_SQL.items()}
