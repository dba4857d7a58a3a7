"""Record schemas of the import API: what ``PUT /v1/imports/{id}/records/{entity}`` accepts.

Every record is a JSON object with ``externalId`` (the Cliniko id, as a non-empty string) plus the
fields below. Field names reuse the public v1 API's camelCase names. "str?" means a string or null; a
field marked (required) must be present, every other field may be left out (it is then stored as null,
or as the default given). Datetimes are UTC ISO 8601 (``2023-07-01T09:00:00Z``, milliseconds optional),
dates ``YYYY-MM-DD``, times ``HH:MM`` (24 h). Every string is valid Unicode (no lone surrogate) of at
most 255 characters, or 65,535 for free text (note, notes, alert, extraInfo, extraBillingInfo,
description, answer, defaultAnswer, cancellationNote); every integer fits 64 bits. A record that breaks
its schema, or whose reference cannot be resolved, or whose ``externalId`` already came earlier in the
same batch, is reported in the batch's ``errors`` with a message naming the field; the rest of the
batch is still written.

References: ``...ExternalId`` fields name another record imported into the same workspace from the
same source (by its ``externalId``); ``locationId``, ``practitionerId`` and ``serviceId`` are Splose
ids (mapped locations/practitioners/services, or services created by this import: their Splose id is
in the ``services`` crosswalk). A location must exist and not be archived; a practitioner and a
service must exist (inactive practitioners and archived services are accepted).

services
    name (required) str; description str?; duration (required) int minutes >= 0; color str? ``#RRGGBB``;
    maxPatients int >= 1 (default 1; > 1 for group services); archived bool (default false);
    category str?. Shown by ``GET /v1/services`` (``for: "appointment"``, ``type: "Individual"`` or
    ``"Group"``).
contacts
    type str? (e.g. "Standard", "Doctor"); name str?; title str?; firstName str?; lastName str?;
    preferredName str?; occupation str?; companyName str?; providerNumber str?;
    doctorType "GP" | "Specialist" | null; email str? (an address); addressL1, addressL2, addressL3, suburb, state,
    postalCode, country str?; phoneNumbers [{type: Mobile|Home|Work|Fax|Other|null, code str?,
    phoneNumber (required) str}] (default []); archived bool (default false); notes str? (kept, not
    shown by v1). Shown by ``GET /v1/contacts``.
clients (v1 patients)
    firstname (required) str, not empty; lastname (required) str, not empty; email str? (an address);
    middleName, preferredName, title, sex, genderIdentity, pronouns, alert str?; birthdate date?;
    timezone str? (IANA name); extraInfo, extraBillingInfo str?; addressL1, addressL2, addressL3, city,
    state, postalCode, country str?; phoneNumbers as for contacts; privacyPolicy "No response" |
    "Accepted" | "Rejected" | "" | null; medicareNum, irn, veteransFileNumber str?; emergencyContactName,
    emergencyContactNumber, emergencyContactRelationship str?; communicationPreference "NONE" | "SMS" |
    "SMS_EMAIL" | "EMAIL" | null; archived bool (default false); referringContactExternalId str? (a
    ``contacts`` record; v1 patients have no referrer field, the resolved ``referringContactId`` is in the
    dump); createdAt datetime? (the Cliniko creation time, shown as v1 ``createdAt``). Shown by
    ``GET /v1/patients``.
appointments (individual and group)
    start (required) datetime; end (required) datetime, after start; serviceId int?; locationId
    (required) int; practitionerId int?; maxPatients int >= 1 (default 1; group appointments > 1);
    note str?; archived bool (default false); repeatOfExternalId str? (the first appointment of the
    series, an ``appointments`` record; v1 ``repeatId``); appointmentPatients (required) list, at most
    maxPatients entries (an individual appointment has one, a group one per attendee) of
    {externalId (required) str (Cliniko attendee or appointment id, unique within the appointment),
    clientExternalId (required) str (a ``clients`` record); status "Arrived" | "Did not arrive" |
    "Cancelled" | "Completed" | null; note str?; cancellationReason str?; cancellationNote str?;
    statusUpdatedAt datetime?}. Shown by ``GET /v1/appointments``.
availability (weekly rows)
    practitionerId (required) int; locationId (required) int; weekday (required) int 1-7 (ISO,
    Monday = 1); startTime (required) "HH:MM"; endTime (required) "HH:MM", after startTime;
    timezone (required) IANA name (the location's local time the times are in); repeatInterval
    "Weekly" | "Fortnightly" (default "Weekly"); startDate date? (first week it applies; required for
    fortnightly rows, which repeat every 14 days from it). Shown, expanded to dates, by
    ``GET /v1/availabilities/{practitionerId}``.
providerNumbers
    practitionerId (required) int; locationId int?; type (required) str (e.g. "Medicare");
    number (required) str. Shown in v1 practitioners' ``providerNumbers``.
progressNoteTemplates
    name (required) str; sections (required) list of {name (required) str; description str?;
    questions (required) list of {name (required) str; type (required) "text" | "paragraph" |
    "checkboxes" | "radiobuttons" | "date"; options list of str (default []); defaultAnswer str?}};
    printSettings object? (kept as given).
progressNotes
    clientExternalId (required) str (a ``clients`` record); practitionerId int?;
    appointmentExternalId str? (an ``appointments`` record); templateExternalId str? (a
    ``progressNoteTemplates`` record); title str?; status (required) "draft" | "final";
    finalizedAt datetime?; createdAt datetime?; sections (required) list of {name (required) str;
    description str?; questions (required) list of {name (required) str; type (required) as in
    templates; answer str? (for "paragraph": HTML using only the tags p div br ul ol li blockquote h1
    h2 b i u a, ``a`` with an http(s)/mailto ``href`` only; anything else is rejected); options list of
    {value (required) str, selected (required) bool} (default [])}}.
files (multipart, ``POST /v1/imports/{id}/files``, not a records entity)
    externalId (required); clientExternalId (required, a ``clients`` record); file (required, any
    content type, at most the size cap); filename (default: the part's filename); contentType
    (default: the part's content type); description; createdAt datetime; sha256 (hex; when sent,
    the server's own digest must equal it).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from sandbox.splose.jsonvalues import shown
from sandbox.splose.validation import RecordError, Schema, normalize, parse_datetime

STR = {"type": "string"}
OPT_STR = {"type": ["string", "null"]}
OPT_INT = {"type": ["integer", "null"]}
BOOL = {"type": "boolean", "default": False}
DATE = {"type": ["string", "null"], "format": "date"}
DATETIME = {"type": ["string", "null"], "format": "date-time"}
EMAIL = {"type": ["string", "null"], "format": "email"}  # v1's patient and contact ``email``: format email
NAME = {"type": "string", "minLength": 1}  # v1's patient ``firstname`` / ``lastname``: minLength 1
HHMM = {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$"}
PHONE_TYPES = ["Mobile", "Home", "Work", "Fax", "Other"]
APPOINTMENT_STATUSES = ["Arrived", "Did not arrive", "Cancelled", "Completed"]
QUESTION_TYPES = ["text", "paragraph", "checkboxes", "radiobuttons", "date"]
SAFE_TAGS = frozenset({"p", "div", "br", "ul", "ol", "li", "blockquote", "h1", "h2", "b", "i", "u", "a"})

PHONE_NUMBERS = {
    "type": "array",
    "default": [],
    "items": {
        "type": "object",
        "required": ["phoneNumber"],
        "properties": {
            "type": {"type": ["string", "null"], "enum": [*PHONE_TYPES, None]},
            "code": OPT_STR,
            "phoneNumber": STR,
        },
    },
}


def record(required: list[str], properties: Schema) -> Schema:
    return {
        "type": "object",
        "required": ["externalId", *required],
        "properties": {"externalId": {"type": "string", "minLength": 1}, **properties},
    }


ADDRESS = {name: OPT_STR for name in ("addressL1", "addressL2", "addressL3")}

SERVICES = record(
    ["name", "duration"],
    {
        "name": {"type": "string", "minLength": 1},
        "description": OPT_STR,
        "duration": {"type": "integer", "minimum": 0},
        "color": {"type": ["string", "null"], "pattern": r"^#[0-9A-Fa-f]{6}$"},
        "maxPatients": {"type": "integer", "minimum": 1, "default": 1},
        "archived": BOOL,
        "category": OPT_STR,
    },
)

CONTACTS = record(
    [],
    {
        **{
            name: OPT_STR
            for name in (
                "type",
                "name",
                "title",
                "firstName",
                "lastName",
                "preferredName",
                "occupation",
                "companyName",
                "providerNumber",
            )
        },
        "email": EMAIL,
        "doctorType": {"type": ["string", "null"], "enum": ["GP", "Specialist", None]},
        **ADDRESS,
        **{name: OPT_STR for name in ("suburb", "state", "postalCode", "country")},
        "phoneNumbers": PHONE_NUMBERS,
        "archived": BOOL,
        "notes": OPT_STR,
    },
)

CLIENTS = record(
    ["firstname", "lastname"],
    {
        "firstname": NAME,
        "lastname": NAME,
        "email": EMAIL,
        **{
            name: OPT_STR
            for name in ("middleName", "preferredName", "title", "sex", "genderIdentity", "pronouns", "alert")
        },
        "birthdate": DATE,
        "timezone": {"type": ["string", "null"], "format": "timezone"},
        "extraInfo": OPT_STR,
        "extraBillingInfo": OPT_STR,
        **ADDRESS,
        **{name: OPT_STR for name in ("city", "state", "postalCode", "country")},
        "phoneNumbers": PHONE_NUMBERS,
        "privacyPolicy": {"type": ["string", "null"], "enum": ["No response", "Accepted", "Rejected", "", None]},
        **{
            name: OPT_STR
            for name in (
                "medicareNum",
                "irn",
                "veteransFileNumber",
                "emergencyContactName",
                "emergencyContactNumber",
                "emergencyContactRelationship",
            )
        },
        "communicationPreference": {"type": ["string", "null"], "enum": ["NONE", "SMS", "SMS_EMAIL", "EMAIL", None]},
        "archived": BOOL,
        "referringContactExternalId": OPT_STR,
        "createdAt": DATETIME,
    },
)

APPOINTMENT_PATIENT = {
    "type": "object",
    "required": ["externalId", "clientExternalId"],
    "properties": {
        "externalId": {"type": "string", "minLength": 1},
        "clientExternalId": {"type": "string", "minLength": 1},
        "status": {"type": ["string", "null"], "enum": [*APPOINTMENT_STATUSES, None]},
        "note": OPT_STR,
        "cancellationReason": OPT_STR,
        "cancellationNote": OPT_STR,
        "statusUpdatedAt": DATETIME,
    },
}

APPOINTMENTS = record(
    ["start", "end", "locationId", "appointmentPatients"],
    {
        "start": {"type": "string", "format": "date-time"},
        "end": {"type": "string", "format": "date-time"},
        "serviceId": OPT_INT,
        "locationId": {"type": "integer"},
        "practitionerId": OPT_INT,
        "maxPatients": {"type": "integer", "minimum": 1, "default": 1},
        "note": OPT_STR,
        "archived": BOOL,
        "repeatOfExternalId": OPT_STR,
        "appointmentPatients": {"type": "array", "items": APPOINTMENT_PATIENT},
    },
)

AVAILABILITY = record(
    ["practitionerId", "locationId", "weekday", "startTime", "endTime", "timezone"],
    {
        "practitionerId": {"type": "integer"},
        "locationId": {"type": "integer"},
        "weekday": {"type": "integer", "minimum": 1, "maximum": 7},
        "startTime": HHMM,
        "endTime": HHMM,
        "timezone": {"type": "string", "format": "timezone"},
        "repeatInterval": {"type": "string", "enum": ["Weekly", "Fortnightly"], "default": "Weekly"},
        "startDate": DATE,
    },
)

PROVIDER_NUMBERS = record(
    ["practitionerId", "type", "number"],
    {
        "practitionerId": {"type": "integer"},
        "locationId": OPT_INT,
        "type": {"type": "string", "minLength": 1},
        "number": {"type": "string", "minLength": 1},
    },
)

TEMPLATE_QUESTION = {
    "type": "object",
    "required": ["name", "type"],
    "properties": {
        "name": STR,
        "type": {"type": "string", "enum": QUESTION_TYPES},
        "options": {"type": "array", "items": STR, "default": []},
        "defaultAnswer": OPT_STR,
    },
}

PROGRESS_NOTE_TEMPLATES = record(
    ["name", "sections"],
    {
        "name": {"type": "string", "minLength": 1},
        "sections": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "questions"],
                "properties": {
                    "name": STR,
                    "description": OPT_STR,
                    "questions": {"type": "array", "items": TEMPLATE_QUESTION},
                },
            },
        },
        "printSettings": {"type": ["object", "null"]},
    },
)

NOTE_QUESTION = {
    "type": "object",
    "required": ["name", "type"],
    "properties": {
        "name": STR,
        "type": {"type": "string", "enum": QUESTION_TYPES},
        "answer": OPT_STR,
        "options": {
            "type": "array",
            "default": [],
            "items": {
                "type": "object",
                "required": ["value", "selected"],
                "properties": {"value": STR, "selected": {"type": "boolean"}},
            },
        },
    },
}

PROGRESS_NOTES = record(
    ["clientExternalId", "status", "sections"],
    {
        "clientExternalId": {"type": "string", "minLength": 1},
        "practitionerId": OPT_INT,
        "appointmentExternalId": OPT_STR,
        "templateExternalId": OPT_STR,
        "title": OPT_STR,
        "status": {"type": "string", "enum": ["draft", "final"]},
        "finalizedAt": DATETIME,
        "createdAt": DATETIME,
        "sections": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "questions"],
                "properties": {
                    "name": STR,
                    "description": OPT_STR,
                    "questions": {"type": "array", "items": NOTE_QUESTION},
                },
            },
        },
    },
)

FILE_FIELDS = {
    "type": "object",
    "required": ["externalId", "clientExternalId"],
    "properties": {
        "externalId": {"type": "string", "minLength": 1},
        "clientExternalId": {"type": "string", "minLength": 1},
        "filename": OPT_STR,
        "contentType": OPT_STR,
        "description": OPT_STR,
        "createdAt": DATETIME,
        "sha256": {"type": ["string", "null"], "pattern": r"^[0-9A-Fa-f]{64}$"},
    },
}

ENTITY_SCHEMAS: dict[str, Schema] = {
    "services": SERVICES,
    "contacts": CONTACTS,
    "clients": CLIENTS,
    "appointments": APPOINTMENTS,
    "availability": AVAILABILITY,
    "providerNumbers": PROVIDER_NUMBERS,
    "progressNoteTemplates": PROGRESS_NOTE_TEMPLATES,
    "progressNotes": PROGRESS_NOTES,
}


class _TagCheck(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SAFE_TAGS:
            self.problem = self.problem or f"tag <{tag}> is not allowed"
            return
        for name, attr_value in attrs:
            allowed = tag == "a" and name == "href" and re.match(r"^(https?:|mailto:)", attr_value or "")
            if not allowed:
                self.problem = self.problem or f"attribute {name!r} on <{tag}> is not allowed"

    def handle_endtag(self, tag: str) -> None:
        if tag not in SAFE_TAGS:
            self.problem = self.problem or f"tag </{tag}> is not allowed"


def check_safe_html(text: str, where: str) -> None:
    parser = _TagCheck()
    parser.feed(text)
    parser.close()
    if parser.problem:
        raise RecordError(f"{where}: {parser.problem} (safe tags: {', '.join(sorted(SAFE_TAGS))})")


def validate_record(entity: str, raw: Any) -> dict[str, Any]:
    """The normalized record, or :class:`RecordError` with a message naming the field and value."""
    if not isinstance(raw, dict):
        raise RecordError(f"record: expected object, got {shown(raw)}")
    data = normalize(ENTITY_SCHEMAS[entity], raw)
    if entity == "appointments":
        if parse_datetime(data["end"]) <= parse_datetime(data["start"]):
            raise RecordError(f"end: {data['end']!r} is not after start {data['start']!r}")
        patients = data["appointmentPatients"]
        if len(patients) > data["maxPatients"]:
            raise RecordError(f"appointmentPatients: {len(patients)} entries exceed maxPatients {data['maxPatients']}")
        ids = [patient["externalId"] for patient in patients]
        if len(set(ids)) != len(ids):
            raise RecordError("appointmentPatients: externalId values are not unique")
    elif entity == "availability":
        if data["endTime"] <= data["startTime"]:
            raise RecordError(f"endTime: {data['endTime']!r} is not after startTime {data['startTime']!r}")
        if data["repeatInterval"] == "Fortnightly" and not data["startDate"]:
            raise RecordError("startDate: required when repeatInterval is 'Fortnightly' (it anchors the fortnight)")
    elif entity == "progressNotes":
        for s_index, section in enumerate(data["sections"]):
            for q_index, question in enumerate(section["questions"]):
                if question["type"] == "paragraph" and question["answer"]:
                    check_safe_html(question["answer"], f"sections[{s_index}].questions[{q_index}].answer")
    return data
