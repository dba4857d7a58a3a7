"""Which staged links point at records nobody staged: read straight from the staged JSON, deleted records aside."""

from __future__ import annotations

import json

from cliniko_assets.references import (
    linked_ids,
    read_account_settings,
    record_links,
    referenced_ids,
    write_account_settings,
)
from splose_resources.staging import StagingStore

BASE = "https://api.au1.cliniko.com/v1"


def stage(staging: StagingStore, tenant: str, resource: str, records: list[tuple[dict, str]], compact: bool) -> None:
    batch = staging.batch(tenant, resource)
    separators = (",", ":") if compact else (", ", ": ")
    batch.write_part(
        [
            {
                "id": str(record.get("id")),
                "updated_at": None,
                "state": state,
                "source": "main",
                "record": json.dumps(record, separators=separators),
            }
            for record, state in records
        ]
    )
    batch.commit(replace=True)


def test_links_are_read_whatever_the_spacing_query_or_host_and_deleted_records_are_ignored(tmp_path):
    staging = StagingStore(uri=str(tmp_path))
    appointments = [
        ({"id": 1, "patient": {"links": {"self": f"{BASE}/patients/82"}}}, "booked"),
        ({"id": 2, "patient": {"links": {"self": "http://api.cliniko.dev:3000/v1/patients/83?page=1"}}}, "booked"),
        ({"id": 3, "patient": {"links": {"self": f"{BASE}/patients/84"}}}, "deleted"),
        ({"id": 4, "patient": None, "patient_name": "patients/85"}, "booked"),
        ({"id": 5, "patient_case": {"links": {"self": f"{BASE}/patient_cases/86"}}}, "booked"),
        # A record's own links only: not one nested in another field, not a URL that does not end in an id.
        ({"id": 6, "invoice": {"patient": {"links": {"self": f"{BASE}/patients/88"}}}}, "booked"),
        ({"id": 7, "patient": {"links": {"self": f"{BASE}/patients/89/notes"}}}, "booked"),
    ]
    stage(staging, "t", "individual_appointments", appointments, compact=True)
    stage(
        staging, "t", "attendees", [({"id": 9, "patient": {"links": {"self": f"{BASE}/patients/87"}}}, "booked")], False
    )

    assert linked_ids(staging, "t", "individual_appointments", ("patient",)) == {"patient": {"82", "83"}}
    assert referenced_ids(staging, "t")["patients"] == {"82", "83", "87"}
    assert linked_ids(staging, "t", "group_appointments", ("patient",)) == {"patient": set()}  # nothing staged


def test_each_linking_resource_is_read_once_and_each_of_its_links_goes_to_the_resource_it_points_at(
    tmp_path, monkeypatch
):
    staging = StagingStore(uri=str(tmp_path))

    def link(resource: str, rid: int) -> dict:
        return {"links": {"self": f"{BASE}/{resource}/{rid}"}}

    appointment = {
        "id": 1,
        "business": link("businesses", 11),
        "practitioner": link("practitioners", 21),
        "appointment_type": link("appointment_types", 31),
        "patient": link("patients", 41),
    }
    stage(staging, "t", "individual_appointments", [(appointment, "booked")], compact=False)
    note = {"id": 2, "patient": link("patients", 42), "practitioner": link("practitioners", 22),
            "treatment_note_template": link("treatment_note_templates", 51)}  # fmt: skip
    stage(staging, "t", "treatment_notes", [(note, "final")], compact=True)
    reads: list[str] = []
    iter_batches = StagingStore.iter_batches

    def counted(self, tenant, resource, *args, **kwargs):  # the real reader, each call noted
        reads.append(resource)
        return iter_batches(self, tenant, resource, *args, **kwargs)

    monkeypatch.setattr(StagingStore, "iter_batches", counted)

    assert referenced_ids(staging, "t") == {
        "businesses": {"11"},
        "practitioners": {"21", "22"},
        "appointment_types": {"31"},
        "patients": {"41", "42"},
        "treatment_note_templates": {"51"},
    }
    assert sorted(reads) == sorted(set(reads))  # no resource read twice
    assert {"individual_appointments", "treatment_notes"} <= set(reads)


