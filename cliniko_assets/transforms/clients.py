"""Cliniko patients -> Splose ``clients`` records.

Mapping, Splose field <- Cliniko field: rule

    externalId                  <- id (deletion stubs: from links.self)
    firstname, lastname         <- first_name, last_name (required; missing -> Skip("missing first_name") etc.)
    preferredName               <- preferred_first_name
    title, email                <- title, email
    sex                         <- sex, else the deprecated gender
    genderIdentity              <- gender_identity
    pronouns                    <- pronouns: a string as given; an object {nominative, accusative, ...} ->
                                   "they/them"
    birthdate                   <- date_of_birth (YYYY-MM-DD)
    timezone                    <- time_zone, an IANA name; anything else -> null and kept in extraInfo
    extraInfo                   <- labelled lines, in this order, null when there are none:
                                   "Notes: " notes, "Appointment notes: " appointment_notes,
                                   "Occupation: " occupation, "Old reference id: " old_reference_id,
                                   "Referral source: " referral_source, "Invoice email: " invoice_email,
                                   "Invoice default to: " invoice_default_to,
                                   "Email marketing: accepted|declined" accepted_email_marketing,
                                   "SMS marketing: accepted|declined" accepted_sms_marketing,
                                   "Cliniko time zone: " a time_zone that is not an IANA name,
                                   "Custom field <section> / <field>: <value>" per answered custom field,
                                   "Merged in Cliniko into patient <id> at <merged_at>" for a merged patient
    extraBillingInfo            <- invoice_extra_information
    addressL1..3, city, state   <- address_1..3, city, state
    postalCode                  <- post_code
    country                     <- country, else country_code
    phoneNumbers                <- patient_phone_numbers (see ``common.phone_numbers``: Mobile, Home, Work,
                                   Fax, Other; an unknown type -> Other; "+61 ..." -> code "+61")
    privacyPolicy               <- accepted_privacy_policy: true -> "Accepted", false -> "Rejected",
                                   null or missing -> "No response"
    medicareNum, irn            <- medicare, medicare_reference_number
    veteransFileNumber          <- dva_card_number
    emergencyContactName        <- emergency_contact (one free-text field in Cliniko; number and
                                   relationship stay null)
    communicationPreference     <- reminder_type: "SMS & Email" -> SMS_EMAIL, "SMS" -> SMS, "Email" -> EMAIL,
                                   "None" -> NONE, anything else -> null
    archived                    <- archived_at / _state: archived and merged patients -> true
    referringContactExternalId  <- referring_doctor link, only if that contact is in ctx.imported["contacts"]
                                   (always when contacts are not tracked)
    createdAt                   <- created_at (UTC "...Z")

A patient merged into another (merged_at, archived by the merge) becomes an archived client whose
extraInfo names the surviving Cliniko patient by id (never by name). A deleted patient ->
Skip("deleted in Cliniko"). Concession type and the child links (medical alerts, invoices, ...) are
not carried: separate Cliniko resources, not migrated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from cliniko_assets.transforms.common import (
    DELETED,
    ImportContext,
    Malformed,
    Record,
    Skipped,
    calendar_date,
    is_archived,
    is_deleted,
    link,
    phone_numbers,
    require_id,
    text,
    timestamp,
    total,
)

PRIVACY_POLICY = {True: "Accepted", False: "Rejected", None: "No response"}
COMMUNICATION_PREFERENCES = {"sms & email": "SMS_EMAIL", "sms": "SMS", "email": "EMAIL", "none": "NONE"}
EXTRA_INFO_LINES = (
    ("notes", "Notes"),
    ("appointment_notes", "Appointment notes"),
    ("occupation", "Occupation"),
    ("old_reference_id", "Old reference id"),
    ("referral_source", "Referral source"),
    ("invoice_email", "Invoice email"),
    ("invoice_default_to", "Invoice default to"),
)
CONSENT_LINES = (("accepted_email_marketing", "Email marketing"), ("accepted_sms_marketing", "SMS marketing"))


@total
def to_splose_client(patient: Record, ctx: ImportContext) -> dict[str, Any]:
    external_id = require_id(patient)
    if is_deleted(patient):
        raise Skipped(DELETED)
    first, last = text(patient, "first_name"), text(patient, "last_name")
    if first is None:
        raise Malformed("first_name", "missing")
    if last is None:
        raise Malformed("last_name", "missing")
    zone = text(patient, "time_zone")
    valid_zone = zone if zone is not None and is_time_zone(zone) else None
    referrer = link(patient, "referring_doctor")
    privacy = patient.get("accepted_privacy_policy")
    reminder = text(patient, "reminder_type")
    return {
        "externalId": external_id,
        "firstname": first,
        "lastname": last,
        "preferredName": text(patient, "preferred_first_name"),
        "title": text(patient, "title"),
        "email": text(patient, "email"),
        "sex": text(patient, "sex") or text(patient, "gender"),
        "genderIdentity": text(patient, "gender_identity"),
        "pronouns": pronouns(patient),
        "birthdate": calendar_date(patient, "date_of_birth"),
        "timezone": valid_zone,
        "extraInfo": extra_info(patient, None if zone == valid_zone else zone),
        "extraBillingInfo": text(patient, "invoice_extra_information"),
        "addressL1": text(patient, "address_1"),
        "addressL2": text(patient, "address_2"),
        "addressL3": text(patient, "address_3"),
        "city": text(patient, "city"),
        "state": text(patient, "state"),
        "postalCode": text(patient, "post_code"),
        "country": text(patient, "country") or text(patient, "country_code"),
        "phoneNumbers": phone_numbers(patient, "patient_phone_numbers"),
        "privacyPolicy": PRIVACY_POLICY.get(privacy if isinstance(privacy, bool) else None),
        "medicareNum": text(patient, "medicare"),
        "irn": text(patient, "medicare_reference_number"),
        "veteransFileNumber": text(patient, "dva_card_number"),
        "emergencyContactName": text(patient, "emergency_contact"),
        "communicationPreference": COMMUNICATION_PREFERENCES.get((reminder or "").strip().lower()),
        "archived": is_archived(patient),
        "referringContactExternalId": referrer if referrer and ctx.is_imported("contacts", referrer) else None,
        "createdAt": timestamp(patient, "created_at"),
    }


def is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return False
    return True


def pronouns(patient: Record) -> str | None:
    value = patient.get("pronouns")
    if isinstance(value, Mapping):
        forms = [form for key in ("nominative", "accusative") if isinstance(form := value.get(key), str) and form]
        return "/".join(forms) or None
    return text(patient, "pronouns")


def extra_info(patient: Record, unusable_zone: str | None) -> str | None:
    """Cliniko fields with no Splose field, kept as labelled lines rather than dropped."""
    lines = [f"{label}: {value}" for name, label in EXTRA_INFO_LINES if (value := text(patient, name))]
    for name, label in CONSENT_LINES:
        if isinstance(consent := patient.get(name), bool):
            lines.append(f"{label}: {'accepted' if consent else 'declined'}")
    if unusable_zone:
        lines.append(f"Cliniko time zone: {unusable_zone}")
    lines.extend(custom_field_lines(patient))
    merged_at = timestamp(patient, "merged_at")
    survivor = link(patient, "merged_with_patient")
    if merged_at or survivor:
        into = f" into patient {survivor}" if survivor else ""
        at = f" at {merged_at}" if merged_at else ""
        lines.append(f"Merged in Cliniko{into}{at}")
    return "\n".join(lines) or None


def custom_field_lines(patient: Record) -> list[str]:
    """``custom_fields.sections[].fields[]`` -> "Custom field <section> / <field>: <value or selected options>"."""
    custom = patient.get("custom_fields")
    if custom is None or custom == "":
        return []
    sections = custom.get("sections") if isinstance(custom, Mapping) else None
    if not isinstance(sections, list) or not all(isinstance(section, Mapping) for section in sections):
        raise Malformed("custom_fields")
    lines = []
    for section in sections:
        fields = section.get("fields") or []
        if not isinstance(fields, list) or not all(isinstance(item, Mapping) for item in fields):
            raise Malformed("custom_fields")
        for item in fields:
            answer = custom_field_answer(item)
            if answer:
                label = " / ".join(part for part in (text(section, "name"), text(item, "name")) if part)
                lines.append(f"Custom field {label}: {answer}")
    return lines


def custom_field_answer(item: Record) -> str | None:
    options = item.get("options")
    if isinstance(item.get("value"), bool):
        return "yes" if item["value"] else "no"
    if not isinstance(options, list):
        return text(item, "value")
    picked = [
        text(option, "name") or "" for option in options if isinstance(option, Mapping) and option.get("selected")
    ]
    other = item.get("other")
    if isinstance(other, Mapping) and other.get("selected") and (other_text := text(other, "value")):
        picked.append(f"Other: {other_text}")
    return ", ".join(part for part in picked if part) or None
