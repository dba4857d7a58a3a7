"""Rails time zone labels (what Cliniko shows) to IANA zones (what Splose wants)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from cliniko_assets.timezones import LEGACY_LABELS, RAILS_TIME_ZONES, iana_zone, is_iana_zone


def test_the_table_is_rails_complete_table_and_every_zone_exists() -> None:
    assert len(RAILS_TIME_ZONES) == 154
    for label, zone in {**RAILS_TIME_ZONES, **LEGACY_LABELS}.items():
        assert ZoneInfo(zone), label


@pytest.mark.parametrize(
    ("value", "zone"),
    [
        ("Eastern Time (US & Canada)", "America/New_York"),  # Cliniko's settings example
        ("Melbourne", "Australia/Melbourne"),
        ("Canberra", "Australia/Canberra"),
        ("melbourne", "Australia/Melbourne"),
        ("  Perth ", "Australia/Perth"),
        ("(GMT+10:00) Brisbane", "Australia/Brisbane"),
        ("Nuku'alofa", "Pacific/Tongatapu"),
        ("Kyiv", "Europe/Kyiv"),
        ("Kyev", "Europe/Kyiv"),
        ("Australia/Perth", "Australia/Perth"),
        ("UTC", "UTC"),
        ("Middle Earth", None),
        ("", None),
        (None, None),
        (10, None),
    ],
)
def test_iana_zone(value: object, zone: str | None) -> None:
    assert iana_zone(value) == zone


def test_is_iana_zone_refuses_paths_and_padding() -> None:
    assert is_iana_zone("Pacific/Auckland")
    assert not is_iana_zone("/etc/passwd") and not is_iana_zone(" Pacific/Auckland") and not is_iana_zone("")
