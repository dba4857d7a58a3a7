"""The fourteen Cliniko resources this importer extracts: where each lives and how its records are counted.

Resources that Cliniko can hard-delete without a deletion feed, and that stay small (a clinic's
businesses, staff, reference numbers, appointment types, availabilities, templates), are listed in
full on every sync so a disappearance is seen, unless each of their routes counts exactly what is staged
and none changed since the last listing (one request each, asked when a route holds more than a page:
:meth:`~cliniko_assets.extraction.Extraction._unchanged`). The large ones are incremental: only records updated
since the cursor, plus the resource's deletion feed. Contacts and patient attachments are incremental
but have no deletion feed (``hard_deletes``): their full id list is compared with staging when the
count Cliniko reports disagrees, and periodically.

Archived and cancelled rows come from the main list with ``q[]=archived_at:*`` / ``cancelled_at:*``.
Older accounts answer those filters with the default list (archived and cancelled rows left out) and
serve the rows only on the older routes (``/patients/archived`` ...): a ``fallback_for`` stream is read
when the main list returned no row with that field set, so an account of either kind is read whole.

Cliniko's docs leave open whether a filter on a field a resource's docs do not list is refused, and
whether ``q[]=deleted_at:?`` replaces the ``/deleted`` routes. A main list refused (400) for its
``archived_at:*`` / ``cancelled_at:*`` is listed without it (the older route then serves those rows, where
there is one); a ``deletions`` route that answers 404 is replaced by the main list with ``DELETED_ROWS``
(:class:`~cliniko_assets.crawl.Crawl`). What neither variant can list is reported, never dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from splose_resources.listing import ListedRecord


def is_set(value) -> bool:
    """Cliniko's older payloads send ``""`` where they mean null."""
    return value not in (None, "", False)


@dataclass(frozen=True)
class Stream:
    """One route of a resource. ``deletions`` routes list deleted rows (filtered by ``deleted_at``).

    ``fallback_for`` names the field (``archived_at``, ``cancelled_at``) whose rows this older route
    serves when the main list's filter on that field is not honoured.
    """

    name: str
    path: str
    filters: tuple[str, ...] = ()
    deletions: bool = False
    fallback_for: str | None = None


@dataclass(frozen=True)
class ClinikoResourceSpec:
    name: str
    list_key: str
    streams: tuple[Stream, ...]
    state: Callable[[dict, str], str]
    incremental: bool
    has_files: bool = False
    hard_deletes: bool = False  # Cliniko removes records without a trace (no deletion feed)
    # (parent resource, its route of this resource with ``{id}``): where the main route is absent (404), as on
    # accounts of Cliniko's older docs, each staged parent's route lists the records instead (cliniko_assets.nested).
    nested: tuple[str, str] | None = None
    description: str = ""
    states: tuple[str, ...] = field(default=())  # every state ``state`` can return


def _flagged(*rules: tuple[str, Callable[[dict, str], bool]], default: str) -> Callable[[dict, str], str]:
    def state(record: dict, source: str) -> str:
        for name, rule in rules:
            if rule(record, source):
                return name
        return default

    return state


def _deleted(record: dict, source: str) -> bool:
    return source == "deleted" or is_set(record.get("deleted_at"))


def _field(name: str) -> Callable[[dict, str], bool]:
    return lambda record, _source: is_set(record.get(name))


def _listed_or_field(route: str, name: str) -> Callable[[dict, str], bool]:
    """Set on the record, or the record came from the older route that lists only such rows."""
    return lambda record, source: source == route or is_set(record.get(name))


ARCHIVED = ("archived", _listed_or_field("archived", "archived_at"))
DELETED = ("deleted", _deleted)
CANCELLED = ("cancelled", _listed_or_field("cancelled", "cancelled_at"))

ALL_ROWS = "archived_at:*"
ALL_CANCELLED = "cancelled_at:*"
DELETED_ROWS = "deleted_at:?"  # on a main list: its deleted rows, on accounts without the /deleted routes
# Records other records point at that no list route returned: fetched by id ("unlisted"), or a stub for an
# id Cliniko answered 404 for ("missing"). Staged by ``cliniko_assets.references`` after the crawl.
BY_ID = ("unlisted", "missing")


