"""Records pointing at what the list routes did not return: imported where Splose allows, else skipped by name."""

from __future__ import annotations

from cliniko_assets.transforms import (
    WARNINGS,
    Skip,
    to_splose_appointment,
    to_splose_availability,
    to_splose_client,
    to_splose_group_appointment,
    to_splose_progress_note,
    to_splose_progress_note_template,
    to_splose_provider_number,
)
from tests.unit.transforms.conftest import ctx, link, valid
from tests.unit.transforms.test_salvage import appointment

UNRESOLVED = {"business": frozenset({"3"}), "practitioner": frozenset({"6"})}


def test_an_unresolved_business_skips_the_appointment_naming_it_for_the_clinics_attention() -> None:
    result = to_splose_appointment(appointment(business=link("businesses/3")), ctx(unresolved=UNRESOLVED))
    assert result == Skip("5000", "business 3 not listed by Cliniko, not mapped")


def test_an_unresolved_practitioner_is_left_off_the_appointment_with_a_warning() -> None:
    result = valid(
        "appointments",
        to_splose_appointment(appointment(practitioner=link("practitioners/6")), ctx(unresolved=UNRESOLVED)),
    )
    assert result["practitionerId"] is None and result[WARNINGS] == ["practitioner"]
    assert result["note"] == "Bring scans\nCliniko practitioner 6 (not listed by Cliniko, not mapped)"


def test_an_unmapped_listed_practitioner_still_skips() -> None:
    result = to_splose_appointment(appointment(practitioner=link("practitioners/7")), ctx(unresolved=UNRESOLVED))
    assert result == Skip("5000", "practitioner not mapped")


def test_availability_and_provider_numbers_cannot_exist_without_their_practitioner() -> None:
    day = {
        "id": "900",
        "day_of_week": 1,
        "availabilities": [{"starts_at": "09:00", "ends_at": "12:00"}],
        "business": link("businesses/1"),
        "practitioner": link("practitioners/6"),
    }
    expected = Skip("900", "practitioner 6 not listed by Cliniko, not mapped")
    assert to_splose_availability(day, ctx(unresolved=UNRESOLVED)) == expected
    number = {"id": "900", "reference_number": "1", "business": None, "practitioner": link("practitioners/6")}
    assert to_splose_provider_number(number, ctx(unresolved=UNRESOLVED)) == expected


def test_availability_without_a_known_zone_is_skipped_naming_the_business_for_the_clinics_attention() -> None:
    day = {
        "id": "900",
        "day_of_week": 1,
        "availabilities": [{"starts_at": "09:00", "ends_at": "12:00"}],
        "business": link("businesses/1"),
        "practitioner": link("practitioners/5"),
    }
    assert to_splose_availability(day, ctx(business_time_zones={})) == Skip("900", "time zone of business 1 not known")


def test_a_patient_cliniko_does_not_have_is_named() -> None:
    missing = ctx(missing={"patients": frozenset({"82"})})
    assert to_splose_appointment(appointment(patient=link("patients/82")), missing) == Skip(
        "5000", "patient 82 not in Cliniko"
    )
    note = {"id": "1", "patient": link("patients/82"), "content": None}
    assert to_splose_progress_note(note, missing) == Skip("1", "patient 82 not in Cliniko")


def test_a_type_the_clinic_ignores_skips_its_appointments() -> None:
    assert to_splose_appointment(appointment(), ctx(services_ignored=frozenset({"7"}))) == Skip(
        "5000", "appointment type ignored by the clinic"
    )


def test_a_group_without_its_practitioner_keeps_its_attendees() -> None:
    group = {
        "id": "70",
        "starts_at": "2025-03-03T22:00:00Z",
        "ends_at": "2025-03-03T23:00:00Z",
        "max_attendees": 13,
        "appointment_type": link("appointment_types/7"),
        "business": link("businesses/1"),
        "practitioner": link("practitioners/6"),
    }
    attendee = {"id": "71", "arrived": None, "booking": link("bookings/70"), "patient": link("patients/1001")}
    record, skipped = to_splose_group_appointment(group, [attendee], ctx(unresolved=UNRESOLVED))
    valid("appointments", record)
    assert (record["practitionerId"], record[WARNINGS], skipped) == (None, ["practitioner"], [])
    assert record["appointmentPatients"][0]["status"] is None  # "arrived": null is still booked


def test_stubs_of_records_cliniko_does_not_have_are_skipped() -> None:
    stub = {"id": "789", "links": {"self": "https://api.au1.cliniko.com/v1/treatment_note_templates/789"}}
    reason = "not in Cliniko (only referenced by other records)"
    assert to_splose_progress_note_template({**stub, "_state": "missing"}) == Skip("789", reason)
    assert to_splose_client({**stub, "_state": "missing"}, ctx()) == Skip("789", reason)
