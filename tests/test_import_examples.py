"""Cliniko's own documented example records, exactly as documented, imported end to end.

The Cliniko sandbox's ``examples`` account holds the example records of Cliniko's API docs (see
``sandbox/cliniko/examples.py``): ids as integers and strings, a business without a time zone (the account's
is "Eastern Time (US & Canada)"), and links to records no example has (business 1 and 3, practitioner 1 and
456, appointment types 2 and 7, patients 82 and 123, template 789). The clinic maps the businesses and
practitioner the examples' links name, as it would after reading the first run's proposal; everything else
follows the defaults. Assertions compare counts and ids only.
"""

from __future__ import annotations

import itertools

import pytest
import requests

from sandbox.clinic_setup import import_mapping, workspace_seed
from tests.test_import import Import, _rows
from tests.test_import_references import extracted, splose_sandbox  # noqa: F401  (a fixture)

_names = itertools.count(1)


class DocsClinic:
    """The tenant of a fresh ``examples`` account, shaped like ``tests.conftest.Clinic`` for :class:`Import`."""

    def __init__(self, admin, staging, number: int) -> None:
        self.admin = admin
        self.account = f"docs{number}"
        self.tenant = f"cliniko-docs-{number}"
        self.staging = staging
        admin.create_account(self.account, seed=1, scale="examples")
        self.keys = admin.keys(self.account)

    def truth(self) -> dict[str, dict[str, int]]:
        return {r: {s: n for s, n in states.items() if n} for r, states in self.admin.truth(self.account).items()}


@pytest.fixture
def docs_import(sandbox_admin, cliniko_sandbox, splose_sandbox, tmp_path, monkeypatch) -> Import:
    from splose_resources.staging import StagingStore

    clinic = DocsClinic(sandbox_admin, StagingStore(uri=str(tmp_path / "staging")), next(_names))
    monkeypatch.setenv("CLINIKO_API_URL", f"{cliniko_sandbox.url}/v1")
    monkeypatch.setenv("RATE_LIMIT_STATE_DIR", str(tmp_path / "rate"))
    monkeypatch.setenv(f"CLINIKO_API_KEY__{clinic.tenant.upper().replace('-', '_')}", "unused")
    return Import(clinic, splose_sandbox.url, tmp_path, monkeypatch)


def test_the_documented_example_records_import_completely(docs_import, tmp_path):
    import dagster as dg

    from cliniko_assets.partitions import tenants

    imp = docs_import
    seed = workspace_seed(imp.clinic.admin, imp.clinic.account, imp.clinic.tenant)
    assert seed["locations"][0] == {"title": "Healthy Times", "timezone": "America/New_York"}  # the account's zone
    mapping = import_mapping(imp.clinic.admin, imp.clinic.account, imp.workspace)
    (location,) = {v for v in mapping["locations"].values() if v != "ignore"}
    randy = mapping["practitioners"]["514810972972521916"]
    mapping["locations"].update({"1": location, "3": location})  # the ids the appointments and availability name
    mapping["practitioners"]["1"] = randy
    request = requests.post(
        f"{imp.url}/v1/imports",
        headers={"Authorization": f"Bearer {imp.workspace['key']}"},
        json={"source": "cliniko", "clinikoApiKey": imp.clinic.keys["admin"], "mapping": mapping},
    )
    request.raise_for_status()

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(tenants.name, [imp.clinic.tenant])
        result = imp.run(instance, request.json(), raise_on_error=False)

    assert result.success
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures == []
    assert imp.status(request.json()["id"])["status"] == "complete"
    rows = _rows(result)
    assert all(row["unaccounted"] == 0 and row["rejected"] == 0 for row in rows.values()), rows
    assert {name: (row["cliniko"], row["loaded"]) for name, row in rows.items()} == {
        "locations": (3, 3),  # the business, and the two ids other records name
        "users": (1, 1),
        "practitioners": (4, 3),  # Randy, Andy (inactive), and the ids 1 (mapped) and 456 (a note's)
        "provider_numbers": (2, 2),
        "services": (3, 3),  # Initial Consultation, and a service for each of types 2 and 7
        "clients": (3, 1),  # Peter, and the patients 82 and 123 only links name
        "contacts": (2, 2),
        "appointments": (1, 0),
        "group_appointments": (1, 1),
        "attendees": (2, 0),  # the group's, and the individual appointment's own (as real accounts list)
        "availability": (1, 1),
        "files": (1, 0),
        "progress_note_templates": (2, 1),
        "progress_notes": (1, 0),
    }
    assert rows["appointments"]["skipped_by_reason"] == {"patient 82 not in Cliniko": 1}
    assert rows["attendees"]["skipped_by_reason"] == {"patient 82 not in Cliniko": 2}  # both are patient 82's
    assert rows["progress_notes"]["skipped_by_reason"] == {"patient 123 not in Cliniko": 1}
    assert rows["files"]["skipped_by_reason"] == {"client not imported": 1}
    assert rows["practitioners"]["skipped_by_reason"] == {"not listed by Cliniko, not mapped": 1}

    cliniko = extracted(result)
    assert cliniko["businesses"]["account_settings_from"] == "settings"
    assert cliniko["references"]["by_resource"]["patients"]["not_in_cliniko_ids"] == ["82", "123"]
    assert rows["locations"]["time_zones_from"] == {"account": 3}

    (peter,) = imp.dump("clients")
    assert [(p["type"], p["code"], p["phoneNumber"]) for p in peter["data"]["phoneNumbers"]] == [
        ("Mobile", "+61", "444444444"),
        ("Home", "+61", "399999999"),
    ]
    (availability,) = {a["data"]["timezone"] for a in imp.dump("availability")}
    assert availability == "America/New_York"
    services = {s["externalId"]: s["data"]["name"] for s in imp.dump("services") if s["externalId"]}
    assert services["2"] == "Deleted appointment type 2" and services["7"] == "Deleted appointment type 7"
