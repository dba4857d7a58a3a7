"""The Splose client against the real Splose sandbox on loopback: both layers, batches, files, budgets, errors."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections.abc import Iterator
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import dagster as dg
import pytest
import requests
from requests_toolbelt import MultipartEncoder

from cliniko_assets.changes import RunCrosswalk
from cliniko_assets.sinks import SploseSink
from sandbox.harness import running_server
from splose_resources import splose as splose_module
from splose_resources.http import Secret, TransientError
from splose_resources.splose import (
    CrosswalkEntry,
    FileUpload,
    SploseAuthError,
    SploseConflict,
    SploseFileTooLarge,
    SploseNotFound,
    SploseRequestError,
    SploseResource,
)
from splose_resources.staging import StagingStore
from tests.conftest import initialized
from tests.loopback import JsonHandler, loopback_server

PLATFORM_TOKEN = "client-test-platform-token-4f8a2c9e71"
CLINIKO_KEY = "MS0xMjM0NTY3ODkwMTIzNDU2Nzg5MGFiY2RlZg-au2"
WORKSPACE = "client-clinic"
SERVICES = 55  # more than one v1 page (50)
FILE_CAP_MB = 8
_external_ids = itertools.count(1)


def seed_document() -> dict:
    return {
        "id": WORKSPACE,
        "name": "Client test clinic",
        "locations": [
            {"title": "Main Street", "timezone": "Australia/Sydney"},
            {"title": "Harbour Rooms", "timezone": "Australia/Sydney"},
            {"title": "Old Rooms", "timezone": "Australia/Sydney", "archived": True},
        ],
        "practitioners": [
            {"firstname": "Ann", "lastname": "Lee", "email": "ann@example.com"},
            {"firstname": "Cy", "lastname": "Moss", "email": "cy@example.com"},
            {"firstname": "Bob", "lastname": "Ray", "email": "bob@example.com", "isActive": False},
        ],
        "services": [
            *({"name": f"Service {n:02d}", "duration": 30 + n} for n in range(1, SERVICES)),
            {"name": "Retired service", "duration": 30, "archived": True},
        ],
    }


def start_sandbox(tmp: Path, *options: str):
    seed = tmp / "seed.json"
    seed.write_text(json.dumps(seed_document()))
    args = ["--db", str(tmp / "splose.db"), "--platform-token", PLATFORM_TOKEN, "--seed-workspace", str(seed)]
    return running_server("sandbox.splose", [*args, *options], startup_timeout=30, log_dir=tmp)


@pytest.fixture(scope="module")
def sandbox_url(tmp_path_factory) -> Iterator[str]:
    with start_sandbox(tmp_path_factory.mktemp("splose-client"), "--file-size-cap-mb", str(FILE_CAP_MB)) as server:
        yield server.url


@pytest.fixture(autouse=True)
def one_active_import_at_a_time(request) -> Iterator[None]:
    """Splose allows one active import per workspace, so each test's imports are finished after it."""
    yield
    if "sandbox_url" in request.fixturenames:
        finish_active_imports(request.getfixturevalue("sandbox_url"))


def finish_active_imports(url: str) -> None:
    headers = {"Authorization": f"Bearer {PLATFORM_TOKEN}", "X-Splose-Workspace": WORKSPACE}
    for row in dump(url, "imports"):
        for status in {"submitted": ("running", "complete"), "running": ("complete",)}.get(row["status"], ()):
            patched = requests.patch(
                f"{url}/v1/imports/{row['id']}", json={"status": status}, headers=headers, timeout=10
            )
            patched.raise_for_status()


@pytest.fixture(scope="module")
def described(sandbox_url) -> dict:
    return requests.get(f"{sandbox_url}/_sandbox/workspaces/{WORKSPACE}", timeout=10).json()


@pytest.fixture
def splose(sandbox_url, tmp_path, monkeypatch) -> SploseResource:
    """Configured as the code location does: the token a dg.EnvVar, read when the resource is initialized."""
    monkeypatch.setenv("SPLOSE_PLATFORM_TOKEN", PLATFORM_TOKEN)
    configured = SploseResource(
        api_url=f"{sandbox_url}/v1",
        platform_token=dg.EnvVar("SPLOSE_PLATFORM_TOKEN"),
        rate_limit_state_dir=str(tmp_path / "limits"),
    )
    assert PLATFORM_TOKEN not in repr(configured)
    return initialized(configured)


