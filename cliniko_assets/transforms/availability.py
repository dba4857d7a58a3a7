"""Cliniko daily availabilities -> Splose ``availability`` rows (one per time range of the day).

Mapping, Splose field <- Cliniko field: rule

    externalId       <- id: "<id>:<index of the range>" (0-based), so each range upserts on its own
    practitionerId   <- practitioner link, through ctx.practitioners ("practitioner not mapped" otherwise)
    locationId       <- business link, through ctx.locations ("location ignored" / "location not mapped")
    weekday          <- day_of_week: ISO 1 (Monday) .. 7 (Sunday); digit strings accepted
    startTime        <- availabilities[i].starts_at: "9:00", "09:00" or "09:00:00" -> "09:00"
    endTime          <- availabilities[i].ends_at: as startTime; must be after it
    timezone         <- ctx.business_time_zones[business]: the IANA zone the wall-clock times are in (the
                        business's time_zone_identifier, else its time_zone label, else the account's
                        zone from /settings; see ``mapping``)
    repeatInterval   <- "Weekly" (Cliniko's daily availability is a weekly schedule)

A day with no ranges -> Skip("no availability ranges"); a business with no known zone ->
Skip("time zone of business <id> not known"), flagged as needing the clinic's attention (the import is
then not complete without a warning); a practitioner the list routes did not return and nobody mapped ->
Skip("practitioner <id> not listed by Cliniko, not mapped"), also needing attention. Any unusable range
skips the whole day, naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cliniko_assets.transforms.common import (
    ImportContext,
    Malformed,
    Record,
    Skipped,
    integer,
    link,
    require_id,
    total,
)
from cliniko_assets.transforms.dependencies import location_for, practitioner_for

NO_RANGES = "no availability ranges"


def no_time_zone(business_id: str) -> str:
    return f"time zone of business {business_id} not known"


@total
def to_splose_availability(daily_availability: Record, ctx: ImportContext) -> list[dict[str, Any]]:
    external_id = require_id(daily_availability)
    business = link(daily_availability, "business")
    location = location_for(business, ctx)
    practitioner = practitioner_for(daily_availability, ctx)
    zone = ctx.business_time_zones.get(business or "")
    if not zone:
        raise Skipped(no_time_zone(business or ""))
    weekday = integer(daily_availability, "day_of_week")
    if weekday is None or not 1 <= weekday <= 7:
        raise Malformed("day_of_week")
    ranges = daily_availability.get("availabilities")
    if ranges is None or ranges == []:
        raise Skipped(NO_RANGES)
    if not isinstance(ranges, list) or not all(isinstance(item, Mapping) for item in ranges):
        raise Malformed("availabilities")
    rows = []
    for index, item in enumerate(ranges):
        start, end = wall_clock(item.get("starts_at")), wall_clock(item.get("ends_at"))
        if start is None or end is None or end <= start:
            raise Malformed("availabilities")
        rows.append(
            {
                "externalId": f"{external_id}:{index}",
                "practitionerId": practitioner,
                "locationId": location,
                "weekday": weekday,
                "startTime": start,
                "endTime": end,
                "timezone": zone,
                "repeatInterval": "Weekly",
            }
        )
    return rows


def wall_clock(value: object) -> str | None:
    """``H:MM``, ``HH:MM`` or ``HH:MM:SS`` -> ``HH:MM``; anything else (including 24:00) -> None."""
    if not isinstance(value, str):
        return None
    found = re.fullmatch(r"(\d{1,2}):([0-5]\d)(?::[0-5]\d)?", value.strip())
    if not found or int(found.group(1)) > 23:
        return None
    return f"{int(found.group(1)):02d}:{found.group(2)}"
