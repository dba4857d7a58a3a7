"""What a record points at, resolved through the clinic's mapping and what is already in Splose.

Cliniko records point at businesses, practitioners, appointment types and patients that the list routes
may not return (deleted appointment types, practitioners the key cannot list). Such a reference never
fails an import: a mapping entry for its id is used like any other; without one, a record Splose can take
without it is imported without it (an appointment without its practitioner, counted as a warning), and
one Splose cannot take (no location, no client) is skipped with a reason that names the reference.
"""

from __future__ import annotations

from cliniko_assets.transforms.common import ImportContext, Malformed, Record, Skipped, link, require_link
from cliniko_assets.transforms.salvage import Salvage

LOCATION_IGNORED = "location ignored"
LOCATION_NOT_MAPPED = "location not mapped"
CLIENT_NOT_IMPORTED = "client not imported"
PRACTITIONER_NOT_MAPPED = "practitioner not mapped"
SERVICE_NOT_MAPPED = "appointment type not mapped"
SERVICE_IGNORED = "appointment type ignored by the clinic"


def unlisted(kind: str, cliniko_id: str) -> str:
    """The reason for a record that needs a reference the list routes did not return and nobody mapped."""
    return f"{kind} {cliniko_id} not listed by Cliniko, not mapped"


def not_in_cliniko(kind: str, cliniko_id: str) -> str:
    return f"{kind} {cliniko_id} not in Cliniko"


def location_for(business_id: str | None, ctx: ImportContext) -> int:
    """The Splose location of a Cliniko business; skips records of ignored or unmapped businesses."""
    if business_id is None:
        raise Malformed("business link", "missing")
    if business_id in ctx.locations:
        location = ctx.locations[business_id]
        if location is None:
            raise Skipped(LOCATION_IGNORED)
        return location
    if business_id in ctx.unresolved.get("business", ()):
        raise Skipped(unlisted("business", business_id))
    raise Skipped(LOCATION_NOT_MAPPED)


def practitioner_for(record: Record, ctx: ImportContext, salvage: Salvage | None = None) -> int | None:
    """The Splose practitioner of a record's ``practitioner`` link.

    With ``salvage`` the practitioner is optional: a record whose practitioner the list routes did not
    return and the mapping does not cover is kept without one (a warning on ``practitioner``, its Cliniko id
    in the record's note). Without ``salvage`` (availability, provider numbers) the record is skipped.
    """
    practitioner_id = require_link(record, "practitioner")
    practitioner = ctx.practitioners.get(practitioner_id)
    if practitioner is not None:
        return practitioner
    if practitioner_id not in ctx.unresolved.get("practitioner", ()):
        raise Skipped(PRACTITIONER_NOT_MAPPED)
    if salvage is None:
        raise Skipped(unlisted("practitioner", practitioner_id))
    salvage.note("practitioner", f"Cliniko practitioner {practitioner_id} (not listed by Cliniko, not mapped)")
    return None


def service_for(record: Record, ctx: ImportContext) -> int:
    type_id = require_link(record, "appointment_type")
    if type_id in ctx.services_ignored:
        raise Skipped(SERVICE_IGNORED)
    service = ctx.services.get(type_id)
    if service is None:
        raise Skipped(SERVICE_NOT_MAPPED)
    return service


def client_for(record: Record, ctx: ImportContext) -> str:
    """The ``clients`` external id of a record's patient, which must already be in Splose."""
    patient = require_link(record, "patient")
    if patient in ctx.missing.get("patients", ()):
        raise Skipped(not_in_cliniko("patient", patient))
    if not ctx.is_imported("clients", patient):
        raise Skipped(CLIENT_NOT_IMPORTED)
    return patient


def template_for(record: Record, ctx: ImportContext) -> str | None:
    """The ``progressNoteTemplates`` external id of a note's template, when Splose has it."""
    template = link(record, "treatment_note_template")
    return template if template and ctx.is_imported("progressNoteTemplates", template) else None
