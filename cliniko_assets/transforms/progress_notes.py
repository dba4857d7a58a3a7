"""Cliniko treatment notes -> Splose ``progressNotes`` records.

Mapping, Splose field <- Cliniko field: rule

    externalId             <- id
    clientExternalId       <- patient link (required); not in ctx.imported["clients"] (when tracked) ->
                              Skip("client not imported")
    practitionerId         <- practitioner link, through ctx.practitioners; no link -> null; a link the
                              mapping lacks -> Skip("practitioner not mapped")
    appointmentExternalId  <- booking link, only if in ctx.imported["appointments"] (always when not tracked)
    templateExternalId     <- treatment_note_template link, only if in ctx.imported["progressNoteTemplates"]
                              (always when not tracked)
    title                  <- title
    status                 <- draft: true -> "draft", else "final" (``_state`` "draft" as fallback)
    finalizedAt            <- finalized_at
    createdAt              <- created_at
    sections               <- content.sections (content null -> []):
        name, description      <- section name ("" when none), description
        questions              <- name ("" when none), type (a newer type -> "text") and:
            answer                 <- text, date: answer as given; paragraph: answer with HTML limited to
                                      the safe tags (see ``safe_html``)
            options                <- checkboxes, radiobuttons: answers[] -> {value, selected} (Cliniko omits
                                      ``selected`` when false); a selected ``other`` adds
                                      {value: "Other: <text>", selected: true}

A deleted note -> Skip("deleted in Cliniko"). Archived notes are imported like the others (Splose
progress notes have no archived flag).
"""

from __future__ import annotations

from typing import Any

from cliniko_assets.transforms.common import (
    CLIENT_NOT_IMPORTED,
    DELETED,
    PRACTITIONER_NOT_MAPPED,
    ImportContext,
    Record,
    Skipped,
    is_deleted,
    link,
    require_id,
    require_link,
    text,
    timestamp,
    total,
)
from cliniko_assets.transforms.progress_note_templates import (
    CHOICE_TYPES,
    choices,
    other,
    question_type,
    questions,
    sections,
)
from cliniko_assets.transforms.safe_html import sanitise_html


@total
def to_splose_progress_note(treatment_note: Record, ctx: ImportContext) -> dict[str, Any]:
    note = treatment_note
    external_id = require_id(note)
    if is_deleted(note):
        raise Skipped(DELETED)
    client = require_link(note, "patient")
    if not ctx.is_imported("clients", client):
        raise Skipped(CLIENT_NOT_IMPORTED)
    practitioner_link = link(note, "practitioner")
    practitioner = None if practitioner_link is None else ctx.practitioners.get(practitioner_link)
    if practitioner_link is not None and practitioner is None:
        raise Skipped(PRACTITIONER_NOT_MAPPED)
    booking = link(note, "booking")
    template = link(note, "treatment_note_template")
    draft = note.get("draft") is True or (note.get("draft") is None and note.get("_state") == "draft")
    return {
        "externalId": external_id,
        "clientExternalId": client,
        "practitionerId": practitioner,
        "appointmentExternalId": booking if booking and ctx.is_imported("appointments", booking) else None,
        "templateExternalId": template if template and ctx.is_imported("progressNoteTemplates", template) else None,
        "title": text(note, "title"),
        "status": "draft" if draft else "final",
        "finalizedAt": timestamp(note, "finalized_at"),
        "createdAt": timestamp(note, "created_at"),
        "sections": [
            {
                "name": text(section, "name") or "",
                "description": text(section, "description"),
                "questions": [answered_question(question) for question in questions(section)],
            }
            for section in sections(note)
        ],
    }


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
            options.append({"value": f"Other: {text(extra, 'value') or ''}".rstrip(), "selected": True})
    return {
        "name": text(question, "name") or "",
        "type": kind,
        "answer": sanitise_html(answer) if answer and kind == "paragraph" else answer,
        "options": options,
    }
