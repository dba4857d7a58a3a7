"""Patients -> clients, field by field."""

from __future__ import annotations

from typing import Any

import pytest

from cliniko_assets.transforms import Skip, to_splose_client
from tests.unit.transforms.conftest import ctx, link, valid


def patient(**fields: Any) -> dict[str, Any]:
    record = {
        "id": "1001",
        "title": "Ms",
        "first_name": "Zoë",
        "last_name": "O'Brien",
        "preferred_first_name": "Zo",
        "date_of_birth": "1984-03-07",
        "email": "zoe@mail.example",
        "address_1": "1 High Street",
        "address_2": None,
        "address_3": None,
        "city": "Melbourne",
        "state": "VIC",
        "post_code": "3000",
        "country": "Australia",
        "country_code": "AU",
        "patient_phone_numbers": [{"phone_type": "Mobile", "number": "+61 412 345 678"}],
        "gender": None,
        "sex": "Female",
        "gender_identity": "Woman",
        "pronouns": "she/her",
        "time_zone": "Australia/Melbourne",
        "accepted_privacy_policy": True,
        "accepted_email_marketing": False,
        "accepted_sms_marketing": True,
        "reminder_type": "SMS & Email",
        "medicare": "2123456701",
        "medicare_reference_number": "1",
        "dva_card_number": "N123456",
        "occupation": "Teacher",
        "emergency_contact": "Sam, 0400 000 000",
        "notes": "Prefers mornings",
        "appointment_notes": "Use side entrance",
        "old_reference_id": None,
        "referral_source": None,
        "invoice_email": None,
        "invoice_default_to": None,
        "invoice_extra_information": "Bill the insurer",
        "custom_fields": None,
        "archived_at": None,
        "deleted_at": None,
        "merged_at": None,
        "merged_with_patient": None,
        "referring_doctor": link("contacts/300"),
        "created_at": "2020-05-01T10:00:00Z",
        "updated_at": "2021-05-01T10:00:00Z",
        "_state": "active",
        "_source": "main",
        **link("patients/1001"),
    }
    record.update(fields)
    return record


def client(**fields: Any) -> dict[str, Any]:
    return valid("clients", to_splose_client(patient(**fields), ctx()))


def test_every_field() -> None:
    assert client() == {
        "externalId": "1001",
        "firstname": "Zoë",
        "lastname": "O'Brien",
        "preferredName": "Zo",
        "title": "Ms",
        "email": "zoe@mail.example",
        "sex": "Female",
        "genderIdentity": "Woman",
        "pronouns": "she/her",
        "birthdate": "1984-03-07",
        "timezone": "Australia/Melbourne",
        "extraInfo": (
            "Notes: Prefers mornings\nAppointment notes: Use side entrance\nOccupation: Teacher\n"
            "Email marketing: declined\nSMS marketing: accepted"
        ),
        "extraBillingInfo": "Bill the insurer",
        "addressL1": "1 High Street",
        "addressL2": None,
        "addressL3": None,
        "city": "Melbourne",
        "state": "VIC",
        "postalCode": "3000",
        "country": "Australia",
        "phoneNumbers": [{"type": "Mobile", "code": "+61", "phoneNumber": "412345678"}],
        "privacyPolicy": "Accepted",
        "medicareNum": "2123456701",
        "irn": "1",
        "veteransFileNumber": "N123456",
        "emergencyContactName": "Sam, 0400 000 000",
        "communicationPreference": "SMS_EMAIL",
        "archived": False,
        "referringContactExternalId": "300",
        "createdAt": "2020-05-01T10:00:00Z",
    }


def test_deleted_patient_stub_is_skipped() -> None:
    stub = {"deleted_at": "2024-01-01T00:00:00Z", **link("patients/77"), "_state": "deleted", "_source": "deleted"}
    assert to_splose_client(stub, ctx()) == Skip("77", "deleted in Cliniko")


def test_archived_patient_is_an_archived_client() -> None:
    assert client(archived_at="2024-01-01T00:00:00Z", _state="archived")["archived"] is True


def test_merged_patient_is_archived_and_names_the_survivor_by_id_only() -> None:
    merged = client(
        archived_at="2024-02-02T02:02:02Z",
        merged_at="2024-02-02T02:02:02Z",
        merged_with_patient=link("patients/555"),
        _state="merged",
        notes=None,
        appointment_notes=None,
        occupation=None,
        accepted_email_marketing=None,
        accepted_sms_marketing=None,
    )
    assert merged["archived"] is True
    assert merged["extraInfo"] == "Merged in Cliniko into patient 555 at 2024-02-02T02:02:02Z"


@pytest.mark.parametrize(
    ("accepted", "expected"), [(True, "Accepted"), (False, "Rejected"), (None, "No response"), ("yes", "No response")]
)
def test_privacy_policy(accepted: object, expected: str) -> None:
    assert client(accepted_privacy_policy=accepted)["privacyPolicy"] == expected


