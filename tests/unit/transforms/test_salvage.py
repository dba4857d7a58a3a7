"""One bad field is not a lost record: the field is dropped, counted by name and kept verbatim in free text."""

from __future__ import annotations

from typing import Any

import pytest

from cliniko_assets.transforms import (
    WARNINGS,
    pop_warnings,
    to_splose_appointment,
    to_splose_client,
    to_splose_contact,
    to_splose_progress_note,
)
from cliniko_assets.transforms.salvage import fit_short_fields
from tests.unit.transforms.conftest import ctx, link, valid
from tests.unit.transforms.test_clients import patient


def client(**fields: Any) -> dict[str, Any]:
    return valid("clients", to_splose_client(patient(**fields), ctx(default_region="AU")))


@pytest.mark.parametrize(
    ("fields", "field", "verbatim"),
    [
        ({"email": "zoe at mail"}, "email", "zoe at mail"),
        ({"date_of_birth": "1984-02-30"}, "birthdate", "1984-02-30"),
        ({"date_of_birth": "07/03/1984"}, "birthdate", "07/03/1984"),
        ({"address_1": {"street": "1 High St"}}, "addressL1", '{"street": "1 High St"}'),
        ({"post_code": ["3000"]}, "postalCode", '["3000"]'),
        ({"created_at": "yesterday"}, "createdAt", "yesterday"),
    ],
)
def test_an_unusable_field_is_dropped_and_kept_verbatim(fields: dict, field: str, verbatim: str) -> None:
    result = client(**fields)
    (name,) = fields
    assert result["firstname"] == "Zoë" and result[field] is None
    assert result[WARNINGS] == [name]
    assert result["extraInfo"].splitlines()[-1] == f"Cliniko {name} (unusable, not imported): {verbatim}"


def test_a_number_where_text_is_expected_is_read_as_its_text() -> None:
    result = client(title=7)
    assert result["title"] == "7" and WARNINGS not in result


def test_one_bad_custom_field_drops_only_itself() -> None:
    custom = {
        "sections": [
            {
                "name": "Insurance coverage",
                "fields": [
                    {"name": "Policy number", "type": "text", "value": "ABC-12345"},
                    {"name": "Provider", "type": "radiobuttons", "options": "Super Insurance"},
                    "junk",
                ],
            },
            ["not a section"],
        ]
    }
    result = client(custom_fields=custom)
    lines = result["extraInfo"].splitlines()
    assert "Custom field Insurance coverage / Policy number: ABC-12345" in lines
    assert result[WARNINGS] == ["custom_fields"]
    assert sum(line.startswith("Cliniko custom_fields (unusable") for line in lines) == 3


def test_custom_fields_that_are_not_an_object_are_dropped_whole() -> None:
    result = client(custom_fields="Insurance: yes")
    assert result[WARNINGS] == ["custom_fields"]
    assert result["extraInfo"].endswith("Cliniko custom_fields (unusable, not imported): Insurance: yes")


def test_the_documented_custom_fields_are_read() -> None:
    documented = {
        "sections": [
            {
                "name": "Insurance coverage",
                "token": "ef4c43ec-105d-489c-88cc-0f3c5f67dc70",
                "fields": [
                    {
                        "name": "Provider",
                        "type": "radiobuttons",
                        "other": {"enabled": True},
                        "token": "b16839e0-26a4-48d6-83d6-36658e357c81",
                        "options": [
                            {"name": "Great Insurance", "token": "944e2fe0-6730-42fd-b9a2-519f35ceb46a"},
                            {"name": "Super Insurance", "token": "d656a93c", "selected": True},
                        ],
                    },
                    {"name": "Policy number", "type": "text", "token": "fdb9c8a0", "value": "ABC-12345"},
                ],
            }
        ]
    }
    lines = client(custom_fields=documented)["extraInfo"].splitlines()
    assert "Custom field Insurance coverage / Provider: Super Insurance" in lines
    assert "Custom field Insurance coverage / Policy number: ABC-12345" in lines


def test_phone_numbers_take_the_clinics_country_then_the_patients_own() -> None:
    numbers = [{"phone_type": "Mobile", "number": "61444444444"}, {"phone_type": "Home", "number": "021 123 4567"}]
    in_australia = to_splose_client(patient(patient_phone_numbers=numbers, country="New Zealand"), ctx())
    assert [(p["code"], p["phoneNumber"]) for p in in_australia["phoneNumbers"]] == [
        (None, "61444444444"),
        ("+64", "211234567"),
    ]
    with_clinic = client(patient_phone_numbers=numbers, country="New Zealand")
    assert [p["code"] for p in with_clinic["phoneNumbers"]] == ["+61", "+61"]


