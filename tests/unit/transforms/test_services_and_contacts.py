"""Appointment types -> created services; contacts -> contacts."""

from __future__ import annotations

from typing import Any

import pytest

from cliniko_assets.transforms import Skip, to_splose_contact, to_splose_service
from tests.unit.transforms.conftest import link, valid


def appointment_type(**fields: Any) -> dict[str, Any]:
    record = {
        "id": "7",
        "name": "Initial consultation",
        "category": "Standard",
        "description": "First visit",
        "color": "#3b82f6",
        "duration_in_minutes": 45,
        "max_attendees": 1,
        "archived_at": None,
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2020-01-01T00:00:00Z",
        "_state": "active",
        "_source": "main",
        **link("appointment_types/7"),
    }
    record.update(fields)
    return record


def test_service() -> None:
    assert valid("services", to_splose_service(appointment_type())) == {
        "externalId": "7",
        "name": "Initial consultation",
        "description": "First visit",
        "duration": 45,
        "color": "#3B82F6",
        "maxPatients": 1,
        "archived": False,
        "category": "Standard",
    }


@pytest.mark.parametrize(
    ("color", "expected"),
    [("#f0f", "#FF00FF"), ("#10b981", "#10B981"), ("10b981", "#10B981"), ("blue", None), (None, None), (3, None)],
)
def test_color_is_normalised(color: object, expected: str | None) -> None:
    assert valid("services", to_splose_service(appointment_type(color=color)))["color"] == expected


@pytest.mark.parametrize(("max_attendees", "expected"), [(8, 8), ("4", 4), (0, 1), (None, 1)])
def test_max_patients(max_attendees: object, expected: int) -> None:
    assert (
        valid("services", to_splose_service(appointment_type(max_attendees=max_attendees)))["maxPatients"] == expected
    )


def test_archived_group_type_with_string_duration() -> None:
    service = to_splose_service(
        appointment_type(
            archived_at="2021-01-01T00:00:00Z", _state="archived", duration_in_minutes="60", description=""
        )
    )
    assert {key: valid("services", service)[key] for key in ("archived", "duration", "description")} == {
        "archived": True,
        "duration": 60,
        "description": None,
    }


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"name": ""}, "missing name"),
        ({"duration_in_minutes": None}, "missing duration_in_minutes"),
        ({"duration_in_minutes": -5}, "malformed duration_in_minutes"),
        ({"duration_in_minutes": "half an hour"}, "malformed duration_in_minutes"),
    ],
)
def test_service_skips(fields: dict[str, Any], reason: str) -> None:
    assert to_splose_service(appointment_type(**fields)) == Skip("7", reason)


def contact(**fields: Any) -> dict[str, Any]:
    record = {
        "id": "300",
        "title": "Dr",
        "first_name": "Ravi",
        "last_name": "Patel",
        "preferred_name": "Rav",
        "company_name": None,
        "occupation": "General practitioner",
        "email": "ravi@example.org",
        "notes": "Fax referrals",
        "provider_number": "123456X",
        "address_1": "2 Low Street",
        "address_2": "Suite 4",
        "address_3": None,
        "city": "Melbourne",
        "state": "VIC",
        "post_code": "3000",
        "country": None,
        "country_code": "AU",
        "phone_numbers": [{"number": "03 9999 0000", "phone_type": "Work", "normalized_number": "+61399990000"}],
        "type": "Doctor",
        "type_code": 1,
        "doctor_type": "general_practitioner",
        "archived_at": None,
        "deleted_at": None,
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2020-01-01T00:00:00Z",
        "_state": "active",
        "_source": "main",
        **link("contacts/300"),
    }
    record.update(fields)
    return record


def test_contact() -> None:
    assert valid("contacts", to_splose_contact(contact())) == {
        "externalId": "300",
        "type": "Doctor",
        "name": "Ravi Patel",
        "title": "Dr",
        "firstName": "Ravi",
        "lastName": "Patel",
        "preferredName": "Rav",
        "occupation": "General practitioner",
        "companyName": None,
        "providerNumber": "123456X",
        "doctorType": "GP",
        "email": "ravi@example.org",
        "addressL1": "2 Low Street",
        "addressL2": "Suite 4",
        "addressL3": None,
        "suburb": "Melbourne",
        "state": "VIC",
        "postalCode": "3000",
        "country": "AU",
        "phoneNumbers": [{"type": "Work", "code": "+61", "phoneNumber": "399990000"}],
        "archived": False,
        "notes": "Fax referrals",
    }


@pytest.mark.parametrize(
    ("doctor_type", "expected"),
    [("general_practitioner", "GP"), ("specialist", "Specialist"), ("dentist", None), (None, None)],
)
def test_doctor_type(doctor_type: str | None, expected: str | None) -> None:
    assert valid("contacts", to_splose_contact(contact(doctor_type=doctor_type)))["doctorType"] == expected


@pytest.mark.parametrize(
    ("type_code", "expected"), [(0, "Standard"), (1, "Doctor"), ("2", "3rd Party Payer"), (9, None)]
)
def test_type_from_type_code_when_type_is_missing(type_code: object, expected: str | None) -> None:
    assert valid("contacts", to_splose_contact(contact(type=None, type_code=type_code)))["type"] == expected


def test_company_contact_is_named_after_the_company() -> None:
    payer = contact(type="3rd Party Payer", first_name=None, last_name="", company_name="Allied Insurance", title=None)
    assert valid("contacts", to_splose_contact(payer))["name"] == "Allied Insurance"


def test_archived_and_deleted_contacts() -> None:
    assert valid("contacts", to_splose_contact(contact(archived_at="2024-01-01T00:00:00Z")))["archived"] is True
    deleted = contact(deleted_at="2024-01-01T00:00:00Z", _state="deleted")
    assert to_splose_contact(deleted) == Skip("300", "deleted in Cliniko")
