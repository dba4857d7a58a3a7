"""The mission's table, one declaration per row: everything else about a row follows from it.

A :class:`Row` names its Cliniko inputs (the first is the one its count comes from), the function that
loads it (:mod:`cliniko_assets.row_loads`; the mapping rows are resolved together by
:mod:`cliniko_assets.mapping_rows`), the rows it depends on, the reasons it skips records with, and any
check besides ``reconciled``. From :data:`TABLE` follow the ``splose/<row>`` asset and its dependencies,
its blocking checks, its line in the reconciliation (in the table's order) and its place in the load
order (:data:`LOAD_ORDER`, dependencies first). A row reported by another row's step (attendees, with
group appointments) names that row in ``reported_with``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from cliniko_assets import row_loads
from cliniko_assets.attachments import FILE_KEPT_FAILING, FILE_NOT_FOUND, FILE_SIZE_DIFFERS
from cliniko_assets.file_loads import load_files
from cliniko_assets.loading import CHECK_ASSET, LoadRun
from cliniko_assets.mapping_rows import MAPPING_ASSETS, USAGE_SOURCES
from cliniko_assets.reconciliation import RowReport, splose_key
from splose_resources.cliniko import FILE_MISSING, FILE_REFUSED


@dataclass(frozen=True)
class Check:
    """A blocking check besides ``reconciled``: passes when the load's metadata ``key`` is 0."""

    name: str
    key: str
    description: str


@dataclass(frozen=True)
class Row:
    name: str
    label: str  # the row of the mission's table, as the reconciliation prints it
    inputs: tuple[str, ...]  # Cliniko resources read; the row's Cliniko count is the first one's
    description: str
    load: Callable[[LoadRun, RowReport], dict | None] | None = None  # None: the mapping step, or reported_with
    needs: tuple[str, ...] = ()  # rows loaded before this one (their Splose ids, or the mapping, are used)
    skips: tuple[str, ...] = ()  # why it skips records, besides COMMON_SKIPS and malformed records
    checks: tuple[Check, ...] = ()
    reported_with: str | None = None
    writes: str | None = None  # the Splose import entity its records go to (its crosswalk)
    by_id: bool | None = None  # of its source's staged records, only those found by id (True) or listed (False)
    part_of: str | None = None  # the table row it is a part of: selected, and reconciled, with that row
    # Loaded by the mapping step once it has resolved the mapping, not by a step of its own (a process
    # fewer, about 0.4 CPU-s of Dagster's own work): for a small row whose needs are done by then and that
    # the rows after the mapping wait for anyway.
    with_mapping: bool = False
    # Loaded by the step that downloads its source, each record as soon as it is staged (files, in step
    # patient_files: cliniko_assets.file_step).
    with_downloads: bool = False

    @property
    def selected_as(self) -> str:
        return self.part_of or self.name

    @property
    def source(self) -> str:
        return self.inputs[0]

    def deps(self) -> list[dg.AssetKey]:
        return [dg.AssetKey(["cliniko", resource]) for resource in self.inputs] + [splose_key(n) for n in self.needs]


COMMON_SKIPS = ("deleted in Cliniko", "not requested by the clinic")  # any row
CHECK = CHECK_ASSET  # the mapping checked before any write (not a row): what the first loads wait for
MAPPED = MAPPING_ASSETS
NOT_MAPPED = ("not mapped (no data)", "not listed by Cliniko, not mapped")
UNMAPPED_REFERENCE = ("business <id> not listed by Cliniko, not mapped", "location ignored", "location not mapped")

