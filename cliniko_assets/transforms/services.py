"""Cliniko appointment types -> Splose ``services`` records (the types the clinic maps to "create").

Mapping, Splose field <- Cliniko field: rule

    externalId     <- id
    name           <- name (required; missing -> Skip("missing name"))
    description    <- description
    duration       <- duration_in_minutes (required, an integer >= 0; digit strings accepted)
    color          <- color: "#RGB" expanded to "#RRGGBB", upper case; anything else -> null (cosmetic,
                      never a reason to skip)
    maxPatients    <- max_attendees, at least 1 (0 or missing -> 1); > 1 makes a group service
    archived       <- archived_at / _state
    category       <- category

Not carried (Splose services have no such fields): online-booking settings, deposits, telehealth,
reminder templates, billable items, the linked treatment note template.
"""

from __future__ import annotations

import re
from typing import Any

from cliniko_assets.transforms.common import Malformed, Record, integer, is_archived, require_id, text, total


@total
def to_splose_service(appointment_type: Record) -> dict[str, Any]:
    name = text(appointment_type, "name")
    if name is None or not name.strip():
        raise Malformed("name", "missing")
    duration = integer(appointment_type, "duration_in_minutes")
    if duration is None:
        raise Malformed("duration_in_minutes", "missing")
    if duration < 0:
        raise Malformed("duration_in_minutes")
    max_attendees = integer(appointment_type, "max_attendees")
    return {
        "externalId": require_id(appointment_type),
        "name": name,
        "description": text(appointment_type, "description"),
        "duration": duration,
        "color": normalise_color(appointment_type.get("color")),
        "maxPatients": max(1, max_attendees or 1),
        "archived": is_archived(appointment_type),
        "category": text(appointment_type, "category"),
    }


def normalise_color(value: object) -> str | None:
    """``#RGB`` or ``#RRGGBB`` (with or without ``#``) -> ``#RRGGBB``; anything else -> null."""
    if not isinstance(value, str):
        return None
    digits = value.strip().removeprefix("#")
    if re.fullmatch(r"[0-9A-Fa-f]{3}", digits):
        digits = "".join(c * 2 for c in digits)
    if re.fullmatch(r"[0-9A-Fa-f]{6}", digits):
        return f"#{digits.upper()}"
    return None