def _archived_route(path: str) -> Stream:
    return Stream("archived", f"{path}/archived", fallback_for="archived_at")


def _cancelled_route(path: str) -> Stream:
    # Archived rows hide from every list unless asked for, the older cancelled route's too.
    return Stream("cancelled", f"{path}/cancelled", (ALL_ROWS,), fallback_for="cancelled_at")


CATALOG: tuple[ClinikoResourceSpec, ...] = (
    ClinikoResourceSpec(
        name="businesses",
        list_key="businesses",
        streams=(Stream("main", "/businesses", (ALL_ROWS,)),),
        state=_flagged(ARCHIVED, default="active"),
        states=("active", "archived", *BY_ID),
        incremental=False,
        description="Clinic locations (incl. archived), with their time zones.",
    ),
    ClinikoResourceSpec(
        name="users",
        list_key="users",
        streams=(Stream("main", "/users"),),
        state=_flagged(("inactive", lambda r, _s: r.get("user_active") is False), default="active"),
        states=("active", "inactive"),
        incremental=False,
        description="Every user of the account, practitioners or not.",
    ),
    ClinikoResourceSpec(
        name="practitioners",
        list_key="practitioners",
        streams=(Stream("main", "/practitioners"), Stream("inactive", "/practitioners/inactive")),
        state=_flagged(
            ("inactive", lambda r, s: s == "inactive" or r.get("active") is False),
            default="active",
        ),
        states=("active", "inactive", *BY_ID),
        incremental=False,
        description="Active and inactive practitioners.",
    ),
    ClinikoResourceSpec(
        name="practitioner_reference_numbers",
        list_key="practitioner_reference_numbers",
        streams=(Stream("main", "/practitioner_reference_numbers"),),
        state=_flagged(default="active"),
        states=("active",),
        incremental=False,
        nested=("practitioners", "/practitioners/{id}/practitioner_reference_numbers"),
        description="Provider numbers per practitioner and business.",
    ),
    ClinikoResourceSpec(
        name="appointment_types",
        list_key="appointment_types",
        streams=(Stream("main", "/appointment_types", (ALL_ROWS,)), _archived_route("/appointment_types")),
        state=_flagged(ARCHIVED, default="active"),
        states=("active", "archived", *BY_ID),
        incremental=False,
        description="Appointment types (incl. archived); max_attendees > 1 marks group types.",
    ),
    ClinikoResourceSpec(
        name="patients",
        list_key="patients",
        streams=(
            Stream("main", "/patients", (ALL_ROWS,)),
            _archived_route("/patients"),
            Stream("deleted", "/patients/deleted", deletions=True),
        ),
        state=_flagged(DELETED, ("merged", _field("merged_at")), ARCHIVED, default="active"),
        states=("active", "archived", "merged", "deleted", *BY_ID),
        incremental=True,
        description="Patients (incl. archived and merged); deleted ones kept as deletion stubs.",
    ),
    ClinikoResourceSpec(
        name="contacts",
        list_key="contacts",
        streams=(Stream("main", "/contacts", (ALL_ROWS,)),),
        state=_flagged(DELETED, ARCHIVED, default="active"),
        states=("active", "archived", "deleted"),
        incremental=True,
        hard_deletes=True,
        description="Contacts of every type; doctors are patients' referring doctors.",
    ),
    ClinikoResourceSpec(
        name="individual_appointments",
        list_key="individual_appointments",
        streams=(
            Stream("main", "/individual_appointments", (ALL_ROWS, ALL_CANCELLED)),
            _cancelled_route("/individual_appointments"),
            Stream("deleted", "/individual_appointments/deleted", deletions=True),
        ),
        state=_flagged(
            DELETED,
            ARCHIVED,
            CANCELLED,
            ("did_not_arrive", lambda r, _s: r.get("did_not_arrive") is True),
            ("arrived", lambda r, _s: r.get("patient_arrived") is True),
            default="booked",
        ),
        states=("booked", "arrived", "did_not_arrive", "cancelled", "archived", "deleted"),
        incremental=True,
        description="Individual appointments in every state, incl. cancelled, archived and deleted.",
    ),
    ClinikoResourceSpec(
        name="group_appointments",
        list_key="group_appointments",
        streams=(
            Stream("main", "/group_appointments", (ALL_ROWS,)),
            Stream("deleted", "/group_appointments/deleted", deletions=True),
        ),
        state=_flagged(DELETED, ARCHIVED, default="active"),
        states=("active", "archived", "deleted"),
        incremental=True,
        description="Group appointments (incl. archived and deleted).",
    ),
    ClinikoResourceSpec(
        name="attendees",
        list_key="attendees",
        streams=(
            Stream("main", "/attendees", (ALL_ROWS, ALL_CANCELLED)),
            _cancelled_route("/attendees"),
            Stream("deleted", "/attendees/deleted", deletions=True),
        ),
        state=_flagged(
            DELETED, ARCHIVED, CANCELLED, ("arrived", lambda r, _s: r.get("arrived") is True), default="booked"
        ),
        states=("booked", "arrived", "cancelled", "archived", "deleted"),
        incremental=True,
        description="Attendees of group appointments, with their own status.",
    ),
    ClinikoResourceSpec(
        name="daily_availabilities",
        list_key="daily_availabilities",
        streams=(Stream("main", "/daily_availabilities"),),
        state=_flagged(default="active"),
        states=("active",),
        incremental=False,
        description="Weekly HH:MM availability per practitioner and business, in the business's time zone.",
    ),
    ClinikoResourceSpec(
        name="patient_attachments",
        list_key="patient_attachments",
        streams=(Stream("main", "/patient_attachments", (ALL_ROWS,)),),
        state=_flagged(DELETED, ARCHIVED, default="active"),
        states=("active", "archived", "deleted"),
        incremental=True,
        has_files=True,
        hard_deletes=True,
        description="Patient files; the bytes are staged with their sha256.",
    ),
    ClinikoResourceSpec(
        name="treatment_note_templates",
        list_key="treatment_note_templates",
        streams=(
            Stream("main", "/treatment_note_templates"),
            Stream("deleted", "/treatment_note_templates/deleted", deletions=True),
        ),
        state=_flagged(DELETED, default="active"),
        states=("active", "deleted", *BY_ID),
        incremental=False,
        description="Treatment note templates with their sections and questions.",
    ),
    ClinikoResourceSpec(
        name="treatment_notes",
        list_key="treatment_notes",
        streams=(
            Stream("main", "/treatment_notes", (ALL_ROWS,)),
            Stream("deleted", "/treatment_notes/deleted", deletions=True),
        ),
        state=_flagged(DELETED, ARCHIVED, ("draft", lambda r, _s: r.get("draft") is True), default="final"),
        states=("draft", "final", "archived", "deleted"),
        incremental=True,
        description="Treatment notes, draft and final, with their content.",
    ),
)

BY_NAME = {spec.name: spec for spec in CATALOG}
RECORD_TYPES = (dict, ListedRecord)  # what a listed page's item must be to be read as a record


def record_id(record: dict) -> str | None:
    """A record's id as a string; deletion stubs carry it only in ``links.self``. None when it has neither (a
    ``links`` that is not an object, or a ``self`` that is not a URL, included): the caller counts the record
    unreadable, or the link dangling."""
    value = record.get("id")
    if value not in (None, ""):
        return str(value)
    links = record.get("links")
    url = links.get("self") if isinstance(links, dict) else None
    tail = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] if isinstance(url, str) else ""
    return tail if tail.isdigit() else None


def linked_id(record: dict, name: str) -> str | None:
    """The id behind a link such as ``"patient": {"links": {"self": ".../patients/82"}}``."""
    return target_id(record.get(name))


def target_id(link: object) -> str | None:
    """The id a link's value (``{"links": {"self": ".../patients/82"}}``) points at; None for anything else."""
    if isinstance(link, dict):
        return record_id({"links": link.get("links") or {}})
    return None