TABLE: tuple[Row, ...] = (
    Row(
        "locations",
        "Businesses -> Locations",
        ("businesses", "references"),
        "Cliniko businesses resolved to Splose locations.",
        needs=(CHECK,),
        skips=("ignored by the clinic", *NOT_MAPPED),
    ),
    Row(
        "users",
        "Users -> Users",
        ("users",),
        "Cliniko users resolved to Splose practitioners.",
        needs=(CHECK,),
        skips=("not mapped (not a practitioner with data)",),
    ),
    Row(
        "practitioners",
        "Practitioners -> Practitioners",
        ("practitioners", "users", "references"),
        "Cliniko practitioners (active and inactive) resolved to Splose practitioners.",
        needs=(CHECK,),
        skips=NOT_MAPPED,
    ),
    Row(
        "provider_numbers",
        "Practitioner reference numbers -> Provider numbers",
        ("practitioner_reference_numbers",),
        "Practitioner reference numbers as provider numbers on the mapped practitioners, per location.",
        row_loads.load_provider_numbers,
        needs=("practitioners", "locations"),
        skips=("practitioner not mapped", *UNMAPPED_REFERENCE),
        writes="providerNumbers",
        with_mapping=True,
    ),
    Row(
        "services",
        "Appointment types -> Services",
        ("appointment_types", *USAGE_SOURCES, "references"),
        "Cliniko appointment types resolved to Splose services; those mapped to 'create' are created.",
        needs=(CHECK,),
        skips=("ignored by the clinic", "not mapped (no appointments use it)"),
        writes="services",
    ),
    Row(
        "clients",
        "Patients -> Clients",
        ("patients",),
        "Patients (incl. archived) as clients; referring doctors linked to contacts.",
        row_loads.load_clients,
        needs=("contacts", CHECK),
        writes="clients",
        by_id=False,
    ),
    Row(
        "referenced_clients",
        "Patients -> Clients (found by id)",
        ("patients", "references"),
        "Patients other records point at that no list returns, fetched by id, as clients (after the listed ones).",
        row_loads.load_referenced_clients,
        needs=("clients", CHECK),
        skips=("not in Cliniko (only referenced by other records)",),
        writes="clients",
        by_id=True,
        part_of="clients",
        with_mapping=True,
    ),
    Row(
        "contacts",
        "Contacts -> Contacts",
        ("contacts",),
        "Contacts.",
        row_loads.load_contacts,
        needs=(CHECK,),
        writes="contacts",
    ),
    Row(
        "appointments",
        "Individual appointments -> Appointments",
        ("individual_appointments",),
        "Individual appointments with status, cancellation reason and note.",
        row_loads.load_appointments,
        needs=("clients", "referenced_clients", *MAPPED),
        skips=(
            "client not imported",
            "patient <id> not in Cliniko",
            "appointment type ignored by the clinic",
            *UNMAPPED_REFERENCE,
        ),
        writes="appointments",
    ),
    Row(
        "group_appointments",
        "Group appointments -> Group appointments",
        ("group_appointments", "attendees"),
        "Group appointments: one appointment, maxPatients, one entry per attendee with its status.",
        row_loads.load_group_appointments,
        needs=("clients", "referenced_clients", *MAPPED),
        skips=("appointment type ignored by the clinic", *UNMAPPED_REFERENCE),
        writes="appointments",
    ),
    Row(
        "attendees",
        "Attendees -> Group appointment clients",
        ("attendees",),
        "Attendees as the clients of their group appointment.",
        reported_with="group_appointments",
        skips=(
            "booking is not a group appointment",
            "no booking link",
            "duplicate attendee",
            "client not imported",
            "group appointment skipped",
            "patient <id> not in Cliniko",
        ),
    ),
    Row(
        "availability",
        "Daily availabilities -> Availability",
        ("daily_availabilities", "businesses"),
        "Weekly availability per practitioner and location.",
        row_loads.load_availability,
        needs=MAPPED,
        skips=(
            "no availability ranges",
            "time zone of business <id> not known",
            "practitioner <id> not listed by Cliniko, not mapped",
            *UNMAPPED_REFERENCE,
        ),
        writes="availability",
        with_mapping=True,
    ),
    Row(
        "files",
        "Patient attachments -> Files",
        ("patient_attachments",),
        "Patient attachments as files: bytes streamed in batches, checksum verified by Splose.",
        load_files,
        needs=("clients", "referenced_clients"),
        skips=(
            "not yet processed by Cliniko",
            "bytes could not be downloaded from Cliniko",
            "client not imported",
            FILE_NOT_FOUND,
            FILE_MISSING,
            FILE_REFUSED,
            FILE_SIZE_DIFFERS,
            FILE_KEPT_FAILING,
        ),
        checks=(
            Check(
                "checksums_match",
                "checksum_mismatches",
                "Every uploaded file's sha256, as Splose computed it, equals the staged bytes' sha256.",
            ),
        ),
        writes="files",
        with_downloads=True,
    ),
    Row(
        "progress_note_templates",
        "Treatment note templates -> Progress note templates",
        ("treatment_note_templates", "references"),
        "Treatment note templates with their sections and questions.",
        row_loads.load_progress_note_templates,
        needs=MAPPED,
        skips=("not in Cliniko (only referenced by other records)",),
        writes="progressNoteTemplates",
        with_mapping=True,
    ),
    Row(
        "progress_notes",
        "Treatment notes -> Progress notes",
        ("treatment_notes", "attendees"),
        "Treatment notes as progress notes, draft or final, linked to client, practitioner and appointment "
        "(through the attendee for a note written for one).",
        row_loads.load_progress_notes,
        needs=("clients", "referenced_clients", "appointments", "group_appointments", "progress_note_templates"),
        skips=("client not imported", "patient <id> not in Cliniko"),
        writes="progressNotes",
    ),
)

