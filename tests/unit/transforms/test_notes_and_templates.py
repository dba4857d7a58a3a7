"""Treatment note templates and treatment notes: structure, answers, status and safe HTML."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cliniko_assets.transforms import Skip, to_splose_progress_note, to_splose_progress_note_template
from cliniko_assets.transforms.safe_html import sanitise_html
from cliniko_assets.transforms.salvage import fit_short_fields
from sandbox.splose.schemas import check_safe_html
from tests.unit.transforms.conftest import as_sent, ctx, link, valid

CONTENT = {
    "sections": [
        {
            "name": "Subjective",
            "description": "What the patient reports",
            "questions": [
                {"name": "Presenting complaint", "type": "text"},
                {"name": "History", "type": "paragraph", "answer": "<p>No previous history.</p>"},
            ],
        },
        {
            "questions": [
                {
                    "name": "Areas assessed",
                    "type": "checkboxes",
                    "answers": [{"value": "Neck"}, {"value": "Back"}],
                    "other": {"enabled": True},
                },
                {"name": "Pain level", "type": "radiobuttons", "answers": [{"value": "Mild"}, {"value": "Severe"}]},
                {"name": "Onset date", "type": "date"},
                {"name": "Signature", "type": "signature"},
            ],
        },
    ]
}
PRINT_SETTINGS = {"include_patient_address": True, "include_patient_dob": None, "title": "Consult notes"}


def template(**fields: Any) -> dict[str, Any]:
    record = {
        "id": "800",
        "name": "Standard consultation",
        "content": CONTENT,
        "print_settings": PRINT_SETTINGS,
        "deleted_at": None,
        "created_at": "2020-01-01T00:00:00Z",
        "updated_at": "2020-01-01T00:00:00Z",
        "_state": "active",
        "_source": "main",
        **link("treatment_note_templates/800"),
    }
    record.update(fields)
    return record


def test_template_keeps_sections_questions_options_and_print_settings() -> None:
    assert valid("progressNoteTemplates", to_splose_progress_note_template(template())) == {
        "externalId": "800",
        "name": "Standard consultation",
        "sections": [
            {
                "name": "Subjective",
                "description": "What the patient reports",
                "questions": [
                    {"name": "Presenting complaint", "type": "text", "options": [], "defaultAnswer": None},
                    {
                        "name": "History",
                        "type": "paragraph",
                        "options": [],
                        "defaultAnswer": "<p>No previous history.</p>",
                    },
                ],
            },
            {
                "name": "",
                "description": None,
                "questions": [
                    {
                        "name": "Areas assessed",
                        "type": "checkboxes",
                        "options": ["Neck", "Back", "Other"],
                        "defaultAnswer": None,
                    },
                    {
                        "name": "Pain level",
                        "type": "radiobuttons",
                        "options": ["Mild", "Severe"],
                        "defaultAnswer": None,
                    },
                    {"name": "Onset date", "type": "date", "options": [], "defaultAnswer": None},
                    {"name": "Signature", "type": "text", "options": [], "defaultAnswer": None},
                ],
            },
        ],
        "printSettings": PRINT_SETTINGS,
    }


@pytest.mark.parametrize("content", [None, "", {}, {"sections": None}])
def test_template_without_content_has_no_sections(content: object) -> None:
    result = valid("progressNoteTemplates", to_splose_progress_note_template(template(content=content)))
    assert result["sections"] == []


def test_template_content_sent_as_a_json_string_is_decoded() -> None:
    result = to_splose_progress_note_template(template(content=json.dumps(CONTENT), print_settings=None))
    assert len(valid("progressNoteTemplates", result)["sections"]) == 2
    assert result["printSettings"] is None


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"deleted_at": "2024-01-01T00:00:00Z", "_state": "deleted"}, "deleted in Cliniko"),
        ({"name": None}, "missing name"),
        ({"content": "{not json"}, "malformed content"),
        ({"content": {"sections": "Subjective"}}, "malformed content"),
        (
            {"content": {"sections": [{"questions": [{"name": "Q", "type": "checkboxes", "answers": "A"}]}]}},
            "malformed content",
        ),
    ],
)
def test_template_skips(fields: dict[str, Any], reason: str) -> None:
    assert to_splose_progress_note_template(template(**fields)) == Skip("800", reason)


NOTE_CONTENT = {
    "sections": [
        {
            "name": "Subjective",
            "questions": [
                {"name": "Presenting complaint", "type": "text", "answer": "Sore neck"},
                {
                    "name": "History",
                    "type": "paragraph",
                    "answer": '<p onclick="x()">Pain <span>6/10</span> &amp; worse &lt;am&gt;</p><script>x()</script>',
                },
                {"name": "Unanswered", "type": "paragraph"},
            ],
        },
        {
            "name": "Objective",
            "questions": [
                {
                    "name": "Areas assessed",
                    "type": "checkboxes",
                    "answers": [{"value": "Neck", "selected": True}, {"value": "Back"}],
                    "other": {"enabled": True, "selected": True, "value": "Jaw"},
                },
                {
                    "name": "Pain level",
                    "type": "radiobuttons",
                    "answers": [{"value": "Mild"}, {"value": "Severe", "selected": True}],
                    "other": {"enabled": True, "selected": False, "value": ""},
                },
                {"name": "Onset date", "type": "date", "answer": "2025-02-01"},
            ],
        },
    ]
}


def note(**fields: Any) -> dict[str, Any]:
    record = {
        "id": "8800",
        "title": "Standard consultation",
        "draft": False,
        "finalized_at": "2025-03-04T00:00:00Z",
        "archived_at": None,
        "deleted_at": None,
        "author_name": "Ravi Patel",
        "content": NOTE_CONTENT,
        "created_at": "2025-03-03T23:00:00Z",
        "updated_at": "2025-03-04T00:00:00Z",
        "patient": link("patients/1001"),
        "practitioner": link("practitioners/5"),
        "treatment_note_template": link("treatment_note_templates/800"),
        "booking": link("bookings/5000"),
        "attendee": None,
        "_state": "final",
        "_source": "main",
        **link("treatment_notes/8800"),
    }
    record.update(fields)
    return record


def test_note_keeps_answers_options_and_links() -> None:
    assert valid("progressNotes", to_splose_progress_note(note(), ctx())) == {
        "externalId": "8800",
        "clientExternalId": "1001",
        "practitionerId": 55,
        "appointmentExternalId": "5000",
        "templateExternalId": "800",
        "title": "Standard consultation",
        "status": "final",
        "finalizedAt": "2025-03-04T00:00:00Z",
        "createdAt": "2025-03-03T23:00:00Z",
        "sections": [
            {
                "name": "Subjective",
                "description": None,
                "questions": [
                    {"name": "Presenting complaint", "type": "text", "answer": "Sore neck", "options": []},
                    {
                        "name": "History",
                        "type": "paragraph",
                        "answer": "<p>Pain 6/10 &amp; worse &lt;am&gt;</p>",
                        "options": [],
                    },
                    {"name": "Unanswered", "type": "paragraph", "answer": None, "options": []},
                ],
            },
            {
                "name": "Objective",
                "description": None,
                "questions": [
                    {
                        "name": "Areas assessed",
                        "type": "checkboxes",
                        "answer": None,
                        "options": [
                            {"value": "Neck", "selected": True},
                            {"value": "Back", "selected": False},
                            {"value": "Other: Jaw", "selected": True},
                        ],
                    },
                    {
                        "name": "Pain level",
                        "type": "radiobuttons",
                        "answer": None,
                        "options": [{"value": "Mild", "selected": False}, {"value": "Severe", "selected": True}],
                    },
                    {"name": "Onset date", "type": "date", "answer": "2025-02-01", "options": []},
                ],
            },
        ],
    }


def test_draft_note() -> None:
    draft = valid("progressNotes", to_splose_progress_note(note(draft=True, finalized_at="", _state="draft"), ctx()))
    assert (draft["status"], draft["finalizedAt"]) == ("draft", None)
    from_state = note(_state="draft")
    del from_state["draft"]
    assert to_splose_progress_note(from_state, ctx())["status"] == "draft"


def test_an_other_answer_longer_than_an_option_holds_goes_whole_in_the_answer() -> None:
    """A selected "Other" is an option ("Other: <text>"); an option holds 255 characters, so a longer text would
    have the whole note rejected: the option then says "Other" and the answer holds the text."""
    text = "Left temporomandibular joint, " * 9  # 270 characters
    content = json.loads(json.dumps(NOTE_CONTENT))
    content["sections"][1]["questions"][0]["other"]["value"] = text
    question = valid("progressNotes", to_splose_progress_note(note(content=content), ctx()))["sections"][1][
        "questions"
    ][0]
    assert question["options"][-1] == {"value": "Other", "selected": True}
    assert question["answer"] == f"Other: {text}".rstrip()


def test_a_question_or_choice_longer_than_splose_holds_is_cut_to_fit_and_kept_whole_in_its_section() -> None:
    """A note's title, section and question names and choices hold 255 characters in Splose: a longer one would
    have the whole note rejected. Each is cut there and kept whole in its section's description (plain free text,
    never a date or HTML answer); the title in the first section's."""
    long_name = "How did the pain <change> since the last visit, " * 6  # 288 characters
    long_choice = "Worse after sitting, " * 13  # 273
    content = json.loads(json.dumps(NOTE_CONTENT))
    content["sections"][0]["name"] = long_name
    content["sections"][0]["questions"][1]["name"] = long_name  # a paragraph, whose answer is HTML
    content["sections"][1]["questions"][0]["answers"][1]["value"] = long_choice
    content["sections"][1]["questions"][2]["name"] = long_name  # a date
    record = to_splose_progress_note(note(content=content, title=long_choice), ctx())
    answers = [q["answer"] for section in record["sections"] for q in section["questions"]]
    sent = as_sent("progressNotes", record)
    assert fit_short_fields("progressNotes", record) == 5
    valid("progressNotes", record)
    assert record == sent
    assert [q["answer"] for section in record["sections"] for q in section["questions"]] == answers  # untouched
    subjective, objective = record["sections"]
    assert record["title"] == long_choice[:254] + "…"
    assert subjective["name"] == long_name[:254] + "…" and subjective["questions"][1]["name"] == long_name[:254] + "…"
    whole = "(longer than Splose's 255 characters, cut there), whole:"
    assert subjective["description"].splitlines() == [
        f"title {whole} {long_choice}",
        f"section name {whole} {long_name}",
        f"question 2 name {whole} {long_name}",
    ]
    assert objective["questions"][0]["options"][1] == {"value": long_choice[:254] + "…", "selected": False}
    assert objective["description"].splitlines() == [
        f"question 1 option 2 {whole} {long_choice}",
        f"question 3 name {whole} {long_name}",
    ]
    bare = {"title": "x" * 300, "sections": []}
    assert fit_short_fields("progressNotes", bare) == 0 and bare["title"] == "x" * 300  # nowhere to keep it whole
    full = {"title": "x" * 300, "sections": [{"name": "S", "description": "d" * 65_400, "questions": []}]}
    assert fit_short_fields("progressNotes", full) == 0 and full["title"] == "x" * 300  # no room: left as it was


