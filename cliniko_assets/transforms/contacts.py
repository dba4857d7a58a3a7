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
    email                       <- email, when it can be an address
    addressL1..3                <- address_1..3
    suburb                      <- city
    state, postalCode           <- state, post_code
    country                     <- country, else country_code
    phoneNumbers                <- phone_numbers (see ``salvage.phone_numbers``; default regions: the clinic's
                                   country from ctx, then the contact's own; normalized_number not kept)
    archived                    <- archived_at / _state
    notes                       <- notes, then one "Cliniko <field> (unusable, not imported): <value>" line per
                                   field that could not be used

Every text field maps "" to null. A deleted contact -> Skip("deleted in Cliniko"). An unusable field
(malformed email, phone number, address) is left out and counted as a warning; the contact is imported.
"""

from __future__ import annotations

from typing import Any

from cliniko_assets.transforms.common import (
    DELETED,
    ImportContext,
    Record,
    Skipped,
    email,
    integer,
    is_archived,
    is_deleted,
    require_id,
    text,
    total,
)
from cliniko_assets.transforms.phones import region_for
from cliniko_assets.transforms.salvage import Salvage, phone_numbers

CONTACT_TYPES = {0: "Standard", 1: "Doctor", 2: "3rd Party Payer"}
DOCTOR_TYPES = {"general_practitioner": "GP", "specialist": "Specialist"}


@total
def to_splose_contact(contact: Record, ctx: ImportContext | None = None) -> dict[str, Any]:
    external_id = require_id(contact)
    if is_deleted(contact):
        raise Skipped(DELETED)
    salvage = Salvage(contact)
    read = salvage.read
    first, last = read(text, "first_name"), read(text, "last_name")
    company = read(text, "company_name")
    person = " ".join(part for part in (first, last) if part)
    doctor_type = read(text, "doctor_type")
    type_code = read(integer, "type_code")
    country = read(text, "country") or read(text, "country_code")
    regions = (ctx.default_region if ctx else None, region_for(country))
    record = {
        "externalId": external_id,
        "type": read(text, "type") or (None if type_code is None else CONTACT_TYPES.get(type_code)),
        "name": person or company,
        "title": read(text, "title"),
        "firstName": first,
        "lastName": last,
        "preferredName": read(text, "preferred_name"),
        "occupation": read(text, "occupation"),
        "companyName": company,
        "providerNumber": read(text, "provider_number"),
        "doctorType": DOCTOR_TYPES.get(doctor_type or ""),
        "email": read(email, "email"),
        "addressL1": read(text, "address_1"),
        "addressL2": read(text, "address_2"),
        "addressL3": read(text, "address_3"),
        "suburb": read(text, "city"),
        "state": read(text, "state"),
        "postalCode": read(text, "post_code"),
        "country": country,
        "phoneNumbers": phone_numbers(salvage, "phone_numbers", regions),
        "archived": is_archived(contact),
    }
    record["notes"] = salvage.appended_to(read(text, "notes"))
    return salvage.finish(record)