@pytest.fixture
def import_id(splose) -> int:
    with splose.workspace(WORKSPACE) as ws:
        return ws.imports.create_import("cliniko", Secret(CLINIKO_KEY), {}, ["patients"])["id"]


def dump(url: str, table: str) -> list[dict]:
    return requests.get(f"{url}/_sandbox/workspaces/{WORKSPACE}/dump/{table}", timeout=10).json()["data"]


def platform_stats(url: str) -> dict:
    return requests.get(f"{url}/_sandbox/stats", timeout=10).json()["keys"].get("platform", {})


def put_requests(url: str) -> int:
    routes = requests.get(f"{url}/_sandbox/stats", timeout=10).json()["routes"]
    return sum(n for route, n in routes.items() if route.startswith("PUT "))


def contacts(prefix: str, count: int) -> list[dict]:
    """Contacts with external ids of their own: the crosswalk is per workspace and source, not per import."""
    return [{"externalId": f"{prefix}{n}", "firstName": f"Doc {n}", "lastName": "Smith"} for n in range(1, count + 1)]


def test_v1_lists_follow_every_page_and_show_archived_rows(splose, described):
    with splose.workspace(WORKSPACE) as ws:
        services = list(ws.v1.services())
        active_services = list(ws.v1.services(include_archived=False))
        locations = {row["title"]: row for row in ws.v1.locations()}
        active_locations = [row["title"] for row in ws.v1.locations(include_archived=False)]
        practitioners = {row["email"]: row for row in ws.v1.practitioners()}
        one = ws.v1.get("locations", described["locations"]["Main Street"])

    assert len(services) == SERVICES
    assert [row["id"] for row in services] == sorted({row["id"] for row in services})
    assert [row["name"] for row in services if row["archived"]] == ["Retired service"]
    assert len(active_services) == SERVICES - 1
    assert locations["Old Rooms"]["archived"] is True
    assert sorted(active_locations) == ["Harbour Rooms", "Main Street"]
    assert practitioners["bob@example.com"]["isActive"] is False
    assert practitioners["ann@example.com"]["isActive"] is True
    assert one["title"] == "Main Street"


def test_a_next_page_link_back_to_a_page_already_read_stops_the_listing(tmp_path):
    """A server whose ``nextPage`` leads round in a circle: the listing stops with a clear error instead of
    reading the same pages for ever."""
    asked: list[str] = []

    class Pages(JsonHandler):
        def do_GET(self):
            asked.append(self.path)
            self.answer(200, {"data": [{"id": len(asked)}], "links": {"nextPage": "/v1/services?id_gt=1"}})

    with loopback_server(Pages) as url:
        splose = SploseResource(
            api_url=f"{url}/v1", platform_token=PLATFORM_TOKEN, rate_limit_state_dir=str(tmp_path), max_attempts=1
        )
        with splose.workspace(WORKSPACE) as ws, pytest.raises(SploseRequestError, match="page already read"):
            list(ws.v1.services())
    assert asked == ["/v1/services?include_archived=true", "/v1/services?id_gt=1"]


