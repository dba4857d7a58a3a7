"""Individual appointments: statuses, cancellation reasons, and the skips for missing dependencies."""

from __future__ import annotations

from typing import Any

import pytest

from cliniko_assets.transforms import WARNINGS, Skip, to_splose_appointment
from tests.unit.transforms.conftest import ctx, link, valid


def appointment(**fields: Any) -> dict[str, Any]:
    record = {
        "id": "5000",
        "starts_at": "2025-03-03T22:00:00Z",
        "ends_at": "2025-03-03T22:30:00Z",
        "patient_name": "Zoë O'Brien",
        "notes": "Prefers afternoon.",
        "did_not_arrive": False,
        "patient_arrived": False,
        "cancelled_at": None,
        "cancellation_reason": None,
        "cancellation_reason_description": "",
        "cancellation_note": None,
        "repeat_rule": {},
        "repeats": None,
        "repeated_from": None,
        "archived_at": None,
        "deleted_at": None,
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-03-04T01:00:00Z",
        "appointment_type": link("appointment_types/7"),
        "business": link("businesses/1"),
        "practitioner": link("practitioners/5"),
        "patient": link("patients/1001"),
        "_state": "booked",
        "_source": "main",
        **link("individual_appointments/5000"),
    }
    record.update(fields)
    return record


def convert(**fields: Any) -> dict[str, Any]:
    return valid("appointments", to_splose_appointment(appointment(**fields), ctx()))


def entry(**fields: Any) -> dict[str, Any]:
    return convert(**fields)["appointmentPatients"][0]


def test_booked_appointment() -> None:
    assert convert() == {
        "externalId": "5000",
        "start": "2025-03-03T22:00:00Z",
        "end": "2025-03-03T22:30:00Z",
        "serviceId": 77,
        "locationId": 11,
        "practitionerId": 55,
        "maxPatients": 1,
        "note": "Prefers afternoon.",
        "archived": False,
        "repeatOfExternalId": None,
        "appointmentPatients": [
            {
                "externalId": "5000",
                "clientExternalId": "1001",
                "status": None,
                "note": "Prefers afternoon.",
                "cancellationReason": None,
                "cancellationNote": None,
                "statusUpdatedAt": None,
            }
        ],
    }


def test_arrived() -> None:
    arrived = entry(patient_arrived=True, _state="arrived")
    assert (arrived["status"], arrived["statusUpdatedAt"]) == ("Arrived", "2025-03-04T01:00:00Z")


def test_did_not_arrive() -> None:
    missed = entry(did_not_arrive=True, _state="did_not_arrive")
    assert (missed["status"], missed["statusUpdatedAt"]) == ("Did not arrive", "2025-03-04T01:00:00Z")


def test_cancelled_with_description_and_note() -> None:
    cancelled = entry(
        cancelled_at="2025-03-02T09:00:00Z",
        cancellation_reason=30,
        cancellation_reason_description="Sick",
        cancellation_note="Rang the front desk",
        _state="cancelled",
    )
    assert cancelled == {
        "externalId": "5000",
        "clientExternalId": "1001",
        "status": "Cancelled",
        "note": "Prefers afternoon.",
        "cancellationReason": "Sick",
        "cancellationNote": "Rang the front desk",
        "statusUpdatedAt": "2025-03-02T09:00:00Z",
    }


@pytest.mark.parametrize(
    ("code", "label"),
    [
        (10, "Feeling Better"),
        (20, "Condition Worse"),
        (30, "Sick"),
        (31, "COVID-19 related"),
        (40, "Away"),
        (50, "Other"),
        (60, "Work"),
        ("60", "Work"),
        (70, "Other (code 70)"),
        (None, None),
        ("soon", None),
    ],
)
def test_cancellation_reason_codes_without_description(code: object, label: str | None) -> None:
    cancelled = entry(cancelled_at="2025-03-02T09:00:00Z", cancellation_reason=code, _state="cancelled")
    assert (cancelled["status"], cancelled["cancellationReason"]) == ("Cancelled", label)


def test_an_unknown_code_keeps_clinikos_own_description() -> None:
    cancelled = entry(
        cancelled_at="2025-03-02T09:00:00Z", cancellation_reason=70, cancellation_reason_description="Weather"
    )
    assert cancelled["cancellationReason"] == "Weather"


