"""Realistic Cliniko records from the sandbox's ``tiny`` clinic, plus a mapping context covering it.

The generator builds the clinic into a temporary SQLite file in well under a second; each record is
read back as the API renders it, with the ``_state``/``_source`` keys staging adds. Deleted patients are
staged as the deletion stubs Cliniko's ``/patients/deleted`` returns.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import sqlite3
from typing import Any

import pytest

from cliniko_assets.catalog import BY_NAME, linked_id, record_id
from cliniko_assets.mapping_resolution import business_zone
from cliniko_assets.transforms import WARNINGS, ImportContext, Skip
from cliniko_assets.transforms.salvage import fit_short_fields
from sandbox.cliniko.generator import build_database
from sandbox.cliniko.queries import render
from sandbox.splose.schemas import validate_record

BASE = "https://api.au1.cliniko.com/v1"
ANCHOR = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)

Clinic = dict[str, list[dict[str, Any]]]


def staged(resource: str, body: dict[str, Any], state: str = "") -> dict[str, Any]:
    """The record as staging holds it: what the list (or the deleted list) gave, or what a by-id GET did."""
    if state == "missing":  # deleted without a deletion feed: only its id is known, from the links to it
        return {"id": body["id"], "links": body["links"], "_state": "missing", "_source": "by_id"}
    if state == "unlisted":
        return {**body, "_state": "unlisted", "_source": "by_id"}
    source = "deleted" if body.get("deleted_at") and resource != "treatment_note_templates" else "main"
    if resource == "patients" and source == "deleted":
        body = {"deleted_at": body["deleted_at"], "links": body["links"]}
    return {**body, "_state": BY_NAME[resource].state(body, source), "_source": source}


@pytest.fixture(scope="session")
def clinic(tmp_path_factory: pytest.TempPathFactory) -> Clinic:
    path = tmp_path_factory.mktemp("clinic") / "tiny.sqlite"
    build_database(path, seed=7, scale="tiny", anchor=ANCHOR)
    db = sqlite3.connect(path)
    try:
        return {
            resource: [
                staged(resource, json.loads(render(body, BASE)), state)
                for body, state in db.execute(f"SELECT body, state FROM {resource} ORDER BY id")
            ]
            for resource in BY_NAME
        }
    finally:
        db.close()


@pytest.fixture(scope="session")
def clinic_ctx(clinic: Clinic) -> ImportContext:
    """Every business mapped except the first (ignored), deleted ones too; every practitioner, user and type
    mapped; zones as the mapping resolves them, with the account's zone ("Melbourne") as the fallback."""
    businesses = clinic["businesses"]
    return ImportContext(
        locations={record_id(b): (None if i == 0 else 100 + i) for i, b in enumerate(businesses)},
        practitioners={record_id(p): 200 + i for i, p in enumerate(clinic["practitioners"])},
        users={record_id(u): 300 + i for i, u in enumerate(clinic["users"])},
        services={record_id(t): 400 + i for i, t in enumerate(clinic["appointment_types"])},
        business_time_zones={record_id(b): business_zone(b, "Melbourne")[0] for b in businesses},
    )


def ctx(**changes: Any) -> ImportContext:
    """A small context for hand-written records: business 1 -> location 11, 2 ignored; practitioner 5 -> 55."""
    base: dict[str, Any] = {
        "locations": {"1": 11, "2": None},
        "practitioners": {"5": 55},
        "users": {"9": 55},
        "services": {"7": 77},
        "business_time_zones": {"1": "Australia/Melbourne", "2": "Australia/Perth"},
    }
    return ImportContext(**{**base, **changes})


def link(path: str) -> dict[str, Any]:
    return {"links": {"self": f"{BASE}/{path}"}}


def valid(entity: str, record: dict[str, Any] | Skip) -> dict[str, Any]:
    """Assert ``record`` is a record (not a skip) that the Splose import API's schema accepts as the load sends
    it (:func:`as_sent`); return it as the transform made it."""
    assert isinstance(record, dict), record
    validate_record(entity, as_sent(entity, record))
    return record


def as_sent(entity: str, record: dict[str, Any]) -> dict[str, Any]:
    """A transform's record as the load sends it: its warnings taken off, strings longer than Splose holds cut
    to fit (the whole kept in the record's free text)."""
    sent = copy.deepcopy({k: v for k, v in record.items() if k != WARNINGS})
    fit_short_fields(entity, sent)
    return sent


def by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {record_id(r): r for r in records}


def attendees_by_booking(clinic: Clinic) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for attendee in clinic["attendees"]:
        grouped.setdefault(linked_id(attendee, "booking"), []).append(attendee)
    return grouped
