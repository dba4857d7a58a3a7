"""Cliniko contacts -> Splose ``contacts`` records.

Mapping, Splose field <- Cliniko field: rule

    externalId                  <- id
    type                        <- type, kept as given ("Doctor", "3rd Party Payer", "Standard" or a newer
                                   value); missing -> from type_code (0 Standard, 1 Doctor, 2 3rd Party Payer)
    name                        <- first_name + last_name; a company-only contact -> company_name
    title, firstName, lastName  <- title, first_name, last_name
    preferredName               <- preferred_name
    occupation, companyName     <- occupation, company_name
    providerNumber              <- provider_number
    doctorType                  <- doctor_type: general_practitioner -> "GP", specialist -> "Specialist", else null
    email                       <- email
    addressL1..3                <- address_1..3
    suburb                      <- city
    state, postalCode           <- state, post_code
    country                     <- country, else country_code
    phoneNumbers                <- phone_numbers (see ``common.phone_numbers``; normalized_number not kept)
    archived                    <- archived_at / _state
    notes                       <- notes

Every text field maps "" to null. A deleted contact -> Skip("deleted in Cliniko").
"""

from __future__ import annotations

from typing import Any

from cliniko_assets.transforms.common import (
    DELETED,
    Record,
    Skipped,
    integer,
    is_archived,
    is_deleted,
    phone_numbers,
    require_id,
    text,
    total,
)

CONTACT_TYPES = {0: "Standard", 1: "Doctor", 2: "3rd Party Payer"}
DOCTOR_TYPES = {"general_practitioner": "GP", "specialist": "Specialist"}


@total
def to_splose_contact(contact: Record) -> dict[str, Any]:
    external_id = require_id(contact)
    if is_deleted(contact):
        raise Skipped(DELETED)
    first, last = text(contact, "first_name"), text(contact, "last_name")
    company = text(contact, "company_name")
    person = " ".join(part for part in (first, last) if part)
    doctor_type = text(contact, "doctor_type")
    type_code = integer(contact, "type_code")
    return {
        "externalId": external_id,
        "type": text(contact, "type") or (None if type_code is None else CONTACT_TYPES.get(type_code)),
        "name": person or company,
        "title": text(contact, "title"),
        "firstName": first,
        "lastName": last,
        "preferredName": text(contact, "preferred_name"),
        "occupation": text(contact, "occupation"),
        "companyName": company,
        "providerNumber": text(contact, "provider_number"),
        "doctorType": DOCTOR_TYPES.get(doctor_type or ""),
        "email": text(contact, "email"),
        "addressL1": text(contact, "address_1"),
        "addressL2": text(contact, "address_2"),
        "addressL3": text(contact, "address_3"),
        "suburb": text(contact, "city"),
        "state": text(contact, "state"),
        "postalCode": text(contact, "post_code"),
        "country": text(contact, "country") or text(contact, "country_code"),
        "phoneNumbers": phone_numbers(contact, "phone_numbers"),
        "archived": is_archived(contact),
        "notes": text(contact, "notes"),
    }
