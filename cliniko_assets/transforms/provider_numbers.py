"""Cliniko practitioner reference numbers -> Splose ``providerNumbers`` records.

Mapping, Splose field <- Cliniko field: rule

    externalId       <- id
    practitionerId   <- practitioner link, through ctx.practitioners ("practitioner not mapped" otherwise)
    locationId       <- business link, through ctx.locations: ignored -> Skip("location ignored"),
                        absent from the mapping -> Skip("location not mapped"), no link -> null (all locations)
    type             <- name, kept as given (e.g. "Provider #"); missing -> "Provider number"
    number           <- reference_number; missing -> Skip("missing reference_number")
"""

from __future__ import annotations

from typing import Any

from cliniko_assets.transforms.common import (
    ImportContext,
    Malformed,
    Record,
    link,
    require_id,
    text,
    total,
)
from cliniko_assets.transforms.dependencies import location_for, practitioner_for

DEFAULT_TYPE = "Provider number"


@total
def to_splose_provider_number(reference_number: Record, ctx: ImportContext) -> dict[str, Any]:
    external_id = require_id(reference_number)
    business = link(reference_number, "business")
    location = None if business is None else location_for(business, ctx)
    practitioner = practitioner_for(reference_number, ctx)
    number = text(reference_number, "reference_number")
    if number is None or not number.strip():
        raise Malformed("reference_number", "missing")
    name = text(reference_number, "name")
    return {
        "externalId": external_id,
        "practitionerId": practitioner,
        "locationId": location,
        "type": name if name and name.strip() else DEFAULT_TYPE,
        "number": number,
    }
