"""Each row's load: staged Cliniko records through the row's pure transform into the sink, counted.

A row's declaration (:mod:`cliniko_assets.rows`) names the function here that loads it. Most rows are one
stream of records through their transform (:func:`~cliniko_assets.loading.load_records`); what a row does
beyond that is its own and stays here with it: appointments load series' first appointments before their
repeats, group appointments carry their attendees (the attendees row) and what the report checks they
hold, availability rows belong to the day they came from (files: :mod:`cliniko_assets.file_loads`),
progress notes count those without an appointment.
"""

from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from itertools import islice

import dagster as dg
import numpy as np

from cliniko_assets.attention import GONE, NO_LONGER_IN_CLINIKO
from cliniko_assets.catalog import linked_id, record_id
from cliniko_assets.loading import LoadRun, load_records
from cliniko_assets.reconciliation import RowReport, counts_metadata
from cliniko_assets.references import record_links
from cliniko_assets.transforms import (
    Skip,
    to_splose_appointment,
    to_splose_availability,
    to_splose_client,
    to_splose_contact,
    to_splose_group_appointment,
    to_splose_progress_note,
    to_splose_progress_note_template,
    to_splose_provider_number,
)
from cliniko_assets.transforms.common import link

NOT_LINKED = "notes_without_appointment"  # progress notes loaded without an appointment (no booking link nor
# an attendee with one, or their appointment was not imported): they still attach to client and practitioner
GROUP_CHUNK = 2_000  # group appointments transformed at a time (their attendees read for each chunk)
GROUP_ENTRIES = "group_entries"  # group appointment id -> attendees it must hold in Splose (read by the report)
REPEATS_ALONE = "repeats_without_their_first_appointment"  # repeats whose series' first Splose does not have


def load_provider_numbers(run: LoadRun, report: RowReport) -> None:
    ctx = run.import_context()
    outcomes = (to_splose_provider_number(r, ctx) for r in run.records("practitioner_reference_numbers"))
    load_records(run, report, "providerNumbers", outcomes, vanished_from="practitioner_reference_numbers")


def load_contacts(run: LoadRun, report: RowReport) -> None:
    ctx = run.import_context()
    outcomes = (_live(r) or to_splose_contact(r, ctx) for r in run.records("contacts"))
    load_records(run, report, "contacts", outcomes)


def load_clients(run: LoadRun, report: RowReport) -> None:
    """The patients the lists return: loaded as soon as they (and contacts) are staged."""
    ctx = run.import_context("contacts")
    load_records(run, report, "clients", (to_splose_client(r, ctx) for r in run.records("patients", by_id=False)))


def load_referenced_clients(run: LoadRun, report: RowReport) -> None:
    """The patients found by id (the records pointing at them are staged only after the listed patients)."""
    ctx = run.import_context("contacts")
    load_records(run, report, "clients", (to_splose_client(r, ctx) for r in run.records("patients", by_id=True)))


def load_appointments(run: LoadRun, report: RowReport) -> dict:
    """Two passes, so that every series' first appointment exists before the repeats that point at it."""
    ctx = run.import_context("clients")

    def outcomes(repeats: bool) -> Iterator[dict | Skip]:
        # Each record is transformed in one pass only: the one its repeated_from link puts it in.
        for record in run.records("individual_appointments"):
            if _repeats_another(record) == repeats:
                yield to_splose_appointment(record, ctx)

    load_records(run, report, "appointments", outcomes(repeats=False))
    series = SeriesLinks(run)
    load_records(run, report, "appointments", map(series.linked, outcomes(repeats=True)))
    return {REPEATS_ALONE: series.unlinked}


class SeriesLinks:
    """Repeats, sent once every series' first appointment was: each keeps its link to the first when Splose has
    it (less what is on its way out), else goes alone, counted (:data:`REPEATS_ALONE`)."""

    def __init__(self, run: LoadRun) -> None:
        self.imported = run.import_context("appointments").imported["appointments"]
        self.unlinked = 0

    def linked(self, outcome: dict | Skip) -> dict | Skip:
        if not isinstance(outcome, Skip) and outcome["repeatOfExternalId"] not in self.imported:
            # The series' first appointment was skipped (deleted, ignored location...): keep this one alone.
            self.unlinked += 1
            return {**outcome, "repeatOfExternalId": None}
        return outcome


