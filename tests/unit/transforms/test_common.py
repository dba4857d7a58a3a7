"""The shared readers: ids, links, timestamps and phone numbers in every shape Cliniko sends them."""

from __future__ import annotations

import pytest

from cliniko_assets.transforms import Skip, to_splose_client
from cliniko_assets.transforms.common import (
    Malformed,
    calendar_date,
    cliniko_id,
    email,
    link,
    timestamp,
)
from tests.unit.transforms.conftest import ctx
from tests.unit.transforms.conftest import link as link_to


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"id": "836447129235883061"}, "836447129235883061"),
        ({"id": 75335355}, "75335355"),
        ({"deleted_at": "2024-01-01T00:00:00Z", **link_to("patients/42")}, "42"),
        ({"id": "", **link_to("patients/42")}, "42"),
        ({}, None),
        ({"id": True}, None),
        ({"id": ["1"]}, None),
        ({"links": "not a dict"}, None),
        ({"links": {"self": 42}}, None),
    ],
)
def test_cliniko_id(record: dict, expected: str | None) -> None:
    assert cliniko_id(record) == expected


def test_link_reads_the_last_path_segment_or_a_plain_id_field() -> None:
    assert link({"patient": link_to("patients/82")}, "patient") == "82"
    assert link({"patient": link_to("patients/82?page=1")}, "patient") == "82"
    assert link({"patient_id": 82}, "patient") == "82"
    assert link({"patient_id": "82"}, "patient") == "82"
    assert link({"patient": None}, "patient") is None
    assert link({"patient": {"links": None}}, "patient") is None
    assert link({"patient": "patients/82"}, "patient") is None
    assert link({"patient_id": True}, "patient") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2016-06-28T21:33:26Z", "2016-06-28T21:33:26Z"),
        ("2016-06-28T21:33:26.123Z", "2016-06-28T21:33:26Z"),
        ("2016-06-28T21:33:26+00:00", "2016-06-28T21:33:26Z"),
        ("2016-06-29T07:33:26+10:00", "2016-06-28T21:33:26Z"),
        ("2016-06-28T21:33:26", "2016-06-28T21:33:26Z"),
        ("0999-06-01T10:00:00Z", "0999-06-01T10:00:00Z"),  # a mistyped year keeps Splose's four digits
        ("", None),
        (None, None),
    ],
)
def test_timestamp(value: str | None, expected: str | None) -> None:
    assert timestamp({"created_at": value}, "created_at") == expected


@pytest.mark.parametrize(
    "value", ["yesterday", "2016-13-40T00:00:00Z", 1467149606, "2016-06-28", "0001-01-01T00:00:00+10:00"]
)
def test_malformed_timestamp_names_the_field_not_the_value(value: object) -> None:
    with pytest.raises(Malformed) as raised:
        timestamp({"created_at": value}, "created_at")
    assert raised.value.reason == "malformed created_at"


def test_calendar_date() -> None:
    assert calendar_date({"date_of_birth": "1980-02-29"}, "date_of_birth") == "1980-02-29"
    assert calendar_date({"date_of_birth": ""}, "date_of_birth") is None
    with pytest.raises(Malformed):
        calendar_date({"date_of_birth": "1981-02-29"}, "date_of_birth")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("zoe@mail.example", "zoe@mail.example"),
        (" zoe@mail.example ", "zoe@mail.example"),
        ("o'brien+tag@sub.mail.example", "o'brien+tag@sub.mail.example"),
        ("", None),
        (None, None),
    ],
)
def test_email(value: str | None, expected: str | None) -> None:
    assert email({"email": value}, "email") == expected


@pytest.mark.parametrize("value", ["zoe at mail", "zoe@mail", "zoe@@mail.example", "zo e@mail.example", "@mail.com", 7])
def test_an_email_that_cannot_be_an_address_is_malformed(value: object) -> None:
    with pytest.raises(Malformed) as raised:
        email({"email": value}, "email")
    assert raised.value.reason == "malformed email"


def test_transforms_take_their_record_by_keyword_too() -> None:
    assert to_splose_client(ctx=ctx(), patient={"id": "3", "_state": "deleted"}) == Skip("3", "deleted in Cliniko")
    assert to_splose_client(ctx=ctx(), patient="junk") == Skip("", "malformed record")