def test_privacy_policy_missing_is_no_response() -> None:
    record = patient()
    del record["accepted_privacy_policy"]
    assert valid("clients", to_splose_client(record, ctx()))["privacyPolicy"] == "No response"


@pytest.mark.parametrize(
    ("reminder", "expected"),
    [
        ("SMS & Email", "SMS_EMAIL"),
        ("SMS", "SMS"),
        ("Email", "EMAIL"),
        ("None", "NONE"),
        ("Carrier pigeon", None),
        (None, None),
        ("", None),
    ],
)
def test_reminder_type_to_communication_preference(reminder: str | None, expected: str | None) -> None:
    assert client(reminder_type=reminder)["communicationPreference"] == expected


def test_sex_falls_back_to_the_deprecated_gender() -> None:
    assert client(sex=None, gender="Male")["sex"] == "Male"
    assert client(sex="Female", gender="Male")["sex"] == "Female"
    assert client(sex="", gender=None)["sex"] is None


def test_pronouns_object_is_written_as_nominative_slash_accusative() -> None:
    assert client(pronouns={"accusative": "them", "nominative": "they"})["pronouns"] == "they/them"
    assert client(pronouns={})["pronouns"] is None


def test_referring_doctor_links_only_an_imported_contact() -> None:
    record = patient()
    assert (
        to_splose_client(record, ctx(imported={"contacts": frozenset({"300"})}))["referringContactExternalId"] == "300"
    )
    assert to_splose_client(record, ctx(imported={"contacts": frozenset()}))["referringContactExternalId"] is None
    assert to_splose_client(record, ctx(imported={"clients": frozenset()}))["referringContactExternalId"] == "300"
    assert client(referring_doctor=None)["referringContactExternalId"] is None


def test_medicare_and_dva_numbers() -> None:
    result = client(medicare=2123456701, medicare_reference_number=2, dva_card_number="")
    assert (result["medicareNum"], result["irn"], result["veteransFileNumber"]) == ("2123456701", "2", None)


def test_time_zone_not_iana_is_kept_in_extra_info() -> None:
    result = client(time_zone="Melbourne", notes=None, appointment_notes=None, occupation=None)
    assert result["timezone"] is None
    assert "Cliniko time zone: Melbourne" in result["extraInfo"]


def test_fields_without_a_splose_field_are_kept_as_labelled_lines() -> None:
    result = client(
        old_reference_id="OLD-4",
        referral_source="Google",
        invoice_email="accounts@example.org",
        invoice_default_to="Patient",
        custom_fields={
            "sections": [
                {
                    "name": "Intake",
                    "fields": [
                        {"name": "Shoe size", "type": "text", "value": "42"},
                        {"name": "Consent", "type": "checkbox", "value": True},
                        {
                            "name": "Sports",
                            "type": "checkboxes",
                            "options": [{"name": "Running", "selected": True}, {"name": "Golf"}],
                            "other": {"enabled": True, "selected": True, "value": "Rowing"},
                        },
                        {"name": "Empty", "type": "text", "value": ""},
                    ],
                }
            ]
        },
    )
    assert result["extraInfo"].splitlines() == [
        "Notes: Prefers mornings",
        "Appointment notes: Use side entrance",
        "Occupation: Teacher",
        "Old reference id: OLD-4",
        "Referral source: Google",
        "Invoice email: accounts@example.org",
        "Invoice default to: Patient",
        "Email marketing: declined",
        "SMS marketing: accepted",
        "Custom field Intake / Shoe size: 42",
        "Custom field Intake / Consent: yes",
        "Custom field Intake / Sports: Running, Other: Rowing",
    ]


def test_a_sparse_patient_has_nulls_not_errors() -> None:
    sparse = {"id": 9, "first_name": "A", "last_name": "B", "archived_at": "", "deleted_at": "", "created_at": ""}
    result = valid("clients", to_splose_client(sparse, ctx()))
    assert result["externalId"] == "9"
    assert (result["archived"], result["createdAt"], result["extraInfo"], result["phoneNumbers"]) == (
        False,
        None,
        None,
        [],
    )


@pytest.mark.parametrize("missing", ["first_name", "last_name"])
def test_missing_name_is_a_skip_naming_the_field(missing: str) -> None:
    assert to_splose_client(patient(**{missing: ""}), ctx()) == Skip("1001", f"missing {missing}")


def test_an_impossible_birthdate_drops_the_field_not_the_client() -> None:
    result = client(date_of_birth="1984-02-30")
    assert result["birthdate"] is None
    assert result["_warnings"] == ["date_of_birth"]
    assert result["extraInfo"].splitlines()[-1] == "Cliniko date_of_birth (unusable, not imported): 1984-02-30"