def test_a_template_question_or_option_longer_than_splose_holds_is_cut_and_kept_whole_in_its_section() -> None:
    long_name = "Describe the onset, duration and pattern of the pain in the patient's own words, " * 4  # 328
    content = json.loads(json.dumps(CONTENT))
    content["sections"][1]["questions"][0]["name"] = long_name
    content["sections"][1]["questions"][0]["answers"][0]["value"] = long_name
    record = to_splose_progress_note_template(template(content=content, name=long_name))
    assert fit_short_fields("progressNoteTemplates", record) == 3
    valid("progressNoteTemplates", record)
    subjective, objective = record["sections"]
    assert record["name"] == long_name[:254] + "…"
    whole = "(longer than Splose's 255 characters, cut there), whole:"
    assert subjective["description"].splitlines() == ["What the patient reports", f"name {whole} {long_name}"]
    assert objective["questions"][0]["options"][0] == long_name[:254] + "…"
    assert objective["description"].splitlines() == [
        f"question 1 name {whole} {long_name}",
        f"question 1 option 1 {whole} {long_name}",
    ]


def test_archived_note_is_imported() -> None:
    archived = note(archived_at="2025-04-01T00:00:00Z", _state="archived")
    assert valid("progressNotes", to_splose_progress_note(archived, ctx()))["status"] == "final"


