"""Cliniko individual appointments -> Splose ``appointments`` records (one client each).

Mapping, Splose field <- Cliniko field: rule

    externalId            <- id
    start, end            <- starts_at, ends_at (the old route's appointment_start, appointment_end):
                             UTC "...Z"; an end not after the start -> Skip("ends_at not after starts_at")
    serviceId             <- appointment_type link, through ctx.services ("appointment type not mapped")
    locationId            <- business link, through ctx.locations ("location ignored" / "location not mapped")
    practitionerId        <- practitioner link, through ctx.practitioners ("practitioner not mapped")
    maxPatients           <- 1
    note                  <- notes
    archived              <- archived_at / _state
    repeatOfExternalId    <- repeated_from link (the series' first appointment), only if it is in
                             ctx.imported["appointments"] (always when appointments are not tracked)
    appointmentPatients   <- one entry:
        externalId            <- id (the appointment's own)
        clientExternalId      <- patient link; not in ctx.imported["clients"] (when tracked) ->
                                 Skip("client not imported")
        status                <- cancelled_at -> "Cancelled", did_not_arrive -> "Did not arrive",
                                 patient_arrived -> "Arrived", else (booked) null; _state as fallback
        note                  <- notes
        cancellationReason    <- cancellation_reason_description, else the label of cancellation_reason
                                 (10 Feeling Better, 20 Condition Worse, 30 Sick, 31 COVID-19 related, 40 Away,
                                 50 Other, 60 Work; a newer code N -> "Other (code N)"); cancelled only
        cancellationNote      <- cancellation_note; cancelled only
        statusUpdatedAt       <- cancelled_at (old: cancellation_time) when cancelled, updated_at when
                                 arrived or did not arrive, null when booked

A deleted appointment -> Skip("deleted in Cliniko"). An archived appointment that was cancelled stays
cancelled: the status comes from the fields, not only from _state. Checks run in this order: deleted,
location, client, practitioner, appointment type, then the times.
"""

from __future__ import annotations

from typing import Any

from cliniko_assets.catalog import is_set
from cliniko_assets.transforms.common import (
    CLIENT_NOT_IMPORTED,
    DELETED,
    SERVICE_NOT_MAPPED,
    ImportContext,
    Malformed,
    Record,
    Skipped,
    integer,
    is_archived,
    is_deleted,
    link,
    location_for,
    practitioner_for,
    require_id,
    require_link,
    require_timestamp,
    text,
    timestamp,
    total,
)

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
    client = require_link(appointment, "patient")
    if not ctx.is_imported("clients", client):
        raise Skipped(CLIENT_NOT_IMPORTED)
    practitioner = practitioner_for(appointment, ctx)
    service = service_for(appointment, ctx)
    start, end = times(appointment)
    entry = {"externalId": external_id, "clientExternalId": client, **status_fields(appointment)}
    return {
        "externalId": external_id,
        "start": start,
        "end": end,
        "serviceId": service,
        "locationId": location,
        "practitionerId": practitioner,
        "maxPatients": 1,
        "note": text(appointment, "notes"),
        "archived": is_archived(appointment),
        "repeatOfExternalId": series_head(appointment, external_id, ctx),
        "appointmentPatients": [entry],
    }


def series_head(appointment: Record, external_id: str, ctx: ImportContext) -> str | None:
    """The first appointment of the series this one repeats, when Splose can resolve it."""
    head = link(appointment, "repeated_from")
    return head if head and head != external_id and ctx.is_imported("appointments", head) else None


def service_for(appointment: Record, ctx: ImportContext) -> int:
    service = ctx.services.get(require_link(appointment, "appointment_type"))
    if service is None:
        raise Skipped(SERVICE_NOT_MAPPED)
    return service


def times(appointment: Record) -> tuple[str, str]:
    """Start and end in UTC; the old ``/appointments`` route names them ``appointment_start``/``_end``."""
    old_route = not is_set(appointment.get("starts_at")) and is_set(appointment.get("appointment_start"))
    start_field, end_field = ("appointment_start", "appointment_end") if old_route else ("starts_at", "ends_at")
    start = require_timestamp(appointment, start_field)
    end = require_timestamp(appointment, end_field)
    if end <= start:
        raise Skipped(f"{end_field} not after {start_field}")
    return start, end


def status_fields(appointment: Record) -> dict[str, Any]:
    """Status, note and cancellation of the appointment's one client (an ``appointmentPatients`` entry)."""
    state = appointment.get("_state")
    cancelled_at = timestamp(appointment, "cancelled_at") or timestamp(appointment, "cancellation_time")
    note = text(appointment, "notes")
    if cancelled_at or state == "cancelled":
        return cancelled(appointment, note, cancelled_at or timestamp(appointment, "updated_at"))
    if appointment.get("did_not_arrive") is True or state == "did_not_arrive":
        return settled("Did not arrive", note, timestamp(appointment, "updated_at"))
    if appointment.get("patient_arrived") is True or state == "arrived":
        return settled("Arrived", note, timestamp(appointment, "updated_at"))
    return settled(None, note, None)


def settled(status: str | None, note: str | None, at: str | None) -> dict[str, Any]:
    return {
        "status": status,
        "note": note,
        "cancellationReason": None,
        "cancellationNote": None,
        "statusUpdatedAt": at,
    }


def cancelled(booking: Record, note: str | None, at: str | None) -> dict[str, Any]:
    return {
        "status": "Cancelled",
        "note": note,
        "cancellationReason": cancellation_reason(booking),
        "cancellationNote": text(booking, "cancellation_note"),
        "statusUpdatedAt": at,
    }


def cancellation_reason(booking: Record) -> str | None:
    """Cliniko's own label when it sent one, else the label of the code (a newer code is kept as its number)."""
    description = text(booking, "cancellation_reason_description")
    if description:
        return description
    try:
        code = integer(booking, "cancellation_reason")
    except Malformed:
        return None
    if code is None:
        return None
    return CANCELLATION_REASONS.get(code, f"Other (code {code})")
