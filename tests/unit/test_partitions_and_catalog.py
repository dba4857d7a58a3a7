import pytest

from cliniko_assets.catalog import BY_NAME, CATALOG, linked_id, record_id
from cliniko_assets.partitions import InvalidTenant, validate_tenant


@pytest.mark.parametrize("key", ["clinic-42", "a", "demo-clinic", "x" * 63])
def test_slugs_are_valid_tenants(key):
    assert validate_tenant(key) == key


@pytest.mark.parametrize("key", ["", "Clinic", "-a", "a-", "a--b", "a b", "a_b", "x" * 64, "a...b", "a|b"])
def test_other_keys_are_refused_with_a_fix(key):
    with pytest.raises(InvalidTenant, match="lowercase letters"):
        validate_tenant(key)


def test_the_catalog_has_the_fourteen_resources():
    assert len(CATALOG) == 14
    assert {s.name for s in CATALOG if s.incremental} == {
        "patients",
        "contacts",
        "individual_appointments",
        "group_appointments",
        "attendees",
        "patient_attachments",
        "treatment_notes",
    }


def test_ids_come_from_the_record_or_its_self_link():
    assert record_id({"id": 836447129235883061}) == "836447129235883061"
    assert record_id({"deleted_at": "2020-01-01T00:00:00Z", "links": {"self": "https://x/v1/patients/75335355"}}) == (
        "75335355"
    )
    assert record_id({"links": {}}) is None
    assert linked_id({"patient": {"links": {"self": "https://x/v1/patients/82?x=1"}}}, "patient") == "82"


@pytest.mark.parametrize(
    "links", [["https://x/v1/patients/82"], "https://x/v1/patients/82", {"self": 82}, {"self": None}]
)
def test_links_of_another_shape_give_no_id_rather_than_an_error(links):
    # A stub without an id is then counted unreadable by the crawl, a link dangling by the mapping.
    assert record_id({"deleted_at": "2020-01-01T00:00:00Z", "links": links}) is None
    assert linked_id({"patient": {"links": links}}, "patient") is None


@pytest.mark.parametrize(
    ("resource", "record", "source", "state"),
    [
        ("patients", {"archived_at": "", "deleted_at": ""}, "main", "active"),
        ("patients", {"archived_at": "2020-01-01T00:00:00Z"}, "main", "archived"),
        ("patients", {"archived_at": "2020-01-01T00:00:00Z", "merged_at": "2020-01-01T00:00:00Z"}, "main", "merged"),
        ("patients", {"deleted_at": "2021-01-01T00:00:00Z"}, "deleted", "deleted"),
        (
            "individual_appointments",
            {"cancelled_at": "2021-01-01T00:00:00Z", "did_not_arrive": True},
            "main",
            "cancelled",
        ),
        ("individual_appointments", {"did_not_arrive": True}, "main", "did_not_arrive"),
        ("individual_appointments", {"patient_arrived": True}, "main", "arrived"),
        ("individual_appointments", {}, "main", "booked"),
        ("attendees", {"arrived": True}, "main", "arrived"),
        ("treatment_notes", {"draft": True}, "main", "draft"),
        ("treatment_notes", {"draft": False}, "main", "final"),
        ("practitioners", {"active": True}, "inactive", "inactive"),
        ("treatment_note_templates", {}, "deleted", "deleted"),
        ("users", {"user_active": False}, "main", "inactive"),
    ],
)
def test_each_record_is_counted_in_one_state(resource, record, source, state):
    assert BY_NAME[resource].state(record, source) == state


@pytest.mark.parametrize("key", ["abc\n", "abc\r\n", "\nabc", "abc\x00", "abc/def", "../abc"])
def test_a_slug_must_match_whole(key):
    with pytest.raises(InvalidTenant):
        validate_tenant(key)