def test_links_to_appointment_and_template_only_when_splose_has_them() -> None:
    tracked = ctx(imported={"appointments": frozenset(), "progressNoteTemplates": frozenset()})
    result = valid("progressNotes", to_splose_progress_note(note(), tracked))
    assert (result["appointmentExternalId"], result["templateExternalId"]) == (None, None)
    unlinked = valid(
        "progressNotes", to_splose_progress_note(note(booking=None, practitioner=None, content=None), ctx())
    )
    assert (unlinked["appointmentExternalId"], unlinked["practitionerId"], unlinked["sections"]) == (None, None, [])


def test_a_note_written_for_an_attendee_links_to_the_attendees_booking() -> None:
    """Cliniko shows a note created with attendee_id an ``attendee`` link and no ``booking`` link."""
    for_attendee = note(booking=None, attendee=link("attendees/7000"))
    bookings = {"7000": "5000"}
    linked = valid("progressNotes", to_splose_progress_note(for_attendee, ctx(booking_of_attendee=bookings.get)))
    assert linked["appointmentExternalId"] == "5000"
    unknown = to_splose_progress_note(
        note(booking=None, attendee=link("attendees/7001")), ctx(booking_of_attendee=bookings.get)
    )
    assert unknown["appointmentExternalId"] is None
    not_imported = ctx(booking_of_attendee=bookings.get, imported={"appointments": frozenset({"5001"})})
    assert to_splose_progress_note(for_attendee, not_imported)["appointmentExternalId"] is None
    # Its own booking link comes first; the attendee is only asked when there is none.
    both = note(attendee=link("attendees/7000"))
    assert to_splose_progress_note(both, ctx(booking_of_attendee={"7000": "9"}.get))["appointmentExternalId"] == "5000"