def load_group_appointments(run: LoadRun, report: RowReport) -> dict:
    """One appointment per group with one entry per attendee; the attendees row is counted alongside."""
    ctx = run.import_context("clients")
    groups = {record_id(group) or "" for group in run.records("group_appointments")}
    # Each attendee's booking, read without decoding the attendee: a real account's attendees are mostly those
    # of individual appointments, one each, and only the groups' are kept (their ids) and decoded, a chunk of
    # groups at a time; the others are counted.
    of_group: dict[str, list[str]] = defaultdict(list)  # group id -> its attendees' ids
    others: Counter[str] = Counter()  # why the rest are not a group's
    for attendee_id, booking in record_links(run.staging, run.tenant, "attendees", "booking"):
        if booking in groups:
            of_group[booking].append(attendee_id)
        else:  # attendees of individual appointments or of bookings that no longer exist
            others["booking is not a group appointment" if booking else "no booking link"] += 1
    attendee_report = run.side_reports["attendees"]
    attendee_report.cliniko = sum(map(len, of_group.values())) + sum(others.values())
    for reason, count in others.items():
        attendee_report.skip(reason, count)
    entries: dict[str, list[str]] = {}

    def outcomes(repeats: bool) -> Iterator[dict | Skip]:
        # A chunk of groups at a time, with only their attendees read: memory follows the chunk, not the clinic.
        # Each group in one pass only: the one its repeated_from link puts it in.
        wanted_pass = (group for group in run.records("group_appointments") if _repeats_another(group) == repeats)
        for chunk in _chunks(wanted_pass, GROUP_CHUNK):
            wanted = {record_id(group) or "" for group in chunk}
            attendees: dict[str, list[dict]] = defaultdict(list)
            for attendee in run.records("attendees", ids=[aid for gid in wanted for aid in of_group.get(gid, ())]):
                booking = linked_id(attendee, "booking") or ""
                if booking in wanted:
                    attendees[booking].append(attendee)
            for group in chunk:
                gid = record_id(group) or ""
                # Attendees in id order: the same group is the same record whatever order staging holds them in.
                members = sorted(attendees.pop(gid, []), key=lambda a: _numeric_id(record_id(a)))
                appointment, skipped = to_splose_group_appointment(group, members, ctx)
                for skip in skipped:
                    attendee_report.count_skip(skip)
                if not isinstance(appointment, Skip):
                    entries[gid] = [entry["externalId"] for entry in appointment["appointmentPatients"]]
                yield appointment

    # Two passes, as for individual appointments: every series' first group before the repeats that point at it.
    actions: dict[str, str] = {}
    load_records(run, report, "appointments", outcomes(repeats=False), actions.__setitem__)
    series = SeriesLinks(run)
    load_records(run, report, "appointments", map(series.linked, outcomes(repeats=True)), actions.__setitem__)
    for gid, ids in entries.items():
        action = actions.get(gid)
        if action is None:
            for aid in ids:
                attendee_report.reject(aid, "its group appointment was rejected by Splose")
        else:
            setattr(attendee_report, action, getattr(attendee_report, action) + len(ids))
    # What the integrity check will expect to find on each group appointment in Splose.
    expected = {gid: len(ids) for gid, ids in entries.items() if gid in actions}
    return {
        **{f"attendees_{key}": value for key, value in counts_metadata(attendee_report).items()},
        GROUP_ENTRIES: dg.MetadataValue.json(expected),
        REPEATS_ALONE: series.unlinked,
    }


def load_availability(run: LoadRun, report: RowReport) -> None:
    ctx = run.import_context()
    rows: list[dict] = []
    owners: dict[str, str] = {}
    kept: set[str] = set()  # availabilities skipped for a reason that leaves what Splose holds of them as it is
    for record in run.records("daily_availabilities"):
        report.cliniko += 1
        run.advance()
        outcome = to_splose_availability(record, ctx)
        if isinstance(outcome, Skip):
            report.count_skip(outcome)
            if outcome.reason not in GONE:
                kept.add(outcome.cliniko_id)
            continue
        if not outcome:
            report.skip("no availability ranges")
            continue
        for row in outcome:
            owners[row["externalId"]] = record_id(record) or ""
        rows.extend(outcome)
    result = run.writes().upsert("availability", rows)
    # One Splose record per range, "<availability id>:<n>": a range Splose holds that this run did not send (the
    # day lost a range, was emptied, deleted or ignored) is removed, unless its day was skipped for a problem.
    unsent = [key for key in run.writes().held("availability") if key not in owners]
    if unsent and run.listed_in_full("daily_availabilities", report):
        for held in unsent:
            if held.rpartition(":")[0] not in kept:
                run.retire(report, "availability", held, NO_LONGER_IN_CLINIKO)
    failed = {owners.get(e.external_id or "", "") for e in result.errors}
    actions: dict[str, set[str]] = defaultdict(set)
    for upserted in result.records:
        actions[owners[upserted.external_id]].add(upserted.action)
    for owner in failed:
        report.reject(owner, next(e.message for e in result.errors if owners.get(e.external_id or "") == owner))
    for owner, seen in actions.items():
        if owner in failed:
            continue
        if "created" in seen:
            report.created += 1
        elif "updated" in seen:
            report.updated += 1
        else:
            report.unchanged += 1


