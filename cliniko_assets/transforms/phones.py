"""Phone numbers and countries: Cliniko's free-text numbers split into Splose's calling code and number.

Cliniko keeps a phone number as the text the clinic typed: ``"0412 345 678"``, ``"+61 412 345 678"``, or
with the calling code but no ``+`` (``"61444444444"``, as in Cliniko's own examples). ``phonenumbers``
(Google's libphonenumber) reads them with the clinic's country as the default region, so a national
number gets its country's code and a number that already starts with that code is recognised as such.

Rules of :func:`split_phone`:

- no digit at all (``"ask at reception"``) -> ``None``: not a phone number (the caller keeps the text elsewhere);
- anything but digits, spaces and ``+-().`` (``"0412 345 678 (mum)"``, an extension ``"x12"``) -> kept
  whole, no code: splitting would lose the words;
- a leading ``+`` or ``00`` -> the code it names, when the number is possible;
- otherwise the first default region under which the number is valid gives the code;
- else the text as given, no code (never a guessed code).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import phonenumbers

from cliniko_assets.transforms.country_names import REGION_NAMES

DIALLABLE = re.compile(r"^[\d\s+\-().]+$")
# Names a clinic may type that phonenumbers' English region names do not cover.
COUNTRY_ALIASES = {
    "uk": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "great britain": "GB",
    "usa": "US",
    "united states of america": "US",
    "america": "US",
    "nz": "NZ",
    "aotearoa": "NZ",
    "republic of ireland": "IE",
    "holland": "NL",
}


# Every name :func:`region_for` reads: phonenumbers' English region names and what clinics type besides.
REGIONS_BY_NAME = {**REGION_NAMES, **COUNTRY_ALIASES}


def region_for(country: object) -> str | None:
    """ISO 3166-1 alpha-2 region of a country code (``"AU"``, ``"au"``) or name (``"Australia"``); else None."""
    if not isinstance(country, str) or not country.strip():
        return None
    text = country.strip()
    if len(text) == 2 and text.upper() in phonenumbers.SUPPORTED_REGIONS:
        return text.upper()
    return REGIONS_BY_NAME.get(text.casefold())


def split_phone(number: str, regions: Iterable[str | None]) -> tuple[str | None, str] | None:
    """``(code, number)`` for Splose (``("+61", "412345678")``), ``(None, text)`` when it cannot tell, or
    ``None`` when the text holds no digit."""
    text = number.strip()
    if not re.search(r"\d", text):
        return None
    if not DIALLABLE.match(text):
        return None, text
    international = text.startswith(("+", "00"))
    candidates = [None] if international else [r for r in dict.fromkeys(regions) if r]
    for region in candidates:
        parsed = _parse(f"+{text[2:]}" if text.startswith("00") else text, region)
        usable = parsed is not None and (
            phonenumbers.is_possible_number(parsed) if international else phonenumbers.is_valid_number(parsed)
        )
        if usable:
            return f"+{parsed.country_code}", phonenumbers.national_significant_number(parsed)
    return None, text


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
