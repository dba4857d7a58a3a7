"""Files, rate limits, the delete window and durability: each on a server started for the purpose."""

from __future__ import annotations

import hashlib
import io
import json
import time

import requests

from tests.splose_sandbox.conftest import seed_document


def upload(workspace, import_id: int, external_id: str, content: bytes, **fields) -> requests.Response:
    form = {"externalId": external_id, "clientExternalId": "1", "filename": "scan.bin", **fields}
    return workspace.platform.post(
        f"{workspace.splose.url}/v1/imports/{import_id}/files",
        data=form,
        files={"file": ("scan.bin", io.BytesIO(content), "application/octet-stream")},
        timeout=60,
    )


def with_client(workspace) -> dict:
    imp = workspace.start_import()
    workspace.upsert(imp["id"], "clients", [{"externalId": "1", "firstname": "Jo", "lastname": "Doe"}])
    return imp


def test_file_upload_checks_the_checksum_and_is_idempotent(workspace):
    imp = with_client(workspace)
    content = bytes(range(256)) * 20_000  # 5 MB, more than a multipart chunk
    digest = hashlib.sha256(content).hexdigest()
    created = upload(workspace, imp["id"], "att1", content, sha256=digest, contentType="image/tiff")
    assert created.status_code == 200, created.text
    assert created.json()["action"] == "created"
    assert (created.json()["size"], created.json()["sha256"]) == (len(content), digest)
    assert (
        upload(workspace, imp["id"], "att1", content, sha256=digest, contentType="image/tiff").json()["action"]
        == "unchanged"
    )
    assert upload(workspace, imp["id"], "att1", content + b"!", contentType="image/tiff").json()["action"] == "updated"

    mismatch = upload(workspace, imp["id"], "att2", content, sha256="0" * 64)
    assert mismatch.status_code == 422
    assert "sha256" in mismatch.json()["errors"]
    no_client = upload(workspace, imp["id"], "att3", b"x", clientExternalId="nobody")
    assert no_client.status_code == 422

    stored = workspace.dump("files")
    assert [(row["externalId"], row["data"]["contentType"], row["data"]["size"]) for row in stored] == [
        ("att1", "image/tiff", len(content) + 1)
    ]
    crosswalk = workspace.platform.get(f"{workspace.splose.url}/v1/imports/{imp['id']}/records/files", timeout=5)
    assert crosswalk.json()["data"] == [{"externalId": "att1", "id": created.json()["id"], "contentHash": None}]


def upload_batch(workspace, import_id: int, entries: list[dict], contents: dict[str, bytes]) -> requests.Response:
    files = {
        part: (f"{part}.bin", io.BytesIO(content), "application/octet-stream") for part, content in contents.items()
    }
    return workspace.platform.post(
        f"{workspace.splose.url}/v1/imports/{import_id}/files/batch",
        data={"manifest": json.dumps(entries)},
        files=files,
        timeout=60,
    )


def test_a_file_batch_stores_or_refuses_each_file_on_its_own(workspace):
    imp = with_client(workspace)
    good, other = b"first file" * 1000, b"second"
    entries = [
        {"externalId": "f1", "clientExternalId": "1", "part": "a", "sha256": hashlib.sha256(good).hexdigest(),
         "contentHash": "h1"},
        {"externalId": "f2", "clientExternalId": "1", "part": "b", "sha256": "0" * 64},
        {"externalId": "f3", "clientExternalId": "nobody", "part": "b"},
        {"externalId": "f4", "clientExternalId": "1", "part": "missing"},
        {"externalId": "f1", "clientExternalId": "1", "part": "b"},
    ]  # fmt: skip
    answer = upload_batch(workspace, imp["id"], entries, {"a": good, "b": other})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [(r["externalId"], r["action"], r["size"]) for r in body["results"]] == [("f1", "created", len(good))]
    errors = {e["externalId"]: e["message"] for e in body["errors"]}
    assert set(errors) == {"f2", "f3", "f4", "f1"}
    assert "sha256" in errors["f2"] and "nobody" in errors["f3"] and "file" in errors["f4"]
    assert "more than once" in errors["f1"]
    again = upload_batch(workspace, imp["id"], entries[:1], {"a": good}).json()
    assert [r["action"] for r in again["results"]] == ["unchanged"]
    crosswalk = workspace.platform.get(f"{workspace.splose.url}/v1/imports/{imp['id']}/records/files", timeout=5)
    assert [(row["externalId"], row["contentHash"]) for row in crosswalk.json()["data"]] == [("f1", "h1")]
    too_many = [{"externalId": str(n), "clientExternalId": "1", "part": "a"} for n in range(101)]
    assert upload_batch(workspace, imp["id"], too_many, {"a": good}).status_code == 413
    assert upload_batch(workspace, imp["id"], [], {"a": good}).json() == {"results": [], "errors": []}