BY_NAME = {row.name: row for row in TABLE}
ROWS = {row.name: row.label for row in TABLE if row.part_of is None}  # name -> label, as the reconciliation prints
MAPPING_ROWS = tuple(row for row in TABLE if row.load is None and row.reported_with is None)
LOADED_ROWS = tuple(row for row in TABLE if row.load is not None)


def _load_order() -> tuple[Row, ...]:
    """The loaded rows with every row after the rows it needs (the table's order otherwise)."""
    placed: list[str] = [CHECK, *(row.name for row in MAPPING_ROWS)]
    pending = list(LOADED_ROWS)
    while pending:
        ready = next(row for row in pending if all(need in placed for need in row.needs))
        placed.append(ready.name)
        pending.remove(ready)
    return tuple(BY_NAME[name] for name in placed if name in BY_NAME and BY_NAME[name].load is not None)


LOAD_ORDER = _load_order()


def reconciled_rows(found: dict[str, RowReport]) -> dict[str, RowReport]:
    """The rows of the reconciliation, in the table's order, each with its parts added (the clients found by id
    to the listed ones); a row one of whose parts is missing is left out (not loaded)."""
    rows = {name: found[name] for name in ROWS if name in found}
    for part in TABLE:
        if part.part_of is None or part.part_of not in rows:
            continue
        if part.name in found:
            rows[part.part_of].merge(found[part.name])
        else:
            del rows[part.part_of]
    return rows


def after_mapping(row: Row) -> bool:
    """Whether the row loads after the mapping step (it needs a mapping row, or a row that does): then it reads
    the whole resolved mapping; else (contacts, clients) the mapping as the mapping check left it."""
    needs = list(row.needs)
    while needs:
        name = needs.pop()
        if name in MAPPED:
            return True
        needs += BY_NAME[name].needs if name in BY_NAME else ()
    return False


def crosswalks_of(included: Callable[[str], bool]) -> tuple[str, ...]:
    """The Splose entities whose crosswalk an import's loads use: those its mapping and included rows write."""
    written = (row.writes for row in TABLE if row.writes and (row.load is None or included(row.name)))
    return tuple(dict.fromkeys(written))


def companions(row: Row) -> tuple[Row, ...]:
    """The rows reported by this row's step besides its own."""
    return tuple(other for other in TABLE if other.reported_with == row.name)
