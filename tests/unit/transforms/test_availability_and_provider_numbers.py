"""Daily availabilities -> weekly rows; reference numbers -> provider numbers per location."""

from __future__ import annotations

from typing import Any

import pytest

from cliniko_assets.transforms import Skip, to_splose_availability, to_splose_provider_number
from tests.unit.transforms.conftest import ctx, link, valid


def day(**fields: Any) -> dict[str, Any]:
    record = {
        "id": "900",
        "day_of_week": 3,
        "availabilities": [{"starts_at": "09:00", "ends_at": "13:00"}, {"starts_at": "14:00", "ends_at": "17:30"}],
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
        "business": link("businesses/1"),
        "practitioner": link("practitioners/5"),
        "_state": "active",
        "_source": "main",
        **link("daily_availabilities/900"),
    }
    record.update(fields)
    return record


def test_one_row_per_range() -> None:
    rows = to_splose_availability(day(), ctx())
    assert isinstance(rows, list)
    for row in rows:
        valid("availability", row)
    assert rows == [
        {
            "externalId": "900:0",
            "practitionerId": 55,
            "locationId": 11,
            "weekday": 3,
            "startTime": "09:00",
            "endTime": "13:00",
            "timezone": "Australia/Melbourne",
            "repeatInterval": "Weekly",
        },
        {
            "externalId": "900:1",
            "practitionerId": 55,
            "locationId": 11,
            "weekday": 3,
            "startTime": "14:00",
            "endTime": "17:30",
            "timezone": "Australia/Melbourne",
            "repeatInterval": "Weekly",
        },
    ]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("9:00", "13:00", ("09:00", "13:00")),
        ("07:30:00", "23:59:59", ("07:30", "23:59")),
        (" 8:05", "8:10 ", ("08:05", "08:10")),
    ],
)
def test_time_variants(start: str, end: str, expected: tuple[str, str]) -> None:
    rows = to_splose_availability(day(availabilities=[{"starts_at": start, "ends_at": end}]), ctx())
    row = valid("availability", rows[0])
    assert (row["startTime"], row["endTime"]) == expected


@pytest.mark.parametrize("weekday", [1, 7, "7"])
def test_iso_weekdays(weekday: object) -> None:
    assert valid("availability", to_splose_availability(day(day_of_week=weekday), ctx())[0])["weekday"] == int(weekday)


@pytest.mark.parametrize(
    ("fields", "context", "reason"),
    [
        ({"business": link("businesses/2")}, {}, "location ignored"),
        ({"business": link("businesses/3")}, {}, "location not mapped"),
        ({"practitioner": link("practitioners/6")}, {}, "practitioner not mapped"),
        ({"availabilities": []}, {}, "no availability ranges"),
        ({"availabilities": None}, {}, "no availability ranges"),
        ({"day_of_week": 0}, {}, "malformed day_of_week"),
        ({"day_of_week": 8}, {}, "malformed day_of_week"),
        ({"day_of_week": None}, {}, "malformed day_of_week"),
        ({"availabilities": [{"starts_at": "13:00", "ends_at": "09:00"}]}, {}, "malformed availabilities"),
        ({"availabilities": [{"starts_at": "09:00", "ends_at": "24:00"}]}, {}, "malformed availabilities"),
        ({"availabilities": [{"starts_at": "9am", "ends_at": "5pm"}]}, {}, "malformed availabilities"),
        ({"availabilities": "09:00-13:00"}, {}, "malformed availabilities"),
    ],
)
def test_availability_skips(fields: dict[str, Any], context: dict[str, Any], reason: str) -> None:
    assert to_splose_availability(day(**fields), ctx(**context)) == Skip("900", reason)


def reference_number(**fields: Any) -> dict[str, Any]:
    record = {
        "id": 950,
        "name": "Provider #",
        "reference_number": "123456A",
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
        "business": link("businesses/1"),
        "practitioner": link("practitioners/5"),
        "_state": "active",
        "_source": "main",
        **link("practitioner_reference_numbers/950"),
    }
    record.update(fields)
    return record


def test_provider_number() -> None:
    assert valid("providerNumbers", to_splose_provider_number(reference_number(), ctx())) == {
        "externalId": "950",
        "practitionerId": 55,
        "locationId": 11,
        "type": "Provider #",
        "number": "123456A",
    }


def test_provider_number_without_business_or_name() -> None:
    result = valid("providerNumbers", to_splose_provider_number(reference_number(business=None, name=""), ctx()))
    assert (result["locationId"], result["type"]) == (None, "Provider number")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"business": link("businesses/2")}, "location ignored"),
        ({"business": link("businesses/3")}, "location not mapped"),
        ({"practitioner": link("practitioners/6")}, "practitioner not mapped"),
        ({"practitioner": None}, "missing practitioner link"),
        ({"reference_number": " "}, "missing reference_number"),
    ],
)
def test_provider_number_skips(fields: dict[str, Any], reason: str) -> None:
    assert to_splose_provider_number(reference_number(**fields), ctx()) == Skip("950", reason)
