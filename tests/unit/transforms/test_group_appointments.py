"""Group appointments: one appointment, one entry per live attendee, skips for the rest."""

from __future__ import annotations

from typing import Any

import pytest

from cliniko_assets.transforms import Skip, to_splose_group_appointment
from tests.unit.transforms.conftest import ctx, link, valid


def group(**fields: Any) -> dict[str, Any]:
    record = {
        "id": "7000",
        "starts_at": "2025-03-03T22:00:00Z",
        "ends_at": "2025-03-03T23:00:00Z",
        "max_attendees": 6,
        "notes": "Bring a mat.",
        "patient_ids": ["1", "2"],
        "repeat_rule": {},
        "repeated_from": None,
        "archived_at": None,
        "deleted_at": None,
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-02T00:00:00Z",
        "appointment_type": link("appointment_types/7"),
        "business": link("businesses/1"),
        "practitioner": link("practitioners/5"),
        "_state": "active",
        "_source": "main",
        **link("group_appointments/7000"),
    }
    record.update(fields)
    return record


def attendee(attendee_id: str, patient_id: str, **fields: Any) -> dict[str, Any]:
    record = {
        "id": attendee_id,
        "arrived": False,
        "notes": None,
        "cancellation_note": None,
        "cancellation_reason": None,
        "cancellation_reason_description": "",
        "cancelled_at": None,
        "archived_at": None,
        "deleted_at": None,
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-03-04T00:00:00Z",
        "booking": link("bookings/7000"),
        "patient": link(f"patients/{patient_id}"),
        "_state": "booked",
        "_source": "main",
        **link(f"attendees/{attendee_id}"),
    }
    record.update(fields)
    return record


def test_one_entry_per_attendee_with_status() -> None:
    attendees = [
        attendee("71", "1", arrived=True, notes="Knee brace", _state="arrived"),
        attendee(
            "72",
            "2",
            cancelled_at="2025-03-01T00:00:00Z",
            cancellation_reason=31,
            cancellation_note="Called to cancel",
            _state="cancelled",
        ),
        attendee("73", "3"),
    ]
    appointment, skipped = to_splose_group_appointment(group(), attendees, ctx())
    assert skipped == []
    result = valid("appointments", appointment)
    assert {key: result[key] for key in ("externalId", "maxPatients", "locationId", "serviceId", "note")} == {
        "externalId": "7000",
        "maxPatients": 6,
        "locationId": 11,
        "serviceId": 77,
        "note": "Bring a mat.",
    }
    assert result["appointmentPatients"] == [
        {
            "externalId": "71",
            "clientExternalId": "1",
            "status": "Arrived",
            "note": "Knee brace",
            "cancellationReason": None,
            "cancellationNote": None,
            "statusUpdatedAt": "2025-03-04T00:00:00Z",
        },
        {
            "externalId": "72",
            "clientExternalId": "2",
            "status": "Cancelled",
            "note": None,
            "cancellationReason": "COVID-19 related",
            "cancellationNote": "Called to cancel",
            "statusUpdatedAt": "2025-03-01T00:00:00Z",
        },
        {
            "externalId": "73",
            "clientExternalId": "3",
            "status": None,
            "note": None,
            "cancellationReason": None,
            "cancellationNote": None,
            "statusUpdatedAt": None,
        },
    ]


def test_deleted_foreign_duplicate_and_unimported_attendees_are_skipped_with_reasons() -> None:
    attendees = [
        attendee("71", "1"),
        attendee("72", "2", deleted_at="2025-03-01T00:00:00Z", _state="deleted"),
        attendee("73", "3"),
        attendee("74", "4", booking=link("bookings/6999")),
        attendee("71", "1"),
        attendee("75", "5", patient=None),
    ]
    appointment, skipped = to_splose_group_appointment(
        group(), attendees, ctx(imported={"clients": frozenset({"1", "2", "4", "5"})})
    )
    assert [entry["externalId"] for entry in valid("appointments", appointment)["appointmentPatients"]] == ["71"]
    assert skipped == [
        Skip("72", "deleted in Cliniko"),
        Skip("73", "client not imported"),
        Skip("74", "attendee of another appointment"),
        Skip("71", "duplicate attendee"),
        Skip("75", "missing patient link"),
    ]


@pytest.mark.parametrize("max_attendees", [None, 0, 1, "3"])
def test_max_patients_is_at_least_two_and_the_number_of_entries(max_attendees: object) -> None:
    attendees = [attendee(str(70 + n), str(n)) for n in range(4)]
    appointment, _ = to_splose_group_appointment(group(max_attendees=max_attendees), attendees, ctx())
    assert valid("appointments", appointment)["maxPatients"] == 4
    empty, _ = to_splose_group_appointment(group(max_attendees=max_attendees), [], ctx())
    assert valid("appointments", empty)["maxPatients"] == max(2, int(max_attendees or 0))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"deleted_at": "2025-03-05T00:00:00Z", "_state": "deleted"}, "deleted in Cliniko"),
        ({"business": link("businesses/2")}, "location ignored"),
        ({"business": link("businesses/3")}, "location not mapped"),
        ({"practitioner": link("practitioners/6")}, "practitioner not mapped"),
        ({"appointment_type": link("appointment_types/8")}, "appointment type not mapped"),
        ({"starts_at": None}, "missing starts_at"),
    ],
)
def test_a_skipped_group_skips_all_its_attendees(fields: dict[str, Any], reason: str) -> None:
    attendees = [attendee("71", "1"), attendee("72", "2", deleted_at="2025-03-01T00:00:00Z")]
    appointment, skipped = to_splose_group_appointment(group(**fields), attendees, ctx())
    assert appointment == Skip("7000", reason)
    assert skipped == [Skip("71", "group appointment skipped"), Skip("72", "group appointment skipped")]


def test_archived_group_and_archived_attendee_are_kept() -> None:
    attendees = [attendee("71", "1", archived_at="2025-03-01T00:00:00Z", arrived=True, _state="archived")]
    appointment, skipped = to_splose_group_appointment(
        group(archived_at="2025-03-05T00:00:00Z", _state="archived"), attendees, ctx()
    )
    result = valid("appointments", appointment)
    assert (result["archived"], skipped, result["appointmentPatients"][0]["status"]) == (True, [], "Arrived")


def test_an_unusable_field_of_an_attendee_is_dropped_and_junk_is_a_skip() -> None:
    appointment, skipped = to_splose_group_appointment(group(), [attendee("71", "1", cancelled_at=5), "junk"], ctx())
    (entry,) = valid("appointments", appointment)["appointmentPatients"]
    assert (entry["externalId"], entry["status"]) == ("71", "Cancelled")
    assert entry["note"].endswith("Cliniko cancelled_at (unusable, not imported): 5")
    assert appointment["_warnings"] == ["cancelled_at"]
    assert skipped == [Skip("", "malformed record")]


def test_a_group_of_a_0_minute_type_is_imported_ending_a_minute_later_said_in_its_note() -> None:
    appointment, skipped = to_splose_group_appointment(
        group(ends_at="2025-03-03T22:00:00Z"), [attendee("71", "1"), attendee("72", "2")], ctx()
    )
    result = valid("appointments", appointment)
    assert (result["start"], result["end"], skipped) == ("2025-03-03T22:00:00Z", "2025-03-03T22:01:00Z", [])
    assert result["_warnings"] == ["zero_minutes"]
    assert result["note"].endswith("Cliniko ends_at is its starts_at (0 minutes): imported ending a minute later")
    assert [entry["externalId"] for entry in result["appointmentPatients"]] == ["71", "72"]
