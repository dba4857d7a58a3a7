"""Cliniko individual appointments -> Splose ``appointments`` records (one client each).

Mapping, Splose field <- Cliniko field: rule

    externalId            <- id
    start, end            <- starts_at, ends_at (the old route's appointment_start, appointment_end):
                             UTC "...Z"; an end before the start -> Skip("ends_at not after starts_at"); an
                             end at the start (a 0-minute type) -> a minute later, said in the note (warning
                             ``zero_minutes``: the report's line of its own)
    serviceId             <- appointment_type link, through ctx.services ("appointment type not mapped",
                             "appointment type ignored by the clinic"); a type Cliniko no longer has is
                             mapped like any other (see ``mapping``: by default a created "Deleted appointment
                             type <id>" service)
    locationId            <- business link, through ctx.locations ("location ignored" / "location not mapped";
                             a business the list routes did not return and nobody mapped ->
                             "business <id> not listed by Cliniko, not mapped", needing the clinic's attention)
    practitionerId        <- practitioner link, through ctx.practitioners ("practitioner not mapped"); a
                             practitioner the list routes did not return and nobody mapped -> null, with a
                             warning on "practitioner" and its Cliniko id in the note
    maxPatients           <- 1
    note                  <- notes, then one line per field that could not be used (see ``salvage``)
    archived              <- archived_at / _state
    repeatOfExternalId    <- repeated_from link (the series' first appointment), only if it is in
                             ctx.imported["appointments"] (always when appointments are not tracked)
    appointmentPatients   <- one entry:
        externalId            <- id (the appointment's own)
        clientExternalId      <- patient link; a patient Cliniko does not have -> Skip("patient <id> not in
                                 Cliniko"); not in ctx.imported["clients"] (when tracked) -> Skip("client not
                                 imported")
        status                <- cancelled_at -> "Cancelled", did_not_arrive -> "Did not arrive",
                                 patient_arrived -> "Arrived", else (booked) null; _state as fallback
        note                  <- the appointment's note
        cancellationReason    <- cancellation_reason_description, else the label of cancellation_reason
                                 (10 Feeling Better, 20 Condition Worse, 30 Sick, 31 COVID-19 related, 40 Away,
                                 50 Other, 60 Work; a newer code N -> "Other (code N)"); cancelled only
        cancellationNote      <- cancellation_note; cancelled only
        statusUpdatedAt       <- cancelled_at (old: cancellation_time) when cancelled, updated_at when
                                 arrived or did not arrive, null when booked

A deleted appointment -> Skip("deleted in Cliniko"). An archived appointment that was cancelled stays
cancelled: the status comes from the fields, not only from _state; an unusable cancelled_at still means
cancelled. Checks run in this order: deleted, location, client, practitioner, appointment type, then the
times (required by Splose: an unusable start or end skips the appointment, naming the field).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from cliniko_assets.catalog import is_set
from cliniko_assets.transforms.common import (
    DELETED,
    ImportContext,
    Malformed,
    Record,
    Skipped,
    integer,
    is_archived,
    is_deleted,
    link,
    require_id,
    require_timestamp,
    text,
    timestamp,
    total,
)
from cliniko_assets.transforms.dependencies import client_for, location_for, practitioner_for, service_for
from cliniko_assets.transforms.salvage import ZERO_MINUTES, Salvage

CANCELLATION_REASONS = {
    10: "Feeling Better",
    20: "Condition Worse",
    30: "Sick",
    31: "COVID-19 related",
    40: "Away",
    50: "Other",
    60: "Work",
}


@total
def to_splose_appointment(individual_appointment: Record, ctx: ImportContext) -> dict[str, Any]:
    appointment = individual_appointment
    external_id = require_id(appointment)
    if is_deleted(appointment):
        raise Skipped(DELETED)
    location = location_for(link(appointment, "business"), ctx)
    client = client_for(appointment, ctx)
    salvage = Salvage(appointment)
    practitioner = practitioner_for(appointment, ctx, salvage)
    service = service_for(appointment, ctx)
    start, end = times(appointment, salvage)
    status = status_fields(salvage)
    note = salvage.appended_to(salvage.read(text, "notes"))
    entry = {"externalId": external_id, "clientExternalId": client, **status, "note": note}
    record = {
        "externalId": external_id,
        "start": start,
        "end": end,
        "serviceId": service,
        "locationId": location,
        "practitionerId": practitioner,
        "maxPatients": 1,
        "note": note,
        "archived": is_archived(appointment),
        "repeatOfExternalId": series_head(appointment, external_id, ctx),
        "appointmentPatients": [entry],
    }
    return salvage.finish(record)


def series_head(appointment: Record, external_id: str, ctx: ImportContext) -> str | None:
    """The first appointment of the series this one repeats, when Splose can resolve it."""
    head = link(appointment, "repeated_from")
    return head if head and head != external_id and ctx.is_imported("appointments", head) else None


def times(appointment: Record, salvage: Salvage) -> tuple[str, str]:
    """Start and end in UTC; the old ``/appointments`` route names them ``appointment_start``/``_end``.

    An appointment of a 0-minute type (Cliniko allows 0 to 1440) ends when it starts; Splose needs an end after
    the start, so it is imported ending a minute later, said in its note. An end before the start is a skip."""
    old_route = not is_set(appointment.get("starts_at")) and is_set(appointment.get("appointment_start"))
    start_field, end_field = ("appointment_start", "appointment_end") if old_route else ("starts_at", "ends_at")
    start = require_timestamp(appointment, start_field)
    end = require_timestamp(appointment, end_field)
    if end == start:
        salvage.note(
            ZERO_MINUTES, f"Cliniko {end_field} is its {start_field} (0 minutes): imported ending a minute later"
        )
        moment = datetime.fromisoformat(start.replace("Z", "+00:00")) + timedelta(minutes=1)
        return start, f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}Z"
    if end < start:
        raise Skipped(f"{end_field} not after {start_field}")
    return start, end


def status_fields(salvage: Salvage) -> dict[str, Any]:
    """Status and cancellation of a booking's one client (an ``appointmentPatients`` entry, without its note).

    Reads ``patient_arrived`` (individual appointments) or ``arrived`` (attendees); an unusable
    ``cancelled_at`` still marks the booking cancelled, without the time.
    """
    booking = salvage.record
    state = booking.get("_state")
    cancelled_at = salvage.read(timestamp, "cancelled_at") or salvage.read(timestamp, "cancellation_time")
    updated = salvage.read(timestamp, "updated_at")
    if cancelled_at or state == "cancelled" or is_set(booking.get("cancelled_at")):
        return cancelled(salvage, cancelled_at or updated)
    if booking.get("did_not_arrive") is True or state == "did_not_arrive":
        return settled("Did not arrive", updated)
    if booking.get("patient_arrived") is True or booking.get("arrived") is True or state == "arrived":
        return settled("Arrived", updated)
    return settled(None, None)


def settled(status: str | None, at: str | None) -> dict[str, Any]:
    return {"status": status, "cancellationReason": None, "cancellationNote": None, "statusUpdatedAt": at}


def cancelled(salvage: Salvage, at: str | None) -> dict[str, Any]:
    return {
        "status": "Cancelled",
        "cancellationReason": cancellation_reason(salvage.record),
        "cancellationNote": salvage.read(text, "cancellation_note"),
        "statusUpdatedAt": at,
    }


def cancellation_reason(booking: Record) -> str | None:
    """Cliniko's own label when it sent one, else the label of the code (a newer code is kept as its number)."""
    try:
        description = text(booking, "cancellation_reason_description")
        code = None if description else integer(booking, "cancellation_reason")
    except Malformed:
        return None
    if description:
        return description
    if code is None:
        return None
    return CANCELLATION_REASONS.get(code, f"Other (code {code})")