def test_archived_cancelled_appointment_stays_cancelled() -> None:
    result = convert(cancelled_at="2025-03-02T09:00:00Z", archived_at="2025-03-05T00:00:00Z", _state="archived")
    assert result["archived"] is True
    assert result["appointmentPatients"][0]["status"] == "Cancelled"


def test_status_from_state_when_the_flags_are_missing() -> None:
    record = appointment(_state="cancelled", cancelled_at="")
    del record["did_not_arrive"], record["patient_arrived"]
    cancelled = valid("appointments", to_splose_appointment(record, ctx()))["appointmentPatients"][0]
    assert (cancelled["status"], cancelled["statusUpdatedAt"]) == ("Cancelled", "2025-03-04T01:00:00Z")


def test_old_appointments_route_field_names() -> None:
    record = appointment(appointment_start="2025-03-03T22:00:00Z", appointment_end="2025-03-03T23:00:00Z")
    del record["starts_at"], record["ends_at"]
    record["cancellation_time"] = "2025-03-01T00:00:00Z"
    result = valid("appointments", to_splose_appointment(record, ctx()))
    assert (result["end"], result["appointmentPatients"][0]["statusUpdatedAt"]) == (
        "2025-03-03T23:00:00Z",
        "2025-03-01T00:00:00Z",
    )


def test_int_ids_and_plain_id_fields() -> None:
    record = appointment(id=5000, business=None, business_id=1)
    assert valid("appointments", to_splose_appointment(record, ctx()))["externalId"] == "5000"


def test_repeat_links_to_the_series_head_when_it_can_be_resolved() -> None:
    repeated = appointment(repeated_from=link("individual_appointments/4999"))
    assert to_splose_appointment(repeated, ctx())["repeatOfExternalId"] == "4999"
    known = ctx(imported={"appointments": frozenset({"4999"})})
    assert to_splose_appointment(repeated, known)["repeatOfExternalId"] == "4999"
    assert to_splose_appointment(repeated, ctx(imported={"appointments": frozenset()}))["repeatOfExternalId"] is None
    itself = appointment(repeated_from=link("individual_appointments/5000"))
    assert to_splose_appointment(itself, ctx())["repeatOfExternalId"] is None


@pytest.mark.parametrize(
    ("fields", "context", "reason"),
    [
        ({"deleted_at": "2025-03-05T00:00:00Z", "_state": "deleted"}, {}, "deleted in Cliniko"),
        ({"_source": "deleted", "_state": "deleted"}, {}, "deleted in Cliniko"),
        ({"business": link("businesses/2")}, {}, "location ignored"),
        ({"business": link("businesses/3")}, {}, "location not mapped"),
        ({}, {"imported": {"clients": frozenset({"1"})}}, "client not imported"),
        ({"practitioner": link("practitioners/6")}, {}, "practitioner not mapped"),
        ({"appointment_type": link("appointment_types/8")}, {}, "appointment type not mapped"),
        ({"business": None}, {}, "missing business link"),
        ({"patient": None}, {}, "missing patient link"),
        ({"practitioner": None}, {}, "missing practitioner link"),
        ({"appointment_type": None}, {}, "missing appointment_type link"),
        ({"starts_at": ""}, {}, "missing starts_at"),
        ({"ends_at": "tomorrow"}, {}, "malformed ends_at"),
        ({"ends_at": "2025-03-03T21:59:00Z"}, {}, "ends_at not after starts_at"),
    ],
)
def test_skips(fields: dict[str, Any], context: dict[str, Any], reason: str) -> None:
    assert to_splose_appointment(appointment(**fields), ctx(**context)) == Skip("5000", reason)


def test_an_appointment_of_a_0_minute_type_is_imported_ending_a_minute_later_said_in_its_note() -> None:
    result = valid("appointments", to_splose_appointment(appointment(ends_at="2025-03-03T22:00:00Z"), ctx()))
    assert (result["start"], result["end"]) == ("2025-03-03T22:00:00Z", "2025-03-03T22:01:00Z")
    assert result[WARNINGS] == ["zero_minutes"]
    assert result["note"].endswith("Cliniko ends_at is its starts_at (0 minutes): imported ending a minute later")


def test_imported_client_is_kept() -> None:
    result = to_splose_appointment(appointment(), ctx(imported={"clients": frozenset({"1001"})}))
    assert valid("appointments", result)["appointmentPatients"][0]["clientExternalId"] == "1001"
