"""The generated clinics are as messy as real Cliniko accounts, in the shapes Cliniko's own examples show."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from cliniko_assets.timezones import iana_zone
from sandbox.cliniko.examples import account_records, load_examples
from sandbox.cliniko.generator import build_database
from sandbox.cliniko.schema import RESOURCES

ANCHOR = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module", params=[("tiny", 7), ("tiny", 9), ("small", 1)], ids=lambda p: f"{p[0]}-{p[1]}")
def clinic(request, tmp_path_factory) -> dict[str, list[tuple[str, dict]]]:
    """Every record of a generated clinic as (state, body), plus its settings under "settings"."""
    scale, seed = request.param
    path = tmp_path_factory.mktemp("shapes") / f"{scale}-{seed}.sqlite"
    build_database(path, seed, scale, ANCHOR)
    db = sqlite3.connect(path)
    try:
        found = {r: [(s, json.loads(b)) for s, b in db.execute(f"SELECT state, body FROM {r}")] for r in RESOURCES}
        found["settings"] = [("", json.loads(db.execute("SELECT body FROM settings").fetchone()[0]))]
        return found
    finally:
        db.close()


def bodies(clinic: dict, resource: str) -> list[dict]:
    return [body for _, body in clinic[resource]]


def is_link(value: object) -> bool:
    return isinstance(value, dict) and isinstance((value.get("links") or {}).get("self"), str)


def documented() -> dict[str, list[dict]]:
    return {
        r: [record for record, _ in records.values()]
        for r, records in account_records(load_examples()["examples"]).items()
    }


def test_every_documented_field_is_generated_in_its_documented_form(clinic):
    for resource, examples in documented().items():
        generated = bodies(clinic, resource)
        for example in examples:
            for name, value in example.items():
                present = [body[name] for body in generated if name in body]
                assert present, (resource, name)
                if is_link(value):
                    assert all(v is None or is_link(v) for v in present), (resource, name)
                    assert any(is_link(v) for v in present), (resource, name)
                elif isinstance(value, (dict, list, bool)) and name != "id":
                    assert all(v is None or isinstance(v, type(value)) for v in present), (resource, name)


def test_businesses_hold_their_zone_three_ways_and_the_account_holds_the_rest(clinic):
    businesses = [b for state, b in clinic["businesses"] if state != "missing"]
    ways = Counter(
        "identifier" if b["time_zone_identifier"] else "label" if b["time_zone"] else "none" for b in businesses
    )
    account = clinic["settings"][0][1]["account"]
    assert iana_zone(account["time_zone"]) is not None
    assert ways["none"] >= 1
    if ways["none"] < len(businesses):  # accounts with per-business zones: labels alone too
        assert ways["label"] >= 1 and ways["identifier"] >= 1
    assert all(iana_zone(b["time_zone"]) for b in businesses if b["time_zone"])
    assert {b["country"] for b in businesses} <= {"Australia", "New Zealand", "United Kingdom"}
    assert any(b["country_code"] is None for b in businesses) and any(b["display_name"] is None for b in businesses)


def test_ids_are_strings_and_json_integers(clinic):
    for resource in ("patients", "contacts", "users", "attendees", "treatment_notes"):
        kinds = Counter(type(body["id"]).__name__ for body in bodies(clinic, resource))
        assert kinds["str"] and kinds["int"], resource


def test_patients_have_custom_fields_concessions_and_phone_numbers_as_clinics_type_them(clinic):
    patients = bodies(clinic, "patients")
    definition = clinic["settings"][0][1]["patient_custom_fields_definition"]["sections"][0]
    answered = [p["custom_fields"]["sections"][0] for p in patients if p.get("custom_fields")]
    assert answered and all(a["token"] == definition["token"] for a in answered)
    fields = [f for a in answered for f in a["fields"]]
    assert any(o.get("selected") for f in fields for o in f.get("options", []))
    assert any((f.get("other") or {}).get("selected") for f in fields)
    assert any(is_link(p.get("concession_type")) for p in patients)
    numbers = [n["number"] for p in patients for n in p["patient_phone_numbers"]]
    assert any(n.startswith("61") for n in numbers) and any(n.startswith("+61") for n in numbers)
    assert any(n.startswith("04") and " " in n for n in numbers)


def test_types_practitioners_attendees_and_notes_carry_the_documented_variants(clinic):
    types = bodies(clinic, "appointment_types")
    assert any(is_link(t["billable_item"]) for t in types) and any(is_link(t["product"]) for t in types)
    practitioners = bodies(clinic, "practitioners")
    assert all(is_link(p["default_appointment_type"]) for p in practitioners)
    assert any(p["display_name"] is None for p in practitioners)
    assert any(a["arrived"] is None for a in bodies(clinic, "attendees"))
    notes = bodies(clinic, "treatment_notes")
    unbooked = [n for n in notes if "booking" not in n]
    assert unbooked and all(is_link(n["patient"]) and is_link(n["practitioner"]) for n in unbooked)


def test_appointments_point_at_records_the_lists_do_not_return(clinic):
    def ids(resource: str, state: str) -> set[str]:
        return {str(body["id"]) for s, body in clinic[resource] if s == state}

    def targets(name: str) -> Counter:
        return Counter(
            body[name]["links"]["self"].rsplit("/", 1)[-1] for body in bodies(clinic, "individual_appointments")
        )

    for resource, link_name, state in (
        ("appointment_types", "appointment_type", "missing"),
        ("businesses", "business", "missing"),
        ("practitioners", "practitioner", "missing"),
        ("practitioners", "practitioner", "unlisted"),
    ):
        (rid,) = ids(resource, state)
        assert targets(link_name)[rid] >= 3, (resource, state)


def test_the_settings_are_shaped_like_the_documented_example(clinic):
    (example,) = (
        json.loads(e["json"])
        for e in load_examples()["examples"]
        if e["section"] == "settings" and e["heading"] == "Get Settings"
    )
    settings = clinic["settings"][0][1]
    assert set(example) - {"links"} == set(settings)
    assert set(example["account"]) == set(settings["account"])


def test_the_examples_account_is_exactly_the_documented_records(tmp_path):
    build_database(tmp_path / "examples.sqlite", 1, "examples")
    db = sqlite3.connect(tmp_path / "examples.sqlite")
    stored = {
        r: {str(json.loads(b)["id"]): json.loads(b) for (b,) in db.execute(f"SELECT body FROM {r}")} for r in RESOURCES
    }
    for resource, records in documented().items():
        assert stored[resource] == {str(r["id"]): r for r in records}, resource
    assert stored["patients"]["1"]["patient_phone_numbers"][0]["number"] == "61444444444"  # the last of two keys
    states = dict(db.execute("SELECT id, state FROM practitioners").fetchall())
    assert states == {514810972972521916: "active", 3: "inactive"}
    assert Path(load_examples()["source"]).name == "cliniko-api"
