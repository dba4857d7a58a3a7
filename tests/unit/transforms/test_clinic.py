"""Every record of a generated clinic goes through its transform: each output validates against the
Splose import schema, and every skip has one of the expected reasons."""

from __future__ import annotations

from collections import Counter

from cliniko_assets.catalog import linked_id, record_id
from cliniko_assets.transforms import (
    ImportContext,
    Skip,
    to_splose_appointment,
    to_splose_availability,
    to_splose_client,
    to_splose_contact,
    to_splose_file,
    to_splose_group_appointment,
    to_splose_progress_note,
    to_splose_progress_note_template,
    to_splose_provider_number,
    to_splose_service,
)
from tests.unit.transforms.conftest import Clinic, attendees_by_booking, valid

SHA = "ab" * 32


def reasons(results: list) -> Counter:
    return Counter(result.reason for result in results if isinstance(result, Skip))


def test_services(clinic: Clinic) -> None:
    listed = [t for t in clinic["appointment_types"] if t["_state"] != "missing"]
    for appointment_type in listed:
        service = valid("services", to_splose_service(appointment_type))
        assert service["externalId"] == appointment_type["id"]
        assert service["maxPatients"] == appointment_type["max_attendees"]
        assert service["archived"] is (appointment_type["archived_at"] is not None)
    (deleted,) = [t for t in clinic["appointment_types"] if t["_state"] == "missing"]
    assert to_splose_service(deleted) == Skip(deleted["id"], "missing name")  # the mapping names it instead


def test_contacts(clinic: Clinic) -> None:
    for contact in clinic["contacts"]:
        valid("contacts", to_splose_contact(contact))


def test_clients(clinic: Clinic, clinic_ctx: ImportContext) -> None:
    results = [to_splose_client(patient, clinic_ctx) for patient in clinic["patients"]]
    assert set(reasons(results)) == {"deleted in Cliniko"}
    clients = [valid("clients", result) for result in results if isinstance(result, dict)]
    merged = [client for client in clients if "Merged in Cliniko into patient" in (client["extraInfo"] or "")]
    assert merged and all(client["archived"] for client in merged)
    assert {client["communicationPreference"] for client in clients} >= {"SMS_EMAIL", "SMS", "NONE"}


def test_individual_appointments(clinic: Clinic, clinic_ctx: ImportContext) -> None:
    results = [to_splose_appointment(appointment, clinic_ctx) for appointment in clinic["individual_appointments"]]
    assert set(reasons(results)) == {"deleted in Cliniko", "location ignored"}
    appointments = [valid("appointments", result) for result in results if isinstance(result, dict)]
    statuses = Counter(a["appointmentPatients"][0]["status"] for a in appointments)
    assert set(statuses) == {"Arrived", "Did not arrive", "Cancelled", None}
    cancelled = [
        a["appointmentPatients"][0] for a in appointments if a["appointmentPatients"][0]["status"] == "Cancelled"
    ]
    assert all(entry["cancellationReason"] and entry["statusUpdatedAt"] for entry in cancelled)


def test_individual_appointments_of_clients_not_imported(clinic: Clinic, clinic_ctx: ImportContext) -> None:
    ctx = ImportContext(**{**clinic_ctx.__dict__, "imported": {"clients": frozenset()}})
    results = [to_splose_appointment(appointment, ctx) for appointment in clinic["individual_appointments"]]
    assert "client not imported" in reasons(results)
    assert not [result for result in results if isinstance(result, dict)]


def test_group_appointments(clinic: Clinic, clinic_ctx: ImportContext) -> None:
    grouped = attendees_by_booking(clinic)
    seen_attendees = 0
    skipped_reasons: Counter = Counter()
    for group in clinic["group_appointments"]:
        attendees = grouped.get(record_id(group), [])
        seen_attendees += len(attendees)
        appointment, skipped = to_splose_group_appointment(group, attendees, clinic_ctx)
        skipped_reasons.update(skip.reason for skip in skipped)
        if isinstance(appointment, Skip):
            assert {skip.reason for skip in skipped} <= {"group appointment skipped"}
            assert len(skipped) == len(attendees)
            continue
        valid("appointments", appointment)
        assert appointment["maxPatients"] >= 2
        assert len(appointment["appointmentPatients"]) + len(skipped) == len(attendees)
    assert seen_attendees == len(clinic["attendees"])
    assert set(skipped_reasons) <= {"group appointment skipped", "deleted in Cliniko"}


def test_availability(clinic: Clinic, clinic_ctx: ImportContext) -> None:
    results = [to_splose_availability(day, clinic_ctx) for day in clinic["daily_availabilities"]]
    assert set(reasons(results)) <= {"location ignored"}
    rows = [row for result in results if isinstance(result, list) for row in result]
    assert rows
    for row in rows:
        valid("availability", row)


def test_provider_numbers(clinic: Clinic, clinic_ctx: ImportContext) -> None:
    results = [to_splose_provider_number(number, clinic_ctx) for number in clinic["practitioner_reference_numbers"]]
    assert set(reasons(results)) == {"location ignored"}
    for result in results:
        if isinstance(result, dict):
            assert valid("providerNumbers", result)["type"] == "Provider #"


def test_templates_and_notes(clinic: Clinic, clinic_ctx: ImportContext) -> None:
    templates = [to_splose_progress_note_template(template) for template in clinic["treatment_note_templates"]]
    assert set(reasons(templates)) == {"deleted in Cliniko"}
    for template in templates:
        if isinstance(template, dict):
            assert valid("progressNoteTemplates", template)["sections"]
    notes = [to_splose_progress_note(note, clinic_ctx) for note in clinic["treatment_notes"]]
    assert set(reasons(notes)) == {"deleted in Cliniko"}
    valid_notes = [valid("progressNotes", note) for note in notes if isinstance(note, dict)]
    assert {note["status"] for note in valid_notes} == {"draft", "final"}


def test_files(clinic: Clinic) -> None:
    for attachment in clinic["patient_attachments"]:
        upload = to_splose_file(attachment, SHA, attachment["size"])
        assert isinstance(upload, dict)
        assert upload["clientExternalId"] == linked_id(attachment, "patient")