def load_progress_note_templates(run: LoadRun, report: RowReport) -> None:
    outcomes = (to_splose_progress_note_template(r) for r in run.records("treatment_note_templates"))
    load_records(run, report, "progressNoteTemplates", outcomes, vanished_from="treatment_note_templates")


def load_progress_notes(run: LoadRun, report: RowReport) -> None:
    ctx = replace(
        run.import_context("clients", "appointments", "progressNoteTemplates"),
        booking_of_attendee=_attendee_bookings(run),
    )
    outcomes = (to_splose_progress_note(r, ctx) for r in run.records("treatment_notes"))
    # Notes without an appointment: held only until Splose answers for them, then counted if loaded.
    waiting: set[str] = set()
    loaded = 0

    def noted(outcome: dict | Skip) -> dict | Skip:
        if not isinstance(outcome, Skip) and outcome.get("appointmentExternalId") is None:
            waiting.add(outcome["externalId"])
        return outcome

    def answered(external_id: str, action: str) -> None:
        nonlocal loaded
        if external_id in waiting:
            waiting.discard(external_id)
            loaded += 1

    load_records(run, report, "progressNotes", (noted(o) for o in outcomes), answered)
    report.facts[NOT_LINKED] = loaded


def _attendee_bookings(run: LoadRun) -> Callable[[str], str | None]:
    """Attendee id -> booking id, read from the staged attendees the first time a note asks (most notes
    carry their own booking link, and then the attendees are never read)."""
    index: _BookingIndex | None = None

    def booking_of(attendee: str) -> str | None:
        nonlocal index
        if index is None:
            index = _BookingIndex(record_links(run.staging, run.tenant, "attendees", "booking"))
        return index.get(attendee)

    return booking_of


class _BookingIndex:
    """Attendee id -> booking id as two sorted arrays of numbers rather than a dict of strings: a real account
    has an attendee per individual appointment, half a million in a large clinic (a dict of them added about
    45 MB to the notes step's peak); an id that is not a plain number is kept in a dict beside them."""

    def __init__(self, pairs: Iterable[tuple[str, str | None]]) -> None:
        keys, values = array("Q"), array("Q")
        self.odd: dict[str, str] = {}
        for attendee, booking in pairs:
            if booking is None:
                continue
            key, value = _number(attendee), _number(booking)
            if key is None or value is None:
                self.odd[attendee] = booking
            else:
                keys.append(key)
                values.append(value)
        order = np.argsort(np.frombuffer(keys, dtype=np.uint64), kind="stable")
        self.keys = np.frombuffer(keys, dtype=np.uint64)[order]
        self.values = np.frombuffer(values, dtype=np.uint64)[order]

    def get(self, attendee: str) -> str | None:
        if attendee in self.odd:
            return self.odd[attendee]
        key = _number(attendee)
        if key is None:
            return None
        at = int(np.searchsorted(self.keys, np.uint64(key)))
        return str(self.values[at]) if at < len(self.keys) and int(self.keys[at]) == key else None


def _number(value: str) -> int | None:
    """``value`` as an unsigned 64-bit number when it is one written plainly (no sign, no leading zero)."""
    if not value.isascii() or not value.isdigit() or (len(value) > 1 and value[0] == "0"):
        return None
    number = int(value)
    return number if number < 2**64 else None


def _chunks(records: Iterator[dict], size: int) -> Iterator[list[dict]]:
    while chunk := list(islice(records, size)):
        yield chunk


def _numeric_id(value: str | None) -> int:
    return int(value) if value and value.isdigit() else -1


def _repeats_another(appointment: dict) -> bool:
    """Whether an appointment repeats the first of its series (as ``series_head`` reads it), before any transform."""
    head = link(appointment, "repeated_from")
    return head is not None and head != str(record_id(appointment))


def _live(record: dict) -> Skip | None:
    return Skip(record_id(record) or "", "deleted in Cliniko") if record.get("_state") == "deleted" else None