@pytest.mark.parametrize(
    ("fields", "context", "reason"),
    [
        ({"deleted_at": "2025-04-01T00:00:00Z", "_state": "deleted"}, {}, "deleted in Cliniko"),
        ({}, {"imported": {"clients": frozenset()}}, "client not imported"),
        ({"patient": None}, {}, "missing patient link"),
        ({"practitioner": link("practitioners/6")}, {}, "practitioner not mapped"),
    ],
)
def test_note_skips(fields: dict[str, Any], context: dict[str, Any], reason: str) -> None:
    assert to_splose_progress_note(note(**fields), ctx(**context)) == Skip("8800", reason)


@pytest.mark.parametrize(
    ("dirty", "clean"),
    [
        ("<p>Plain</p>", "<p>Plain</p>"),
        ("<div>a<br>b<br/>c</div>", "<div>a<br>b<br>c</div>"),
        ("<ul><li>one</li></ul><ol><li>two</li></ol>", "<ul><li>one</li></ul><ol><li>two</li></ol>"),
        ("<h1>T</h1><h2>S</h2><blockquote><b>B</b><i>I</i><u>U</u></blockquote>", None),
        ('<p style="color:red" class="x">styled</p>', "<p>styled</p>"),
        ("<span>kept <em>text</em></span>", "kept text"),
        ('<table><tr><td>cell</td></tr></table><img src="x.png">', "cell"),
        ("<script>alert(1)</script><style>p{}</style>after", "after"),
        ("<!-- note --><p>x</p>", "<p>x</p>"),
        (
            '<a href="https://example.org/a?b=1&amp;c=2">link</a>',
            '<a href="https://example.org/a?b=1&amp;c=2">link</a>',
        ),
        ('<a href="mailto:gp@example.org">mail</a>', '<a href="mailto:gp@example.org">mail</a>'),
        ('<a href="javascript:alert(1)">bad</a>', "<a>bad</a>"),
        ('<a href="/relative" target="_blank">rel</a>', "<a>rel</a>"),
        ("&lt;urgent&gt; &amp; &eacute; &#233; &#x41;", "&lt;urgent&gt; &amp; &eacute; &#233; &#x41;"),
        ("1 < 2 & 3 > 2", "1 &lt; 2 &amp; 3 &gt; 2"),
        ("&bogus; text", "&amp;bogus; text"),
    ],
)
def test_sanitise_html(dirty: str, clean: str | None) -> None:
    result = sanitise_html(dirty)
    assert result == (clean if clean is not None else dirty)
    check_safe_html(result, "answer")


def test_template_paragraph_default_is_sanitised() -> None:
    content = {"sections": [{"name": "S", "questions": [{"name": "Q", "type": "paragraph", "answer": "<em>x</em>"}]}]}
    result = valid("progressNoteTemplates", to_splose_progress_note_template(template(content=content)))
    assert result["sections"][0]["questions"][0]["defaultAnswer"] == "x"
