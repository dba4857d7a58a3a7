"""Attachments -> file upload fields; and no record, however malformed, makes a transform raise."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cliniko_assets.catalog import record_id
from cliniko_assets.transforms import (
    WARNINGS,
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
from cliniko_assets.transforms.common import link as link_id
from sandbox.splose.schemas import validate_record
from tests.unit.transforms.conftest import Clinic, as_sent, attendees_by_booking, link

SHA = "0123456789abcdef" * 4


def attachment(**fields: Any) -> dict[str, Any]:
    record = {
        "id": "600",
        "filename": "referral.pdf",
        "content_type": "application/pdf",
        "size": 2048,
        "description": "Referral letter",
        "processing_completed": True,
        "archived_at": None,
        "created_at": "2024-05-05T05:05:05Z",
        "updated_at": "2024-05-05T05:05:05Z",
        "content": link("patient_attachments/600/content"),
        "patient": link("patients/1001"),
        "user": link("users/9"),
        "_state": "active",
        "_source": "main",
        **link("patient_attachments/600"),
    }
    record.update(fields)
    return record


def test_file_fields() -> None:
    assert to_splose_file(attachment(), SHA.upper(), 2048) == {
        "externalId": "600",
        "clientExternalId": "1001",
        "filename": "referral.pdf",
        "contentType": "application/pdf",
        "description": "Referral letter",
        "createdAt": "2024-05-05T05:05:05Z",
        "sha256": SHA,
    }


def test_archived_attachment_is_imported_and_says_so() -> None:
    archived = {"archived_at": "2024-06-01T00:00:00Z", "_state": "archived"}
    assert to_splose_file(attachment(**archived), SHA, 2048)["description"] == "Referral letter (archived in Cliniko)"
    assert to_splose_file(attachment(**archived, description=None), SHA, 2048)["description"] == "Archived in Cliniko"


def test_unprocessed_metadata_falls_back_to_defaults() -> None:
    upload = to_splose_file(attachment(id=600, filename=None, content_type="", size=None), SHA, 10)
    assert (upload["externalId"], upload["filename"], upload["contentType"]) == (
        "600",
        "attachment-600",
        "application/octet-stream",
    )


@pytest.mark.parametrize(
    ("fields", "sha256", "size", "reason"),
    [
        ({"patient": None}, SHA, 2048, "missing patient link"),
        ({"deleted_at": "2024-06-01T00:00:00Z"}, SHA, 2048, "deleted in Cliniko"),
        ({}, "not-a-digest", 2048, "malformed sha256"),
        ({}, SHA, 2047, "staged size differs from size"),
    ],
)
def test_file_skips(fields: dict[str, Any], sha256: str, size: int, reason: str) -> None:
    assert to_splose_file(attachment(**fields), sha256, size) == Skip("600", reason)


KNOWN_REASONS = {
    "deleted in Cliniko",
    "location ignored",
    "location not mapped",
    "client not imported",
    "practitioner not mapped",
    "appointment type not mapped",
    "group appointment skipped",
    "attendee of another appointment",
    "duplicate attendee",
    "no availability ranges",
    "staged size differs from size",
    "malformed record",
    "appointment type ignored by the clinic",
    "not in Cliniko (only referenced by other records)",
}
REASON_SHAPE = re.compile(
    r"^(missing|malformed) [a-z0-9_]+( link)?$|^[a-z_]+ not after [a-z_]+$"
    r"|^(business|practitioner) \d+ not listed by Cliniko, not mapped$|^patient \d+ not in Cliniko$"
    r"|^time zone of business \d* not known$"
)
ODD_VALUES = (None, "", 0, -1, True, 1.5, "x", "2025-01-01T00:00:00Z", [], [{}], {}, {"links": "x"}, {"links": {}})


def mutations(value: Any, depth: int = 0) -> Iterator[Any]:
    """Copies of ``value`` with one field, list item or nested field (down to four levels) replaced by an odd value."""
    if depth > 4:
        return
    if isinstance(value, dict):
        for key, inner in value.items():
            for odd in (*ODD_VALUES, *mutations(inner, depth + 1)):
                yield {**value, key: odd}
            yield {k: v for k, v in value.items() if k != key}
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            for odd in (*ODD_VALUES, *mutations(inner, depth + 1)):
                yield [*value[:index], odd, *value[index + 1 :]]


def group_with_attendees(clinic: Clinic) -> Callable[[dict[str, Any], ImportContext], Any]:
    grouped = attendees_by_booking(clinic)

    def transform(record: dict[str, Any], ctx: ImportContext) -> Any:
        attendees = grouped.get(record_id(record), []) if isinstance(record, dict) else []
        appointment, skipped = to_splose_group_appointment(record, attendees, ctx)
        return [appointment, *skipped]

    return transform


def attendee_in_its_group(clinic: Clinic) -> Callable[[dict[str, Any], ImportContext], Any]:
    groups = {record_id(group): group for group in clinic["group_appointments"]}

    def transform(record: dict[str, Any], ctx: ImportContext) -> Any:
        booking = link_id(record, "booking") if isinstance(record, dict) else None
        group = groups.get(booking) or clinic["group_appointments"][0]
        appointment, skipped = to_splose_group_appointment(group, [record], ctx)
        return [appointment, *skipped]

    return transform


def cases(clinic: Clinic) -> list[tuple[str, str, Callable[[dict[str, Any], ImportContext], Any]]]:
    return [
        ("appointment_types", "services", lambda r, _c: to_splose_service(r)),
        ("contacts", "contacts", to_splose_contact),
        ("patients", "clients", to_splose_client),
        ("individual_appointments", "appointments", to_splose_appointment),
        ("group_appointments", "appointments", group_with_attendees(clinic)),
        ("attendees", "appointments", attendee_in_its_group(clinic)),
        ("daily_availabilities", "availability", to_splose_availability),
        ("practitioner_reference_numbers", "providerNumbers", to_splose_provider_number),
        ("treatment_note_templates", "progressNoteTemplates", lambda r, _c: to_splose_progress_note_template(r)),
        ("treatment_notes", "progressNotes", to_splose_progress_note),
        ("patient_attachments", "files", lambda r, _c: to_splose_file(r, SHA, 2048)),
    ]


def check(entity: str, result: Any) -> None:
    for item in result if isinstance(result, list) else [result]:
        if isinstance(item, Skip):
            assert item.reason in KNOWN_REASONS or REASON_SHAPE.match(item.reason), item.reason
        elif entity != "files":
            warnings = item.get(WARNINGS, [])
            assert all(re.fullmatch(r"[a-z_0-9]+", name) for name in warnings), warnings  # names, never values
            validate_record(entity, as_sent(entity, item))


def test_no_mutation_of_any_field_makes_a_transform_raise(clinic: Clinic, clinic_ctx: ImportContext) -> None:
    for resource, entity, transform in cases(clinic):
        samples = [r for r in clinic[resource] if r["_state"] != "deleted"][:3]
        samples += [r for r in clinic[resource] if r["_state"] == "deleted"][:1]
        for record in samples:
            for mutated in mutations(record):
                check(entity, transform(mutated, clinic_ctx))
            check(entity, transform({}, clinic_ctx))
            check(entity, transform("not a record", clinic_ctx))  # type: ignore[arg-type]


def test_skip_reasons_never_carry_patient_data(clinic: Clinic, clinic_ctx: ImportContext) -> None:
    names = {p[k] for p in clinic["patients"] for k in ("first_name", "last_name", "date_of_birth") if p.get(k)}
    for resource, entity, transform in cases(clinic):
        for record in clinic[resource]:
            for mutated in (record, {**record, "first_name": [], "date_of_birth": "31/12/1999", "starts_at": "x"}):
                result = transform(mutated, clinic_ctx)
                check(entity, result)
                for skip in [item for item in (result if isinstance(result, list) else [result])]:
                    if isinstance(skip, Skip):
                        assert not any(name in skip.reason for name in names)