def test_file_over_the_size_cap_is_413(start_splose):
    with start_splose("--file-size-cap-mb", "0.5") as splose:
        workspace = splose.seed()
        imp = with_client(workspace)
        too_big = upload(workspace, imp["id"], "big", b"x" * (600 * 1024))
        assert too_big.status_code == 413
        assert "cap" in too_big.json()["message"]
        assert upload(workspace, imp["id"], "small", b"x" * (400 * 1024)).status_code == 200
        assert [row["externalId"] for row in workspace.dump("files")] == ["small"]


def hammer(session: requests.Session, url: str, seconds: float) -> list[tuple[float, float, requests.Response]]:
    """Call ``url`` back to back for ``seconds``: (sent, answered, response) per call."""
    calls = []
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        sent = time.monotonic()
        response = session.get(url, timeout=5)
        calls.append((sent, time.monotonic(), response))
    return calls


def most_admitted_in_one_window(calls: list[tuple[float, float, requests.Response]], window: float) -> int:
    """The most admitted calls that certainly reached the server within one window span of each other.

    The server admitted a call between its send and its answer, so calls answered before ``window``
    after another was sent were admitted less than ``window`` apart.
    """
    admitted = [(sent, answered) for sent, answered, response in calls if response.status_code == 200]
    return max(sum(1 for s, a in admitted if s >= first and a < first + window) for first, _ in admitted)


def test_rate_limits_are_sliding_windows_per_key(start_splose):
    with start_splose("--v1-rate-limit", "3", "--import-rate-limit", "4", "--rate-window", "1") as splose:
        workspace = splose.seed()
        other = splose.seed()
        v1_calls = hammer(workspace.v1, f"{splose.url}/v1/locations", 2.6)
        assert other.v1.get(f"{splose.url}/v1/locations", timeout=5).status_code == 200  # its own budget
        platform_calls = hammer(splose.as_platform(), f"{splose.url}/v1/imports", 2.6)

        for calls, limit in ((v1_calls, 3), (platform_calls, 4)):
            assert {response.status_code for _, _, response in calls} == {200, 429}
            assert most_admitted_in_one_window(calls, 1.0) <= limit
            assert sum(response.status_code == 200 for _, _, response in calls) >= 2 * limit
        assert all("Retry-After" not in r.headers for _, _, r in v1_calls if r.status_code == 429)
        waits = {int(r.headers["Retry-After"]) for _, _, r in platform_calls if r.status_code == 429}
        assert waits == {1}
        stats = requests.get(f"{splose.url}/_sandbox/stats", timeout=5).json()["keys"]
        assert stats[f"workspace:{workspace.id}"]["peakInAnyWindow"] == 3
        assert stats["platform"]["peakInAnyWindow"] == 4
        assert stats["platform"]["throttled"] == sum(r.status_code == 429 for _, _, r in platform_calls)
        assert workspace.described["key"] not in str(stats)


def test_the_platform_token_on_v1_keeps_to_v1s_limit_per_workspace(start_splose):
    """v1's "60 calls per minute per key" holds for the platform token too, per workspace it acts for."""
    with start_splose("--v1-rate-limit", "3", "--import-rate-limit", "100000", "--rate-window", "1") as splose:
        workspace, other = splose.seed(), splose.seed()
        calls = hammer(splose.as_platform(workspace.id), f"{splose.url}/v1/locations", 2.6)
        assert other.v1.get(f"{splose.url}/v1/locations", timeout=5).status_code == 200  # its own v1 budget
        assert splose.as_platform(other.id).get(f"{splose.url}/v1/locations", timeout=5).status_code == 200

        assert {response.status_code for _, _, response in calls} == {200, 429}
        assert most_admitted_in_one_window(calls, 1.0) <= 3
        assert sum(response.status_code == 200 for _, _, response in calls) >= 6
        assert all("Retry-After" not in r.headers for _, _, r in calls if r.status_code == 429)


