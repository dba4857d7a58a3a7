"""Cliniko patients -> Splose ``clients`` records.

Mapping, Splose field <- Cliniko field: rule

    externalId                  <- id (deletion stubs: from links.self)
    firstname, lastname         <- first_name, last_name (required; missing -> Skip("missing first_name") etc.)
    preferredName               <- preferred_first_name
    title                       <- title
    email                       <- email, when it can be an address
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
                                   "Concession type (Cliniko id): <id>" from the concession_type link,
                                   "Merged in Cliniko into patient <id> at <merged_at>" for a merged patient,
                                   then one "Cliniko <field> (unusable, not imported): <value>" line per
                                   field that could not be used (see ``salvage``)
    extraBillingInfo            <- invoice_extra_information
    addressL1..3, city, state   <- address_1..3, city, state
    postalCode                  <- post_code
    country                     <- country, else country_code
    phoneNumbers                <- patient_phone_numbers (see ``salvage.phone_numbers``: Mobile, Home, Work,
                                   Fax, Other; an unknown type -> Other; "+61 ...", "61444444444" and
                                   "0412 345 678" -> code "+61", with ctx.default_region (the clinic's
                                   country), then the patient's own country, as default regions)
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
Skip("deleted in Cliniko"); a stub for a patient other records point at and Cliniko answers 404 for ->
Skip("not in Cliniko (only referenced by other records)"). Only a missing first or last name skips a
patient: any other unusable field (a malformed email, date, phone number, custom field or address) is left
out and counted as a warning, and its value kept in extraInfo. The child links (medical alerts, invoices,
...) are not carried: separate Cliniko resources, not migrated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from cliniko_assets.transforms.common import (
    DELETED,
    NOT_IN_CLINIKO,
    ImportContext,
    Malformed,
    Record,
    Skipped,
    calendar_date,
    email,
    is_archived,
    is_deleted,
    is_missing,
    link,
    require_id,
    text,
    timestamp,
    total,
)
from cliniko_assets.transforms.phones import region_for
from cliniko_assets.transforms.salvage import Salvage, phone_numbers

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
    if is_missing(patient):
        raise Skipped(NOT_IN_CLINIKO)
    first, last = text(patient, "first_name"), text(patient, "last_name")
    if first is None:
        raise Malformed("first_name", "missing")
    if last is None:
        raise Malformed("last_name", "missing")
    salvage = Salvage(patient)
    read = salvage.read
    zone = read(text, "time_zone")
    valid_zone = zone if zone is not None and is_time_zone(zone) else None
    referrer = link(patient, "referring_doctor")
    privacy = patient.get("accepted_privacy_policy")
    reminder = read(text, "reminder_type")
    country = read(text, "country") or read(text, "country_code")
    regions = (ctx.default_region, region_for(country))
    record = {
        "externalId": external_id,
        "firstname": first,
        "lastname": last,
        "preferredName": read(text, "preferred_first_name"),
        "title": read(text, "title"),
        "email": read(email, "email"),
        "sex": read(text, "sex") or read(text, "gender"),
        "genderIdentity": read(text, "gender_identity"),
        "pronouns": read(pronouns, "pronouns"),
        "birthdate": read(calendar_date, "date_of_birth"),
        "timezone": valid_zone,
        "extraBillingInfo": read(text, "invoice_extra_information"),
        "addressL1": read(text, "address_1"),
        "addressL2": read(text, "address_2"),
        "addressL3": read(text, "address_3"),
        "city": read(text, "city"),
        "state": read(text, "state"),
        "postalCode": read(text, "post_code"),
        "country": country,
        "phoneNumbers": phone_numbers(salvage, "patient_phone_numbers", regions),
        "privacyPolicy": PRIVACY_POLICY.get(privacy if isinstance(privacy, bool) else None),
        "medicareNum": read(text, "medicare"),
        "irn": read(text, "medicare_reference_number"),
        "veteransFileNumber": read(text, "dva_card_number"),
        "emergencyContactName": read(text, "emergency_contact"),
        "communicationPreference": COMMUNICATION_PREFERENCES.get((reminder or "").strip().lower()),
        "archived": is_archived(patient),
        "referringContactExternalId": referrer if referrer and ctx.is_imported("contacts", referrer) else None,
        "createdAt": read(timestamp, "created_at"),
    }
    lines = extra_info(salvage, None if zone == valid_zone else zone)
    record["extraInfo"] = salvage.appended_to(lines)
    return salvage.finish(record)


def is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):
        return False
    return True


def pronouns(patient: Record, name: str = "pronouns") -> str | None:
    value = patient.get(name)
    if isinstance(value, Mapping):
        forms = [form for key in ("nominative", "accusative") if isinstance(form := value.get(key), str) and form]
        return "/".join(forms) or None
    return text(patient, name)


def extra_info(salvage: Salvage, unusable_zone: str | None) -> str | None:
    """Cliniko fields with no Splose field, kept as labelled lines rather than dropped."""
    patient = salvage.record
    lines = [f"{label}: {value}" for name, label in EXTRA_INFO_LINES if (value := salvage.read(text, name))]
    for name, label in CONSENT_LINES:
        if isinstance(consent := patient.get(name), bool):
            lines.append(f"{label}: {'accepted' if consent else 'declined'}")
    if unusable_zone:
        lines.append(f"Cliniko time zone: {unusable_zone}")
    lines.extend(custom_field_lines(salvage))
    concession = link(patient, "concession_type")
    if concession:
        lines.append(f"Concession type (Cliniko id): {concession}")
    merged_at = salvage.read(timestamp, "merged_at")
    survivor = link(patient, "merged_with_patient")
    if merged_at or survivor:
        into = f" into patient {survivor}" if survivor else ""
        at = f" at {merged_at}" if merged_at else ""
        lines.append(f"Merged in Cliniko{into}{at}")
    return "\n".join(lines) or None


def custom_field_lines(salvage: Salvage) -> list[str]:
    """``custom_fields.sections[].fields[]`` -> "Custom field <section> / <field>: <value or selected options>".

    Each unusable part (a section that is not an object, a field whose value or options are not readable)
    is dropped on its own, with a warning on ``custom_fields``; the other custom fields are kept.
    """
    custom = salvage.record.get("custom_fields")
    if custom is None or custom == "":
        return []
    sections = custom.get("sections") if isinstance(custom, Mapping) else None
    if sections is None and isinstance(custom, Mapping):
        return []
    if not isinstance(sections, list):
        salvage.drop("custom_fields", custom)
        return []
    lines = []
    for section in sections:
        fields = section.get("fields") if isinstance(section, Mapping) else False
        if not isinstance(fields, list | None):
            salvage.drop("custom_fields", section)
            continue
        for item in fields or []:
            try:
                line = custom_field_line(section, item)
            except Malformed:
                salvage.drop("custom_fields", item)
                continue
            if line:
                lines.append(line)
    return lines


def custom_field_line(section: Record, item: object) -> str | None:
    if not isinstance(item, Mapping):
        raise Malformed("custom_fields")
    answer = custom_field_answer(item)
    if not answer:
        return None
    label = " / ".join(part for part in (text(section, "name"), text(item, "name")) if part)
    return f"Custom field {label}: {answer}"


def custom_field_answer(item: Record) -> str | None:
    options = item.get("options")
    if isinstance(item.get("value"), bool):
        return "yes" if item["value"] else "no"
    if options is None:
        return text(item, "value")
    if not isinstance(options, list):
        raise Malformed("custom_fields")
    if not all(isinstance(option, Mapping) for option in options):
        raise Malformed("custom_fields")
    picked = [text(option, "name") or "" for option in options if option.get("selected")]
    other = item.get("other")
    if isinstance(other, Mapping) and other.get("selected") and (other_text := text(other, "value")):
        picked.append(f"Other: {other_text}")
    return ", ".join(part for part in picked if part) or None
