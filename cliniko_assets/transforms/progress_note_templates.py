"""Cliniko treatment note templates -> Splose ``progressNoteTemplates`` records.

Mapping, Splose field <- Cliniko field: rule

    externalId        <- id
    name              <- name (required; missing -> Skip("missing name"))
    sections          <- content.sections; content null or missing -> []; a JSON-encoded string (the
                         old docs' example) is decoded
        name              <- section name ("" when Cliniko has none: it is optional there)
        description       <- section description
        questions         <- section questions:
            name              <- question name ("" when missing)
            type              <- type: text | paragraph | checkboxes | radiobuttons | date; a newer type -> "text"
            options           <- answers[].value (checkboxes, radiobuttons), plus "Other" when other.enabled
            defaultAnswer     <- answer (the template's default; paragraph HTML limited to the safe tags)
    printSettings     <- print_settings, kept as given (null unless an object)

A deleted template -> Skip("deleted in Cliniko"); a stub for a template notes point at and Cliniko
answers 404 for -> Skip("not in Cliniko (only referenced by other records)").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cliniko_assets.transforms.common import (
    DELETED,
    NOT_IN_CLINIKO,
    Malformed,
    Record,
    Skipped,
    is_deleted,
    is_missing,
    require_id,
    text,
    total,
)
from cliniko_assets.transforms.safe_html import sanitise_html

QUESTION_TYPES = frozenset({"text", "paragraph", "checkboxes", "radiobuttons", "date"})
CHOICE_TYPES = frozenset({"checkboxes", "radiobuttons"})


@total
def to_splose_progress_note_template(template: Record) -> dict[str, Any]:
    external_id = require_id(template)
    if is_deleted(template):
        raise Skipped(DELETED)
    if is_missing(template):
        raise Skipped(NOT_IN_CLINIKO)
    name = text(template, "name")
    if name is None or not name.strip():
        raise Malformed("name", "missing")
    print_settings = template.get("print_settings")
    return {
        "externalId": external_id,
        "name": name,
        "sections": [
            {
                "name": text(section, "name") or "",
                "description": text(section, "description"),
                "questions": [template_question(question) for question in questions(section)],
            }
            for section in sections(template)
        ],
        "printSettings": dict(print_settings) if isinstance(print_settings, Mapping) else None,
    }


def sections(record: Record) -> list[Record]:
    """``content.sections`` of a template or note: ``[]`` when content is null; malformed -> ``content``."""
    content = record.get("content")
    if isinstance(content, str) and content.strip():
        try:
            content = json.loads(content)
        except ValueError as error:
            raise Malformed("content") from error
    if content is None or content == "":
        return []
    found = content.get("sections") if isinstance(content, Mapping) else ""
    if found is None:
        return []
    if not isinstance(found, list) or not all(isinstance(section, Mapping) for section in found):
        raise Malformed("content")
    return found


def questions(section: Record) -> list[Record]:
    found = section.get("questions")
    if found is None:
        return []
    if not isinstance(found, list) or not all(isinstance(question, Mapping) for question in found):
        raise Malformed("content")
    return found


def question_type(question: Record) -> str:
    kind = question.get("type")
    return kind if isinstance(kind, str) and kind in QUESTION_TYPES else "text"


def choices(question: Record) -> list[Record]:
    """``answers`` of a checkboxes/radiobuttons question (each ``{value, selected?}``)."""
    found = question.get("answers")
    if found is None:
        return []
    if not isinstance(found, list) or not all(isinstance(answer, Mapping) for answer in found):
        raise Malformed("content")
    return found


def other(question: Record) -> Record:
    found = question.get("other")
    return found if isinstance(found, Mapping) else {}


def template_question(question: Record) -> dict[str, Any]:
    kind = question_type(question)
    options = [text(answer, "value") or "" for answer in choices(question)] if kind in CHOICE_TYPES else []
    if kind in CHOICE_TYPES and other(question).get("enabled") is True:
        options.append("Other")
    default = text(question, "answer")
    return {
        "name": text(question, "name") or "",
        "type": kind,
        "options": options,
        "defaultAnswer": sanitise_html(default) if default and kind == "paragraph" else default,
    }