def test_a_link_of_another_shape_is_read_as_it_is_and_the_records_other_links_still_count(tmp_path):
    staging = StagingStore(uri=str(tmp_path))

    def link(resource: str, rid: int) -> dict:
        return {"links": {"self": f"{BASE}/{resource}/{rid}"}}

    practitioner = link("practitioners", 21)
    appointments = [
        # Not the usual {"links": {"self": url}}: each record is read again whole, its usual links still count.
        ({"id": 1, "patient": "patients/81", "practitioner": link("practitioners", 23)}, "booked"),
        ({"id": 2, "patient": [{"links": {"self": f"{BASE}/patients/82"}}], "practitioner": practitioner}, "booked"),
        ({"id": 3, "patient": {"links": None}, "practitioner": link("practitioners", 22)}, "booked"),
        ({"id": 4, "patient": {"links": {"self": None}}}, "booked"),
        ({"id": 5, "patient": {"links": {"self": f"{BASE}/patients/85", "next": 1}, "name": "x"}}, "booked"),
        # The same URL again, and one that does not end in an id: each URL's id is worked out once, right.
        ({"id": 6, "patient": {"links": {"self": f"{BASE}/patients/85"}}, "practitioner": practitioner}, "booked"),
        ({"id": 7, "patient": {"links": {"self": f"{BASE}/patients"}}}, "booked"),
        ({"id": 8, "patient": {"links": [f"{BASE}/patients/88"]}, "practitioner": link("practitioners", 24)}, "booked"),
    ]
    stage(staging, "t", "individual_appointments", appointments, compact=True)
    # Texts that are not an object, or not JSON, link to nothing; the others still count.
    attendees = staging.batch("t", "attendees")
    attendees.write_part(
        [{"id": str(i), "updated_at": None, "state": "booked", "source": "main", "record": text}
         for i, text in enumerate(["[1, 2]", "null", "{not json", '{"patient": {"links": {"self": "/patients/86"}}}'])]
    )  # fmt: skip
    attendees.commit(replace=True)

    assert linked_ids(staging, "t", "individual_appointments", ("patient", "practitioner")) == {
        "patient": {"85"},
        "practitioner": {"21", "22", "23", "24"},
    }
    assert linked_ids(staging, "t", "attendees", ("patient",)) == {"patient": {"86"}}


def test_the_account_settings_are_written_privately_and_read_back(tmp_path):
    staging = StagingStore(uri=str(tmp_path))
    assert read_account_settings(staging, "t") == {}
    write_account_settings(staging, "t", {"time_zone": "Melbourne", "country": "Australia", "source": "settings"})
    path = tmp_path / "t" / "cliniko" / "businesses" / "account.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert read_account_settings(staging, "t")["time_zone"] == "Melbourne"


def test_each_records_link_is_read_with_its_staged_id_deleted_ones_too_and_odd_shapes_as_they_are(tmp_path):
    staging = StagingStore(uri=str(tmp_path))
    attendees = [
        ({"id": 1, "booking": {"links": {"self": f"{BASE}/bookings/500"}}}, "booked"),
        ({"id": 2, "booking": {"links": {"self": f"{BASE}/bookings/500"}, "extra": 1}}, "cancelled"),
        ({"id": 3, "booking": {"links": {"self": f"{BASE}/bookings/501"}}}, "deleted"),
        ({"id": 4, "booking": None}, "booked"),
        ({"id": 5, "booking": "bookings/502"}, "booked"),  # not a link: links to nothing
        ({"id": 6, "booking": {"links": {"self": 503}}}, "booked"),  # another shape: read as it is
        ({"id": 7, "patient": {"links": {"self": f"{BASE}/patients/9"}}}, "booked"),
    ]
    stage(staging, "t", "attendees", attendees, compact=False)
    assert dict(record_links(staging, "t", "attendees", "booking")) == {
        "1": "500", "2": "500", "3": "501", "4": None, "5": None, "6": None, "7": None,
    }  # fmt: skip
    assert list(record_links(staging, "t", "group_appointments", "booking")) == []  # nothing staged


def test_the_attendee_index_answers_every_attendee_with_a_booking_whatever_its_ids_look_like():
    from cliniko_assets.row_loads import _BookingIndex

    pairs = [("10", "500"), ("3", "7"), ("007", "9"), ("x", "8"), (str(2**64), "1"), ("4", None), ("5", "0012")]
    index = _BookingIndex(pairs)
    assert {attendee: index.get(attendee) for attendee, _ in pairs} == dict(pairs)
    assert index.get("99") is None and index.get("7") is None and index.get("") is None
    assert len(index.keys) == 2  # the plain numbers; the rest beside them


def test_a_link_reader_keeps_the_ids_of_a_bounded_number_of_urls_and_still_reads_every_link(monkeypatch):
    from cliniko_assets import references

    monkeypatch.setattr(references, "URLS_KEPT", 3)
    reader = references._LinkReader(("booking",))
    texts = [json.dumps({"booking": {"links": {"self": f"{BASE}/bookings/{n}"}}}) for n in (1, 2, 1, 3, 4, 5, 4)]
    assert [reader.read(text)[0] for text in texts] == ["1", "2", "1", "3", "4", "5", "4"]
    assert len(reader.ids) == 3  # None's, 1's and 2's: an attendee's booking is its own, half a million at large
