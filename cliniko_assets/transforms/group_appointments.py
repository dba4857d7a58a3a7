"""Cliniko group appointments and their attendees -> one Splose ``appointments`` record each.

Mapping, Splose field <- Cliniko field: rule

    externalId            <- group appointment id
    start, end            <- starts_at, ends_at: UTC "...Z"; end must be after start
    serviceId             <- appointment_type link, through ctx.services
    locationId            <- business link, through ctx.locations (ignored or absent: the whole group is skipped)
    practitionerId        <- practitioner link, through ctx.practitioners (one the list routes did not return and
                             nobody mapped -> null with a warning, as for individual appointments)
    maxPatients           <- max_attendees, raised to the number of entries and to at least 2
    note                  <- notes, then a line per field that could not be used
    archived              <- archived_at / _state
    repeatOfExternalId    <- repeated_from link, as for individual appointments
    appointmentPatients   <- attendees, one entry per live attendee:
        externalId            <- attendee id
        clientExternalId      <- attendee's patient link
        status                <- cancelled_at -> "Cancelled"; arrived true -> "Arrived"; false or null -> null
        note                  <- attendee notes
        cancellationReason    <- cancellation_reason_description, else the label of cancellation_reason
        cancellationNote      <- cancellation_note
        statusUpdatedAt       <- cancelled_at for cancelled, updated_at for arrived, else null

Attendees come back as skips (the second element) when deleted ("deleted in Cliniko"), when their
client is not in Splose ("client not imported", or "patient <id> not in Cliniko"), when they belong to
another booking ("attendee of another appointment"), when repeated ("duplicate attendee") or malformed.
A skipped group appointment (deleted, location ignored or not mapped, appointment type not mapped,
malformed) skips all its attendees with "group appointment skipped". Archived attendees are kept with their
status (Splose entries have no archived flag); cancelled attendees are kept as "Cancelled" entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cliniko_assets.transforms.appointments import series_head, status_fields, times
from cliniko_assets.transforms.common import (
    DELETED,
    ImportContext,
    Record,
    Skip,
    Skipped,
    cliniko_id,
    integer,
    is_archived,
    is_deleted,
    link,
    require_id,
    text,
    total,
)
from cliniko_assets.transforms.dependencies import client_for, location_for, practitioner_for, service_for
from cliniko_assets.transforms.salvage import WARNINGS, Salvage

GROUP_SKIPPED = "group appointment skipped"
OTHER_BOOKING = "attendee of another appointment"
DUPLICATE = "duplicate attendee"


def to_splose_group_appointment(
    group_appointment: Record, attendees: Sequence[Record], ctx: ImportContext
) -> tuple[dict[str, Any] | Skip, list[Skip]]:
    found = _group(group_appointment, ctx)
    if isinstance(found, Skip):
        return found, [Skip(cliniko_id(a) or "" if isinstance(a, Mapping) else "", GROUP_SKIPPED) for a in attendees]
    group, max_attendees = found
    entries: list[dict[str, Any]] = []
    skipped: list[Skip] = []
    seen: set[str] = set()
    warnings = set(group.get(WARNINGS, ()))
    for attendee in attendees:
        entry = _entry(attendee, group["externalId"], ctx)
        if isinstance(entry, Skip):
            skipped.append(entry)
        elif entry["externalId"] in seen:
            skipped.append(Skip(entry["externalId"], DUPLICATE))
        else:
            seen.add(entry["externalId"])
            warnings.update(entry.pop(WARNINGS, ()))
            entries.append(entry)
    record = {**group, "maxPatients": max(max_attendees, len(entries), 2), "appointmentPatients": entries}
    if warnings:
        record[WARNINGS] = sorted(warnings)
    return record, skipped


@total
def _group(group_appointment: Record, ctx: ImportContext) -> tuple[dict[str, Any], int]:
    """The appointment without its entries, and Cliniko's max_attendees (0 when unset)."""
    external_id = require_id(group_appointment)
    if is_deleted(group_appointment):
        raise Skipped(DELETED)
    location = location_for(link(group_appointment, "business"), ctx)
    salvage = Salvage(group_appointment)
    practitioner = practitioner_for(group_appointment, ctx, salvage)
    service = service_for(group_appointment, ctx)
    start, end = times(group_appointment, salvage)
    max_attendees = salvage.read(integer, "max_attendees") or 0
    group = {
        "externalId": external_id,
        "start": start,
        "end": end,
        "serviceId": service,
        "locationId": location,
        "practitionerId": practitioner,
        "note": salvage.appended_to(salvage.read(text, "notes")),
        "archived": is_archived(group_appointment),
        "repeatOfExternalId": series_head(group_appointment, external_id, ctx),
    }
    return salvage.finish(group), max_attendees


@total
def _entry(attendee: Record, group_id: str, ctx: ImportContext) -> dict[str, Any]:
    external_id = require_id(attendee)
    if is_deleted(attendee):
        raise Skipped(DELETED)
    booking = link(attendee, "booking")
    if booking is not None and booking != group_id:
        raise Skipped(OTHER_BOOKING)
    client = client_for(attendee, ctx)
    salvage = Salvage(attendee)
    status = status_fields(salvage)
    note = salvage.appended_to(salvage.read(text, "notes"))
    return salvage.finish({"externalId": external_id, "clientExternalId": client, **status, "note": note})