def test_a_fixed_window_would_be_caught_by_the_rate_limit_check():
    """The check above fails for a limiter that lets a full window through on each side of a boundary."""
    ok, throttled = requests.Response(), requests.Response()
    ok.status_code, throttled.status_code = 200, 429
    boundary_burst = [(0.90 + n * 0.01, 0.905 + n * 0.01, ok) for n in range(3)]
    boundary_burst += [(0.95, 0.955, throttled)]
    boundary_burst += [(1.00 + n * 0.01, 1.005 + n * 0.01, ok) for n in range(3)]
    assert most_admitted_in_one_window(boundary_burst, 1.0) == 6


def test_delete_removes_what_the_import_created_until_the_window_closes(start_splose):
    with start_splose("--delete-window-hours", str(1.5 / 3600)) as splose:
        workspace = splose.seed()
        kept = with_client(workspace)
        workspace.finish(kept["id"])
        imp = workspace.start_import()
        workspace.upsert(imp["id"], "clients", [{"externalId": "2", "firstname": "Al", "lastname": "Ive"}])
        workspace.upsert(imp["id"], "clients", [{"externalId": "1", "firstname": "Jo", "lastname": "Changed"}])
        assert upload(workspace, imp["id"], "f", b"bytes").status_code == 200
        url = f"{splose.url}/v1/imports/{imp['id']}"

        deleted = workspace.platform.delete(url, timeout=5)
        assert deleted.status_code == 200
        assert deleted.json()["status"] == "deleted"
        assert deleted.json()["deletedRecords"] == {"clients": 1, "files": 1}
        assert deleted.json()["cascadedRecords"] == {}
        assert [row["externalId"] for row in workspace.dump("clients")] == ["1"]
        assert workspace.dump("files") == []
        assert list((splose.db.parent / "splose-files" / workspace.id).iterdir()) == []
        assert workspace.put(imp["id"], "clients", []).status_code == 409

        kept_url = f"{splose.url}/v1/imports/{kept['id']}"
        time.sleep(1.6)
        late = workspace.platform.delete(kept_url, timeout=5)
        assert late.status_code == 409
        deadline = workspace.platform.get(kept_url, timeout=5).json()["deleteDeadline"]
        assert deadline in late.json()["message"]
        assert [row["externalId"] for row in workspace.dump("clients")] == ["1"]


def test_restart_on_the_same_database_loses_nothing(start_splose, tmp_path):
    db = tmp_path / "durable.db"
    seed_file = tmp_path / "seed.json"
    document = {**seed_document("durable-clinic"), "key": "durable-clinic-key-0123456789"}
    seed_file.write_text(json.dumps([document]))
    with start_splose("--seed-workspace", str(seed_file), db=db) as splose:
        workspace = splose.seed(id="second-clinic")
        imp = with_client(workspace)
        assert upload(workspace, imp["id"], "f", b"kept bytes").status_code == 200
        durable = splose.as_key("durable-clinic-key-0123456789").get(f"{splose.url}/v1/locations", timeout=5)
        assert durable.status_code == 200
        before = workspace.v1.get(f"{splose.url}/v1/patients", timeout=5).json()
    with start_splose("--seed-workspace", str(seed_file), db=db) as splose:
        workspace.splose = splose
        assert workspace.v1.get(f"{splose.url}/v1/patients", timeout=5).json()["data"] == before["data"]
        assert workspace.platform.get(f"{splose.url}/v1/imports/{imp['id']}", timeout=5).status_code == 200
        assert (
            workspace.upsert(imp["id"], "clients", [{"externalId": "1", "firstname": "Jo", "lastname": "Doe"}])[
                "results"
            ][0]["action"]
            == "unchanged"
        )
        assert upload(workspace, imp["id"], "f", b"kept bytes").json()["action"] == "unchanged"
        again = splose.as_key("durable-clinic-key-0123456789").get(f"{splose.url}/v1/locations", timeout=5)
        assert again.json()["data"] == durable.json()["data"]