def test_a_status_the_import_already_has_is_not_a_conflict_and_the_rest_of_the_update_is_sent(tmp_path):
    """A server that refuses repeating a status (409), as a retried PATCH whose answer was lost would meet:
    the client sees the import already holds it and sends the counts and message alone."""
    held = {"id": 7, "status": "complete", "message": "before"}
    patches: list[dict] = []

    class Imports(JsonHandler):
        def do_GET(self):
            self.answer(200, held)

        def do_PATCH(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            patches.append(body)
            if body.get("status") in (held["status"], "submitted"):
                self.answer(409, {"message": f"Import 7 is {held['status']}; cannot move to {body['status']}"})
                return
            held.update(body)
            self.answer(200, held)

    with loopback_server(Imports) as url:
        splose = SploseResource(
            api_url=f"{url}/v1", platform_token=PLATFORM_TOKEN, rate_limit_state_dir=str(tmp_path), max_attempts=1
        )
        with splose.imports() as imports:
            record = imports.update_import(7, status="complete", counts={"rows": 3}, message="after")
            same = imports.update_import(7, status="complete")
            with pytest.raises(SploseConflict, match="cannot move to submitted"):
                imports.update_import(7, status="submitted", message="never")

    assert record == {"id": 7, "status": "complete", "message": "after", "counts": {"rows": 3}}
    assert same["status"] == "complete"
    assert patches == [
        {"status": "complete", "counts": {"rows": 3}, "message": "after"},
        {"counts": {"rows": 3}, "message": "after"},
        {"status": "complete"},
        {"status": "submitted", "message": "never"},
    ]
    assert held["message"] == "after"


def test_v1_calls_keep_to_the_v1_budget(sandbox_url, described, tmp_path, monkeypatch):
    window = 0.5
    splose = SploseResource(
        api_url=f"{sandbox_url}/v1",
        platform_token=PLATFORM_TOKEN,
        v1_requests_per_window=2,
        window_seconds=window,
        rate_limit_state_dir=str(tmp_path),
    )
    sent: list[float] = []
    original = requests.Session.request

    def recording(session, method, url, *args, **kwargs):
        sent.append(time.time())
        return original(session, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", recording)
    with splose.workspace(WORKSPACE) as ws:
        titles = [ws.v1.get("locations", described["locations"]["Main Street"])["title"] for _ in range(6)]
    assert titles == ["Main Street"] * 6
    assert len(sent) == 6
    # A sliding window: any two sends with one between them are a whole window apart (less the limiter's
    # 5 ms margin, which covers the moment between taking a slot and sending), wherever the window starts.
    assert min(later - earlier for earlier, later in zip(sent, sent[2:], strict=False)) > window - 0.005


def test_v1_get_of_a_missing_record_is_not_found(splose):
    with splose.workspace(WORKSPACE) as ws, pytest.raises(SploseNotFound, match="locations 999999"):
        ws.v1.get("locations", 999999)


def test_availabilities_over_more_than_100_days_are_read_in_spans(splose, described, import_id):
    practitioner = described["practitioners"]["ann@example.com"]
    row = {
        "externalId": "avail-1",
        "practitionerId": practitioner,
        "locationId": described["locations"]["Main Street"],
        "weekday": 1,
        "startTime": "09:00",
        "endTime": "17:00",
        "timezone": "Australia/Sydney",
    }
    start, end = date(2025, 1, 1), date(2025, 9, 30)  # 272 days: three v1 calls
    with splose.workspace(WORKSPACE) as ws:
        assert ws.imports.upsert(import_id, "availability", [row]).counts == {"created": 1}
        rows = ws.v1.availabilities(practitioner, start, end)

    mondays = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    mondays = [day.isoformat() for day in mondays if day.isoweekday() == 1]
    assert [r["date"] for r in rows] == mondays
    assert {(r["startTime"], r["endTime"]) for r in rows} == {("09:00", "17:00")}


def test_import_requests_are_created_read_listed_and_updated(splose, described):
    mapping = {"locations": {"11": described["locations"]["Main Street"], "12": "ignore"}}
    with splose.workspace(WORKSPACE) as ws:
        created = ws.imports.create_import("cliniko", Secret(CLINIKO_KEY), mapping, ["patients", "appointments"])
    with splose.imports() as platform:
        fetched = platform.get_import(created["id"])
        submitted = [row["id"] for row in platform.list_imports(status="submitted")]
        updated = platform.update_import(created["id"], status="running", counts={"clients": 3}, message="loading")
        running = [row["id"] for row in platform.list_imports(status="running")]
        still_submitted = [row["id"] for row in platform.list_imports(status="submitted")]
        unchanged_message = platform.update_import(created["id"], counts={"clients": 4})["message"]

    assert created["status"] == "submitted"
    assert created["workspaceId"] == WORKSPACE
    assert created["shard"] == "au2"
    assert fetched["mapping"] == mapping
    assert fetched["include"] == ["patients", "appointments"]
    assert CLINIKO_KEY not in json.dumps(fetched)
    assert created["id"] in submitted
    assert (updated["status"], updated["counts"], updated["message"]) == ("running", {"clients": 3}, "loading")
    assert created["id"] in running and created["id"] not in still_submitted
    assert unchanged_message == "loading"


def test_a_bad_import_request_names_the_field_not_the_key(splose):
    bad_key = "short-key"
    with splose.workspace(WORKSPACE) as ws, pytest.raises(SploseRequestError) as raised:
        ws.imports.create_import("cliniko", Secret(bad_key), {}, [])
    assert "422" in str(raised.value) and "clinikoApiKey" in str(raised.value)
    assert bad_key not in str(raised.value)


def test_an_unknown_import_is_not_found(splose):
    with splose.imports() as platform, pytest.raises(SploseNotFound, match="import 987654"):
        platform.get_import(987654)


def test_credentials_come_back_as_a_secret(splose, import_id):
    with splose.imports() as platform:
        key = platform.credentials(import_id)
    assert isinstance(key, Secret)
    assert key.reveal() == CLINIKO_KEY
    assert CLINIKO_KEY not in repr(key) and CLINIKO_KEY not in str(key) and CLINIKO_KEY not in f"{key}"


def test_upsert_splits_into_batches_of_500_and_aggregates_actions(splose, sandbox_url, import_id):
    with splose.workspace(WORKSPACE) as ws:
        first = ws.imports.upsert(import_id, "contacts", contacts("batch-", 1201))
        changed = contacts("batch-", 1201)
        for record in changed[:600]:
            record["lastName"] = "Jones"
        second = ws.imports.upsert(import_id, "contacts", iter(changed), batch_size=10_000)
        small = ws.imports.upsert(import_id, "contacts", changed[:30], batch_size=7)

    assert (first.batches, first.counts) == (3, {"created": 1201})
    assert (second.batches, second.counts) == (3, {"updated": 600, "unchanged": 601})
    assert (small.batches, small.counts) == (5, {"unchanged": 30})
    assert second.ids == first.ids
    assert first.records[0] == ("batch-1", first.ids["batch-1"], "created")
    assert second.errors == []
    stored = {row["externalId"]: row for row in dump(sandbox_url, "contacts") if row["importId"] == import_id}
    assert len(stored) == 1201


def test_upsert_keeps_each_request_under_its_byte_cap_and_rejects_a_record_too_big_alone(
    splose, sandbox_url, import_id, monkeypatch
):
    """Long records split a batch by size before 500; one Splose refuses even alone (HTTP 413: over the
    sandbox's 32 MB body cap) is reported as rejected and the records after it are still written."""
    monkeypatch.setattr(splose_module, "MAX_BATCH_BYTES", 64 * 1024)
    long = [{**record, "notes": "n" * 20_000} for record in contacts("long-", 10)]
    huge = {**contacts("huge-", 1)[0], "notes": "h" * (33 * 1024 * 1024)}
    after = contacts("after-", 3)
    before = put_requests(sandbox_url)
    with splose.workspace(WORKSPACE) as ws:
        sized = ws.imports.upsert(import_id, "contacts", long)
        alone = ws.imports.upsert(import_id, "contacts", [*after[:1], huge, *after[1:]], batch_size=1)
    puts = put_requests(sandbox_url) - before

    assert (sized.batches, sized.counts) == (4, {"created": 10})  # 20 kB each: three to a 64 kB request
    assert (alone.batches, alone.counts) == (4, {"created": 3, "rejected": 1})
    assert [error.external_id for error in alone.errors] == ["huge-1"]
    assert "HTTP 413" in alone.errors[0].message and "hhh" not in alone.errors[0].message
    assert puts == 8  # one request each: nothing refused was sent again
    stored = {row["externalId"] for row in dump(sandbox_url, "contacts") if row["importId"] == import_id}
    assert stored == {f"long-{n}" for n in range(1, 11)} | {f"after-{n}" for n in range(1, 4)}


def test_rejected_records_are_reported_and_the_rest_are_written(splose, import_id):
    records = [
        {"externalId": "c1", "firstname": "Ada", "lastname": "Byron"},
        {"externalId": "c2", "firstname": "No surname"},
        {"externalId": "c3", "firstname": "Ref", "lastname": "Lost", "referringContactExternalId": "nope"},
        {"externalId": "c4", "firstname": "Ok", "lastname": "Fine"},
    ]
    with splose.workspace(WORKSPACE) as ws:
        result = ws.imports.upsert(import_id, "clients", records)

    assert result.counts == {"created": 2, "rejected": 2}
    assert [record.external_id for record in result.records] == ["c1", "c4"]
    rejected = dict(result.errors)
    assert set(rejected) == {"c2", "c3"}
    assert "lastname" in rejected["c2"]
    assert "referringContactExternalId" in rejected["c3"]


def test_crosswalk_returns_every_id_across_pages(splose, import_id):
    with splose.workspace(WORKSPACE) as ws:
        written = ws.imports.upsert(import_id, "contacts", contacts("cross-", 1050))
        crosswalk = ws.imports.crosswalk(import_id, "contacts")
    assert {external: id for external, id in crosswalk.items() if external.startswith("cross-")} == written.ids
    assert len(written.ids) == 1050
    assert len(crosswalk) >= 1050


@pytest.fixture
def patient(splose, import_id) -> str:
    external_id = f"file-owner-{next(_external_ids)}"
    with splose.workspace(WORKSPACE) as ws:
        ws.imports.upsert(import_id, "clients", [{"externalId": external_id, "firstname": "F", "lastname": "O"}])
    return external_id


def write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        for _ in range(size // (1 << 20)):
            chunk = os.urandom(1 << 20)
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def test_a_large_file_is_streamed_with_its_checksum(splose, sandbox_url, import_id, patient, tmp_path):
    path = tmp_path / "scan.bin"
    sha256 = write_random(path, 6 << 20)
    upload = {
        "external_id": "att-1",
        "client_external_id": patient,
        "content": partial(open, path, "rb"),
        "filename": "Scan 2024.pdf",
        "content_type": "application/pdf",
        "description": "Referral scan",
        "created_at": "2024-03-01T10:00:00Z",
        "sha256": sha256,
    }
    with splose.workspace(WORKSPACE) as ws:
        first = ws.imports.upload_file(import_id, **upload)
        again = ws.imports.upload_file(import_id, **upload)

    assert (first["action"], first["size"], first["sha256"]) == ("created", 6 << 20, sha256)
    assert (again["id"], again["action"]) == (first["id"], "unchanged")
    stored = next(row["data"] for row in dump(sandbox_url, "files") if row["id"] == first["id"])
    assert stored["sha256"] == sha256
    assert stored["filename"] == "Scan 2024.pdf"
    assert stored["contentType"] == "application/pdf"
    assert stored["description"] == "Referral scan"


def test_an_upload_dropped_midway_is_streamed_again_from_the_first_byte(
    splose, import_id, patient, tmp_path, monkeypatch
):
    path = tmp_path / "report.pdf"
    sha256 = write_random(path, 2 << 20)
    real_send = splose_module.send
    seen: list[tuple[str, str]] = []

    def dropping_send(session: requests.Session, method: str, url: str, **kwargs) -> requests.Response:
        body = kwargs.get("data")
        if isinstance(body, MultipartEncoder):
            seen.append((type(body).__name__, session.headers["User-Agent"]))
            if len(seen) == 1:
                body.read(1 << 20)  # half the file went out, then the connection dropped
                raise TransientError("connection dropped")
        return real_send(session, method, url, **kwargs)

    monkeypatch.setattr(splose_module, "send", dropping_send)
    with splose.workspace(WORKSPACE) as ws:
        result = ws.imports.upload_file(
            import_id,
            external_id="att-retry",
            client_external_id=patient,
            content=partial(open, path, "rb"),
            sha256=sha256,
        )
    assert (result["action"], result["size"], result["sha256"]) == ("created", 2 << 20, sha256)
    assert seen == [("MultipartEncoder", "Splose Cliniko importer (integrations@splose.com)")] * 2


def test_a_wrong_checksum_is_refused(splose, import_id, patient, tmp_path):
    path = tmp_path / "letter.pdf"
    path.write_bytes(b"%PDF-1.4 letter")
    with splose.workspace(WORKSPACE) as ws, pytest.raises(SploseRequestError, match="sha256") as raised:
        ws.imports.upload_file(
            import_id,
            external_id="att-2",
            client_external_id=patient,
            content=partial(open, path, "rb"),
            sha256="0" * 64,
        )
    assert not isinstance(raised.value, SploseFileTooLarge)


def test_a_file_over_the_cap_is_too_large(splose, import_id, patient, tmp_path):
    path = tmp_path / "huge.bin"
    write_random(path, (FILE_CAP_MB + 1) << 20)
    with splose.workspace(WORKSPACE) as ws, pytest.raises(SploseFileTooLarge, match="cap"):
        ws.imports.upload_file(
            import_id, external_id="att-3", client_external_id=patient, content=partial(open, path, "rb")
        )


def test_delete_removes_what_the_import_created(splose, sandbox_url, import_id):
    with splose.workspace(WORKSPACE) as ws:
        ws.imports.upsert(import_id, "contacts", [{"externalId": "gone-1", "lastName": "Gone"}])
        deleted = ws.imports.delete_import(import_id)
    assert deleted["status"] == "deleted"
    assert deleted["deletedRecords"] == {"contacts": 1}
    assert not [row for row in dump(sandbox_url, "contacts") if row["externalId"] == "gone-1"]


def test_a_bad_or_missing_token_says_what_to_do_without_showing_it(sandbox_url, described, tmp_path):
    def with_token(token: str) -> SploseResource:
        return SploseResource(api_url=f"{sandbox_url}/v1", platform_token=token, rate_limit_state_dir=str(tmp_path))

    wrong = "not-the-platform-token-93c1d7"
    splose = with_token(wrong)
    assert wrong not in repr(splose) and wrong not in str(splose)
    with splose.imports() as platform, pytest.raises(SploseAuthError) as on_imports:
        list(platform.list_imports())
    with splose.workspace(WORKSPACE) as ws, pytest.raises(SploseAuthError) as on_v1:
        list(ws.v1.locations())
    for error in (on_imports.value, on_v1.value):
        assert "401" in str(error) and "SPLOSE_PLATFORM_TOKEN" in str(error)
        assert wrong not in str(error) and wrong not in repr(error)
    assert "import API" in str(on_imports.value) and "v1 API" in str(on_v1.value)

    # A workspace key, not the platform token.
    with (
        with_token(described["key"]).imports() as platform,
        pytest.raises(SploseAuthError, match=r"403.*import scope") as forbidden,
    ):
        platform.get_import(1)
    assert described["key"] not in str(forbidden.value)

    with pytest.raises(SploseAuthError, match="set the environment variable SPLOSE_PLATFORM_TOKEN"):
        with_token("").token()


@pytest.fixture(scope="module")
def tight_sandbox_url(tmp_path_factory) -> Iterator[str]:
    """Five import-API calls per second, and a delete window that closes almost at once."""
    options = ["--import-rate-limit", "5", "--rate-window", "1", "--delete-window-hours", "0.0001"]
    with start_sandbox(tmp_path_factory.mktemp("splose-tight"), *options) as server:
        yield server.url


@pytest.fixture(scope="module")
def tight_limits(tmp_path_factory) -> str:
    """One limiter state for every client of the tight sandbox, as on one host."""
    return str(tmp_path_factory.mktemp("tight-limits"))


def test_429s_are_waited_out_and_a_budget_within_the_limit_never_meets_one(tight_sandbox_url, tight_limits):
    limits = tight_limits
    careless = SploseResource(
        api_url=f"{tight_sandbox_url}/v1",
        platform_token=PLATFORM_TOKEN,
        import_requests_per_window=1000,
        window_seconds=1,
        rate_limit_state_dir=limits,
    )
    with careless.workspace(WORKSPACE) as ws:
        created = ws.imports.create_import("cliniko", Secret(CLINIKO_KEY), {}, [])
        fetched = [ws.imports.get_import(created["id"])["id"] for _ in range(11)]
    assert fetched == [created["id"]] * 11
    assert platform_stats(tight_sandbox_url)["throttled"] > 0

    # Splose's limit is a sliding window. The client's fixed windows can put a whole budget on each side of
    # a boundary, so only half the server's limit per fixed window is certain never to meet a 429; and the
    # careless calls above must first leave the server's window.
    time.sleep(1.05)
    throttled_before = platform_stats(tight_sandbox_url)["throttled"]
    within = SploseResource(
        api_url=f"{tight_sandbox_url}/v1",
        platform_token=PLATFORM_TOKEN,
        import_requests_per_window=2,
        window_seconds=1,
        rate_limit_state_dir=limits,
    )
    with within.workspace(WORKSPACE) as ws:
        statuses = [ws.imports.get_import(created["id"])["status"] for _ in range(8)]
        titles = sorted(row["title"] for row in ws.v1.locations())
    stats = platform_stats(tight_sandbox_url)
    assert statuses == ["submitted"] * 8
    assert titles == ["Harbour Rooms", "Main Street", "Old Rooms"]
    assert stats["throttled"] == throttled_before


def test_delete_after_the_window_is_a_conflict_with_splose_message(tight_sandbox_url, tight_limits):
    splose = SploseResource(
        api_url=f"{tight_sandbox_url}/v1",
        platform_token=PLATFORM_TOKEN,
        import_requests_per_window=5,
        window_seconds=1,
        rate_limit_state_dir=tight_limits,
    )
    # A workspace of its own: the rate-limit test left its import active in the shared one.
    seeded = requests.post(f"{tight_sandbox_url}/_sandbox/workspaces", json={**seed_document(), "id": "late-clinic"})
    seeded.raise_for_status()
    with splose.workspace("late-clinic") as ws:
        created = ws.imports.create_import("cliniko", Secret(CLINIKO_KEY), {}, [])
        ws.imports.update_import(created["id"], status="running")
        ws.imports.update_import(created["id"], status="complete")
        time.sleep(0.5)  # the window is 0.36 s
        with pytest.raises(SploseConflict, match="deadline was"):
            ws.imports.delete_import(created["id"])


def test_a_file_batch_streams_each_file_and_answers_each_on_its_own(splose, import_id, patient, tmp_path):
    good, other = tmp_path / "good.bin", tmp_path / "other.bin"
    good_sha, other_sha = write_random(good, 300_000), write_random(other, 1_000)
    files = [
        FileUpload(
            "batch-1", patient, partial(open, good, "rb"), filename="a.pdf", sha256=good_sha, content_hash="h-1"
        ),
        FileUpload("batch-2", patient, partial(open, other, "rb"), sha256="0" * 64),
        FileUpload("batch-3", "nobody", partial(open, other, "rb")),
    ]
    with splose.workspace(WORKSPACE) as ws:
        result = ws.imports.upload_files(import_id, files)
        again = ws.imports.upload_files(import_id, files[:1])
        entries = ws.imports.crosswalk_entries(import_id, "files")
        counts = ws.imports.counts(import_id)
    assert set(result.answers) == {"batch-1"} and set(result.errors) == {"batch-2", "batch-3"}
    assert (result.answers["batch-1"]["action"], result.answers["batch-1"]["sha256"]) == ("created", good_sha)
    assert "sha256" in result.errors["batch-2"] and "nobody" in result.errors["batch-3"]
    assert again.answers["batch-1"]["action"] == "unchanged"
    assert entries["batch-1"] == CrosswalkEntry(result.answers["batch-1"]["id"], "h-1")
    assert counts["files"] == len(entries) and counts["clients"] >= 1
    assert other_sha != "0" * 64


def test_each_crosswalk_is_read_once_per_run_and_only_what_changed_is_sent(splose, import_id, sandbox_url, tmp_path):
    records = contacts("once-", 3)

    def sink(run_id: str, writer: str, ws) -> SploseSink:
        return SploseSink(
            ws.imports,
            import_id,
            RunCrosswalk(ws.imports, import_id, StagingStore(uri=str(tmp_path)), "crosswalk-tenant", run_id, writer),
        )

    with splose.workspace(WORKSPACE) as ws:
        first = sink("run-1", "contacts", ws)
        assert first.upsert("contacts", records).counts == {"created": 3}
        first.save()
        before = platform_stats(sandbox_url)["requests"]
        later_step = sink("run-1", "clients", ws)  # a later step of the same run: no request at all
        assert {f"once-{n}" for n in (1, 2, 3)} <= set(later_step.crosswalk("contacts"))
        assert later_step.unchanged("contacts", records[0])
        assert platform_stats(sandbox_url)["requests"] == before
        resync = sink("run-2", "contacts", ws)  # another run reads the crosswalk again, once
        edited = [records[0], {**records[1], "firstName": "Edited"}, records[2]]
        result = resync.upsert("contacts", edited)
        resync.upsert("contacts", edited)
    assert result.counts == {"updated": 1, "unchanged": 2}
    assert platform_stats(sandbox_url)["requests"] == before + 2  # one crosswalk read, one batch of one record