def test_pop_warnings_takes_the_names_off_the_record() -> None:
    record = client(email="nope")
    assert pop_warnings(record) == ["email"] and WARNINGS not in record
    assert pop_warnings(record) == []


def test_a_contacts_unusable_fields_go_to_its_notes() -> None:
    contact = {
        "id": 1,
        "first_name": "Darrell",
        "last_name": "Bode",
        "email": "geovany@",
        "country": "Estonia",
        "notes": "",
        "phone_numbers": [{"number": "0987654321", "phone_type": "Mobile"}, {"number": "n/a", "phone_type": "Home"}],
    }
    result = valid("contacts", to_splose_contact(contact, ctx(default_region="AU")))
    assert (result["email"], result[WARNINGS]) == (None, ["email", "phone_numbers"])
    assert result["phoneNumbers"] == [{"type": "Mobile", "code": None, "phoneNumber": "0987654321"}]
    assert result["notes"].splitlines() == [
        "Cliniko email (unusable, not imported): geovany@",
        'Cliniko phone_numbers (unusable, not imported): {"number": "n/a", "phone_type": "Home"}',
    ]


def appointment(**fields: Any) -> dict[str, Any]:
    record = {
        "id": "5000",
        "starts_at": "2025-03-03T22:00:00Z",
        "ends_at": "2025-03-03T22:30:00Z",
        "notes": "Bring scans",
        "cancelled_at": None,
        "patient_arrived": True,
        "did_not_arrive": False,
        "updated_at": "2025-03-04T00:00:00Z",
        "appointment_type": link("appointment_types/7"),
        "business": link("businesses/1"),
        "practitioner": link("practitioners/5"),
        "patient": link("patients/1001"),
        "_state": "arrived",
    }
    return {**record, **fields}


def test_an_appointments_unusable_fields_go_to_its_note() -> None:
    result = valid(
        "appointments",
        to_splose_appointment(appointment(cancelled_at="last tuesday", cancellation_reason_description=[]), ctx()),
    )
    (entry,) = result["appointmentPatients"]
    assert (entry["status"], entry["statusUpdatedAt"], entry["cancellationReason"]) == (
        "Cancelled",
        "2025-03-04T00:00:00Z",
        None,
    )
    assert result[WARNINGS] == ["cancelled_at"]
    assert result["note"] == "Bring scans\nCliniko cancelled_at (unusable, not imported): last tuesday"


def test_an_appointment_without_usable_times_cannot_be_imported() -> None:
    assert to_splose_appointment(appointment(starts_at="soon"), ctx()).reason == "malformed starts_at"


def test_a_notes_unusable_timestamps_are_dropped_with_a_warning() -> None:
    note = {
        "id": "8800",
        "draft": False,
        "finalized_at": "not yet",
        "created_at": "2025-03-03T00:00:00Z",
        "content": None,
        "patient": link("patients/1001"),
        "practitioner": link("practitioners/5"),
        "_state": "final",
    }
    result = valid("progressNotes", to_splose_progress_note(note, ctx()))
    assert (result["finalizedAt"], result["createdAt"], result[WARNINGS]) == (
        None,
        "2025-03-03T00:00:00Z",
        ["finalized_at"],
    )


def test_a_value_longer_than_its_splose_field_is_cut_there_and_kept_whole_in_the_notes() -> None:
    """Splose holds 255 characters in a field other than free text: a longer address would have the whole client
    rejected, and with it everything of theirs."""
    long_address = "Unit 4, " + "Long Street " * 30  # 368 characters
    record = to_splose_client(patient(address_1=long_address), ctx(default_region="AU"))
    pop_warnings(record)

    assert fit_short_fields("clients", record) == 1

    valid("clients", record)
    assert record["addressL1"] == long_address[:254] + "…"
    assert record["extraInfo"].endswith(
        f"addressL1 (longer than Splose's 255 characters, cut there), whole: {long_address}"
    )
    untouched = to_splose_client(patient(), ctx(default_region="AU"))
    pop_warnings(untouched)
    assert fit_short_fields("clients", dict(untouched)) == 0
    assert fit_short_fields("progressNotes", {"title": "x" * 300}) == 0  # no free text to keep it in: left as it is
