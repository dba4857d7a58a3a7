"""Cliniko treatment notes -> Splose ``progressNotes`` records.

Mapping, Splose field <- Cliniko field: rule

    externalId             <- id
    clientExternalId       <- patient link (required); a patient Cliniko does not have -> Skip("patient <id> not
                              in Cliniko"); not in ctx.imported["clients"] (when tracked) -> Skip("client not
                              imported")
    practitionerId         <- practitioner link, through ctx.practitioners; no link -> null; a link the
                              mapping lacks -> Skip("practitioner not mapped"); a practitioner the list routes
                              did not return and nobody mapped -> null, with a warning on "practitioner"
    appointmentExternalId  <- booking link, only if in ctx.imported["appointments"] (always when not tracked);
                              a note without a booking link (Cliniko's own example has none) still attaches to
                              its client and practitioner, and the load counts it as not linked to an appointment
    templateExternalId     <- treatment_note_template link, only if in ctx.imported["progressNoteTemplates"]
                              (always when not tracked)
    title                  <- title (unusable -> null, with a warning)
    status                 <- draft: true -> "draft", else "final" (``_state`` "draft" as fallback)
    finalizedAt            <- finalized_at (unusable -> null, with a warning)
    createdAt              <- created_at (unusable -> null, with a warning)
    sections               <- content.sections (content null -> []):
        name, description      <- section name ("" when none), description
        questions              <- name ("" when none), type (a newer type -> "text") and:
            answer                 <- text, date: answer as given; paragraph: answer with HTML limited to
                                      the safe tags (see ``safe_html``)
            options                <- checkboxes, radiobuttons: answers[] -> {value, selected} (Cliniko omits
                                      ``selected`` when false); a selected ``other`` adds
                                      {value: "Other: <text>", selected: true}, or, when that is longer
                                      than an option holds (255), {value: "Other", selected: true} and
                                      answer "Other: <text>"

A deleted note -> Skip("deleted in Cliniko"). Archived notes are imported like the others (Splose
progress notes have no archived flag).
"""

from __future__ import annotations

from typing import Any

from cliniko_assets.transforms.common import (
    DELETED,
    ImportContext,
    Record,
    Skipped,
    is_deleted,
    link,
    require_id,
    text,
    timestamp,
    total,
)
from cliniko_assets.transforms.dependencies import client_for, practitioner_for, template_for
from cliniko_assets.transforms.progress_note_templates import (
    CHOICE_TYPES,
    choices,
    other,
    question_type,
    questions,
    sections,
)
from cliniko_assets.transforms.safe_html import sanitise_html
from cliniko_assets.transforms.salvage import SHORT_TEXT, Salvage


@total
def to_splose_progress_note(treatment_note: Record, ctx: ImportContext) -> dict[str, Any]:
    note = treatment_note
    external_id = require_id(note)
    if is_deleted(note):
        raise Skipped(DELETED)
    client = client_for(note, ctx)
    salvage = Salvage(note)
    practitioner = None if link(note, "practitioner") is None else practitioner_for(note, ctx, salvage)
    booking = link(note, "booking") or _booking_of_attendee(note, ctx)
    draft = note.get("draft") is True or (note.get("draft") is None and note.get("_state") == "draft")
    record = {
        "externalId": external_id,
        "clientExternalId": client,
        "practitionerId": practitioner,
        "appointmentExternalId": booking if booking and ctx.is_imported("appointments", booking) else None,
        "templateExternalId": template_for(note, ctx),
        "title": salvage.read(text, "title"),
        "status": "draft" if draft else "final",
        "finalizedAt": salvage.read(timestamp, "finalized_at"),
        "createdAt": salvage.read(timestamp, "created_at"),
        "sections": [
            {
                "name": text(section, "name") or "",
                "description": text(section, "description"),
                "questions": [answered_question(question) for question in questions(section)],
            }
            for section in sections(note)
        ],
    }
    return salvage.finish(record)


def _booking_of_attendee(note: Record, ctx: ImportContext) -> str | None:
    """The appointment of a note written for an attendee (Cliniko shows it an ``attendee`` link alone)."""
    attendee = link(note, "attendee")
    return ctx.booking_of_attendee(attendee) if attendee else None


def answered_question(question: Record) -> dict[str, Any]:
    kind = question_type(question)
    answer = text(question, "answer") if kind not in CHOICE_TYPES else None
    options = []
    if kind in CHOICE_TYPES:
        options = [
            {"value": text(choice, "value") or "", "selected": choice.get("selected") is True}
            for choice in choices(question)
        ]
        extra = other(question)
        if extra.get("selected") is True:
            value = f"Other: {text(extra, 'value') or ''}".rstrip()
            if len(value) > SHORT_TEXT:  # an option holds 255 characters: the text goes whole in the answer
                answer, value = value, "Other"
            options.append({"value": value, "selected": True})
    return {
        "name": text(question, "name") or "",
        "type": kind,
        "answer": sanitise_html(answer) if answer and kind == "paragraph" else answer,
        "options": options,
    }
