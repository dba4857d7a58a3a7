"""A listed page decoded for staging: records that read like their dicts for the fields kept, their own text."""

from __future__ import annotations

import orjson
import pytest

from cliniko_assets.catalog import CATALOG
from splose_resources.listing import LISTED_FIELDS, InvalidJSON, ListedRecord, MalformedPage, decode_page

BASE = "https://api.au1.cliniko.com/v1"


class Reads(dict):
    """A record that notes every field read from it."""

    def __init__(self, seen: set[str]) -> None:
        super().__init__()
        self.seen = seen

    def get(self, key, default=None):
        self.seen.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.seen.add(key)
        return super().__getitem__(key)


def test_every_field_a_state_rule_or_a_fallback_route_reads_is_kept_by_a_listed_record():
    seen: set[str] = set()
    for spec in CATALOG:
        for stream in spec.streams:
            # An empty record from the main route matches no rule, so every rule of the resource reads its field.
            assert spec.state(Reads(seen), "main") in spec.states
            if stream.fallback_for:
                seen.add(stream.fallback_for)
    assert {"user_active", "active", "merged_at", "did_not_arrive", "patient_arrived", "draft"} <= seen
    assert seen <= set(LISTED_FIELDS)


def test_a_page_reads_like_its_decoded_body_and_each_record_keeps_the_text_cliniko_sent():
    records = [
        {
            "id": "1001",
            "updated_at": "2026-01-02T03:04:05Z",
            "first_name": "Zoë",
            "archived_at": None,
            "links": {"self": f"{BASE}/patients/1001"},
            "notes": 'line\nbreak "quoted"',
        },
        {"id": 1002, "deleted_at": "2026-02-01T00:00:00Z", "patient_arrived": True, "draft": False},
        {"links": {"self": f"{BASE}/patients/1003"}},  # a deletion stub: its id in links.self only
        {},
    ]
    body = {"patients": [*records, None, "text", [1]], "links": {"next": f"{BASE}/patients?page=2"}}
    text = orjson.dumps(body, option=orjson.OPT_INDENT_2)  # spacing and newlines as a server may send them
    page = decode_page(text + b"\n", "patients")

    assert page.envelope == {"links": body["links"]}
    listed, others = page.records[:4], page.records[4:]
    assert others == [None, "text", [1]]  # not objects: as a whole decode gives them
    for record, expected in zip(listed, records, strict=True):
        assert isinstance(record, ListedRecord)
        assert {name: record.get(name) for name in LISTED_FIELDS} == {
            name: expected.get(name) for name in LISTED_FIELDS
        }
        assert orjson.loads(record.text) == expected
        assert record.text.decode() in text.decode()  # the bytes Cliniko sent, not an encoding of our own
    assert listed[1].get("draft") is False and listed[1].get("archived_at") is None
    with pytest.raises(LookupError, match="'first_name' is not kept"):
        listed[0].get("first_name")


def test_the_count_under_either_spelling_comes_with_the_envelope():
    page = decode_page(b'{"users": [], "total_entires": "12", "total_entries": null, "other": {"x": 1}}', "users")
    assert page.records == []
    assert page.envelope == {"total_entires": "12", "total_entries": None}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"patients": [{"id": 1}', InvalidJSON),  # truncated
        (b'{"patients": [{"id": 1, "first_name": "\xff"}]}', InvalidJSON),  # not UTF-8, in a field not kept
        (b'{"patients": [{"id": 1, "first_name": "\\ud800"}]}', InvalidJSON),  # a lone surrogate
        (b"", InvalidJSON),
        (b'[{"id": 1}]', MalformedPage),  # not an object
        (b'{"appointments": []}', MalformedPage),  # another collection
        (b'{"patients": {"id": 1}}', MalformedPage),  # not a list
    ],
)
def test_a_body_that_is_not_a_collection_of_the_resource_is_refused(body, error):
    with pytest.raises(error):
        decode_page(body, "patients")


def test_a_record_holding_the_key_the_text_is_kept_under_comes_out_whole_as_its_dict():
    record = {"id": 7, "~listed text~": "not base64 bytes", "first_name": "Ana"}
    (decoded,) = decode_page(orjson.dumps({"patients": [record]}), "patients").records
    assert decoded == record  # decoded whole, as any item a listed record cannot hold, and staged encoded
