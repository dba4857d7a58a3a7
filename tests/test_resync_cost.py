"""A re-sync costs what changed: Splose and Cliniko requests of an import of a tiny clinic, counted by the
sandboxes themselves (per route), for a first import, an unchanged re-sync and a re-sync with a few changes."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import requests

from cliniko_assets.file_loads import FILES_PER_BATCH
from cliniko_assets.row_loads import REPEATS_ALONE
from tests.test_import import Import, _rows, splose_sandbox, tiny_import  # noqa: F401 (fixtures)

UNCHANGED_SPLOSE_LIMIT = 30
FILE_BATCHES = "POST /v1/imports/{id}/files/batch"
BATCH = 500


def over_one_per_route(cliniko: Counter) -> dict[str, int]:
    """Routes asked more than once (a fetch by id is one route per id). Contacts and attachments, which Cliniko
    deletes without a trace, are counted with their newest records: one request too."""
    return {path: n for path, n in cliniko.items() if n > 1 and not path.endswith("/:id")}


def splose_routes(url: str) -> Counter:
    response = requests.get(f"{url}/_sandbox/stats", timeout=30)
    response.raise_for_status()
    return Counter(response.json()["routes"])


def cliniko_paths(clinic) -> Counter:
    return clinic.admin.requests_by_route(clinic.account, "admin")


class Costs:
    """Requests each sandbox answered for one run of the import."""

    def __init__(self, tiny_import: Import) -> None:
        self.tiny_import = tiny_import

    def run(self, instance, request: dict) -> tuple[dict, Counter, Counter]:
        splose_before = splose_routes(self.tiny_import.url)
        cliniko_before = cliniko_paths(self.tiny_import.clinic)
        result = self.tiny_import.run(instance, request)
        assert result.success
        splose = splose_routes(self.tiny_import.url) - splose_before
        cliniko = cliniko_paths(self.tiny_import.clinic) - cliniko_before
        return _rows(result), splose, cliniko


@pytest.fixture
def costs(tiny_import) -> Costs:
    return Costs(tiny_import)


def test_an_unchanged_resync_sends_nothing_and_costs_a_few_requests(tiny_import, costs, instance):
    request = tiny_import.submit()
    first_rows, first, _ = costs.run(instance, request)
    assert first_rows["files"]["created"] == first_rows["files"]["loaded"] > 0
    # Batched: up to 50 a request, and as the bytes download a batch goes at least every STREAM_SECONDS.
    assert (
        math.ceil(first_rows["files"]["loaded"] / FILES_PER_BATCH)
        <= first[FILE_BATCHES]
        < first_rows["files"]["loaded"]
    )
    stored_before = {f["externalId"]: f["updatedAt"] for f in tiny_import.dump("files")}

    rows, splose, cliniko = costs.run(instance, request)

    assert sum(splose.values()) <= UNCHANGED_SPLOSE_LIMIT, dict(splose)
    assert splose["PUT /v1/imports/{id}/records/{entity}"] == 0, dict(splose)
    # The import is read by the two first extraction steps, the mapping check and the report; the loads and
    # step patient_files rely on the mapping check's binding of this run (and on Splose's own checks of each call).
    assert splose["GET /v1/imports/{id}"] == 4, dict(splose)
    assert splose[FILE_BATCHES] == splose["POST /v1/imports/{id}/files"] == 0, "file bytes were uploaded again"
    assert over_one_per_route(cliniko) == {}, dict(cliniko)
    assert [path for path in cliniko if path.endswith("/:id")] == [], "records found by id were asked for again"
    assert [path for path in cliniko if path.endswith("/content")] == [], "attachment bytes were downloaded again"
    print(f"unchanged re-sync: Splose {sum(splose.values())} {dict(splose)}")
    print(f"unchanged re-sync: Cliniko {sum(cliniko.values())} {dict(cliniko)}")
    for name, row in rows.items():
        assert (row["created"], row["updated"]) == (0, 0), name
        assert row["unchanged"] == first_rows[name]["loaded"], name
        assert row["unaccounted"] == 0, name
    assert {f["externalId"]: f["updatedAt"] for f in tiny_import.dump("files")} == stored_before


@pytest.mark.slow
def test_a_resync_with_a_few_changes_sends_only_those(tiny_import, costs, instance):
    request = tiny_import.submit()
    first_rows, _, _ = costs.run(instance, request)
    clinic = tiny_import.clinic
    changed = clinic.admin.mutate(
        clinic.account, seed=3, updates=4, deletes=1, resources=["patients", "individual_appointments"]
    )["changed"]
    changed_records = sum(len(ids) for kinds in changed.values() for ids in kinds.values())
    assert changed_records >= 3

    rows, splose, cliniko = costs.run(instance, request)

    changed_files = rows["files"]["created"] + rows["files"]["updated"]
    allowed = 2 * (changed_records / BATCH + changed_files + UNCHANGED_SPLOSE_LIMIT)
    assert sum(splose.values()) <= allowed, dict(splose)
    assert changed_files == 0
    # Sent: the changed records, the group appointments a deleted patient attended (without them now), and the
    # repeats of a series whose first appointment was the deleted patient's (each now alone).
    groups = ("group_appointments", "attendees")
    sent = sum(row["created"] + row["updated"] for name, row in rows.items() if name not in groups)
    alone = rows["appointments"][REPEATS_ALONE] - first_rows["appointments"][REPEATS_ALONE]
    assert 0 < sent <= changed_records + alone
    regrouped = rows["group_appointments"]["created"] + rows["group_appointments"]["updated"]
    assert regrouped <= rows["attendees"]["skipped_by_reason"].get("client not imported", 0)
    # A deleted patient leaves Splose, and what Splose held of theirs before them.
    deleted = set(changed.get("patients", {}).get("deleted", []))
    assert deleted and not deleted & {row["externalId"] for row in tiny_import.dump("clients")}
    assert rows["clients"].get("to_remove", 0) == len(deleted)
    # A patient deleted in Cliniko is reported as such, never as loaded or lost.
    deleted_patients = len(changed.get("patients", {}).get("deleted", []))
    deleted_before = first_rows["clients"]["skipped_by_reason"].get("deleted in Cliniko", 0)
    assert rows["clients"]["skipped_by_reason"].get("deleted in Cliniko", 0) == deleted_before + deleted_patients
    for name, row in rows.items():
        assert row["unaccounted"] == 0, name
        assert row["cliniko"] == row["loaded"] + row["skipped"] + row["rejected"], name
    assert over_one_per_route(cliniko) == {}, dict(cliniko)
    print(f"re-sync with {changed_records} changed: Splose {sum(splose.values())} {dict(splose)}")
