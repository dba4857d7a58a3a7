"""Phone numbers as clinics type them, split into Splose's calling code and number with ``phonenumbers``."""

from __future__ import annotations

import pytest

from cliniko_assets.transforms.country_names import REGION_NAMES, from_phonenumbers
from cliniko_assets.transforms.phones import region_for, split_phone
from cliniko_assets.transforms.salvage import Salvage, phone_numbers


@pytest.mark.parametrize(
    ("country", "region"),
    [
        ("AU", "AU"),
        ("au", "AU"),
        ("Australia", "AU"),
        ("australia", "AU"),
        ("New Zealand", "NZ"),
        ("United Kingdom", "GB"),
        ("UK", "GB"),
        ("United States", "US"),
        ("Estonia", "EE"),
        ("Atlantis", None),
        ("", None),
        (None, None),
        (61, None),
    ],
)
def test_region_from_a_country_code_or_name(country: object, region: str | None) -> None:
    assert region_for(country) == region


def test_the_region_names_table_is_phonenumbers_own() -> None:
    """The static table (which spares each step phonenumbers' geocoding data) matches the installed library."""
    names = from_phonenumbers()
    assert names == REGION_NAMES
    assert len(names) > 240 and names["australia"] == "AU"


@pytest.mark.parametrize(
    ("number", "regions", "expected"),
    [
        ("61444444444", ["AU"], ("+61", "444444444")),  # Cliniko's own example: the code without "+"
        ("61399999999", ["AU"], ("+61", "399999999")),
        ("0412 345 678", ["AU"], ("+61", "412345678")),
        ("0412345678", ["AU"], ("+61", "412345678")),
        ("+61 412 345 678", ["AU"], ("+61", "412345678")),
        ("+61 412 345 678", [], ("+61", "412345678")),
        ("0061 412 345 678", ["US"], ("+61", "412345678")),
        ("+64-21-555-0100", ["AU"], ("+64", "215550100")),
        ("+44 20 7946 0958", ["AU"], ("+44", "2079460958")),
        ("021 123 4567", ["NZ"], ("+64", "211234567")),
        ("(03) 9999 0000 x12", ["AU"], (None, "(03) 9999 0000 x12")),
        ("0412 345 678", [None, "AU"], ("+61", "412345678")),
        ("0987654321", ["AU"], (None, "0987654321")),  # not a valid Australian number: no guessed code
        ("0412 345 678", [], (None, "0412 345 678")),
        ("+99890123", [], (None, "+99890123")),
        ("0412 345 678 (mum)", ["AU"], (None, "0412 345 678 (mum)")),  # words would be lost by splitting
        ("ask at reception", ["AU"], None),
        ("  ", ["AU"], None),
    ],
)
def test_split_phone(number: str, regions: list[str | None], expected: tuple[str | None, str] | None) -> None:
    assert split_phone(number, regions) == expected


@pytest.mark.parametrize(
    ("phone_type", "expected"),
    [
        ("Mobile", "Mobile"),
        ("Home", "Home"),
        ("Work", "Work"),
        ("Fax", "Fax"),
        ("Other", "Other"),
        ("mobile", "Mobile"),
        ("Pager", "Other"),
        ("", None),
        (None, None),
    ],
)
def test_phone_types(phone_type: str | None, expected: str | None) -> None:
    salvage = Salvage({"phones": [{"phone_type": phone_type, "number": "0412345678"}]})
    assert phone_numbers(salvage, "phones", ["AU"]) == [{"type": expected, "code": "+61", "phoneNumber": "412345678"}]


def test_entries_without_a_number_are_left_out_and_unusable_ones_dropped_with_a_warning() -> None:
    salvage = Salvage(
        {
            "phones": [
                {"phone_type": "Home", "number": " "},
                {"phone_type": "Home"},
                {"phone_type": "Work", "number": "ask at reception"},
                "0412 345 678",
                {"phone_type": "Mobile", "number": "0412 345 678"},
            ]
        }
    )
    assert phone_numbers(salvage, "phones", ["AU"]) == [{"type": "Mobile", "code": "+61", "phoneNumber": "412345678"}]
    assert salvage.fields == ["phones", "phones"]
    assert salvage.lines == [
        'Cliniko phones (unusable, not imported): {"phone_type": "Work", "number": "ask at reception"}',
        "Cliniko phones (unusable, not imported): 0412 345 678",
    ]


def test_a_missing_list_is_empty_and_a_list_that_is_not_one_is_dropped() -> None:
    assert phone_numbers(Salvage({}), "phones", ["AU"]) == []
    assert phone_numbers(Salvage({"phones": None}), "phones", ["AU"]) == []
    salvage = Salvage({"phones": "0412345678"})
    assert phone_numbers(salvage, "phones", ["AU"]) == []
    assert salvage.fields == ["phones"]
