"""Staging on a real S3-protocol server (moto, server mode, on 127.0.0.1): the same promises as a local folder.

Committed data, checkpoints, attachment bytes and the loads' side files all live in the bucket; a write
killed mid-way leaves the committed copy as it was and no part of itself visible; each tenant's data
lives under its own prefix and the purge of a tenant leaves no object of it, nor any unfinished upload.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from cliniko_assets.partitions import InvalidTenant
from splose_resources import storage
from splose_resources.staging import StagingBusy, StagingStore, StagingUnavailable
from tests.conftest import PROJECT
from tests.s3_server import s3_server, s3_staging  # noqa: F401 (fixtures)


def _row(rid: str, updated: str, state: str = "active", **fields) -> dict:
    record = {"id": rid, "updated_at": updated, **fields}
    return {"id": rid, "updated_at": updated, "state": state, "source": "main", "record": json.dumps(record)}


def test_staging_on_s3_commits_resumes_reads_and_purges_like_a_folder(s3_staging, s3_server):
    store, bucket = s3_staging
    batch = store.batch("clinic-a", "patients")
    batch.save_checkpoint({"since": None, "streams": {"main": {"done": [1]}}})
    batch.write_part([_row("1", "2024-01-01T00:00:00Z", name="a"), _row("2", "2024-01-01T00:00:00Z")])
    assert store.batch("clinic-a", "patients").load_checkpoint()["streams"]["main"]["done"] == [1]
    assert batch.commit(replace=True).records == 2
    batch.write_part([_row("1", "2024-02-01T00:00:00Z", name="b"), _row("2", "2024-02-01T00:00:00Z", "deleted")])
    stats = batch.commit(replace=False)
    with store.file_writer("clinic-a", "patient_attachments", "7") as out:
        out.write(b"%PDF-1.4 scan")
    store.write_json("clinic-a", "splose/mapping-3.json", {"locations": {"1": 2}})

    assert (stats.records, stats.by_state) == (2, {"active": 1, "deleted": 1})
    records = {r["id"]: r for part in store.iter_records("clinic-a", "patients") for r in part}
    assert (records["1"]["name"], records["2"]["_state"]) == ("b", "deleted")
    assert batch.load_checkpoint() is None
    with store.file_reader("clinic-a", "patient_attachments", "7") as staged:
        assert staged.read() == b"%PDF-1.4 scan"
    assert store.staged_files("clinic-a", "patient_attachments") == {"7"}
    assert store.read_json("clinic-a", "splose/mapping-3.json") == {"locations": {"1": 2}}
    assert s3_server.keys(bucket) == [
        "staging/clinic-a/cliniko/patient_attachments/files/7",
        "staging/clinic-a/cliniko/patients/data.parquet",
        "staging/clinic-a/splose/mapping-3.json",
    ]

    store.purge("clinic-a")

    assert s3_server.keys(bucket) == []
    assert not store.has_tenant("clinic-a") and not store.has_data("clinic-a", "patients")


def test_one_writer_per_tenant_on_s3_across_processes_and_a_dead_holders_lock_is_taken_over(
    s3_staging, s3_server, monkeypatch
):
    monkeypatch.setattr(storage, "LEASE_SECONDS", 1.5)  # a holder rewrites its lock every 0.5 s
    store, bucket = s3_staging
    other_run = StagingStore(uri=store.uri)  # another process's view of the same bucket
    with store.tenant_lock("clinic-a"):
        with pytest.raises(StagingBusy, match="clinic-a"), other_run.tenant_lock("clinic-a"):
            pass
        with other_run.tenant_lock("clinic-b"):  # other tenants are not held up
            pass
    with other_run.tenant_lock("clinic-a"):
        assert "staging/clinic-a/.lock" in s3_server.keys(bucket)

    # A holder killed without releasing: its lock is rewritten no more, and is taken over after a lease.
    s3_server.client().pipe_file(f"{bucket}/staging/clinic-a/.lock", json.dumps({"at": 0}).encode())
    started = time.monotonic()
    with store.tenant_lock("clinic-a"):
        assert time.monotonic() - started >= 1.5
    assert s3_server.keys(bucket) == []


def test_no_key_on_s3_is_built_from_a_key_that_is_not_a_tenant_slug(s3_staging, s3_server):
    store, bucket = s3_staging
    store.write_json("clinic-b", "splose/mapping-1.json", {})
    reaches = (
        store.has_tenant,
        store.purge,
        lambda t: store.write_json(t, "splose/mapping-1.json", {"x": 1}),
        lambda t: store.read_json(t, "splose/mapping-1.json"),
        lambda t: store.batch(t, "patients"),
    )
    for tenant in ("../clinic-b", "clinic-a/../clinic-b", "", "CLINIC"):
        for reach in reaches:
            with pytest.raises(InvalidTenant):
                reach(tenant)
    assert s3_server.keys(bucket) == ["staging/clinic-b/splose/mapping-1.json"]


# The child: writes a part (or commits one) far larger than one upload block, and stops once the first
# block has reached the server, as a run stops when it is killed there.
KILLED_WRITE = textwrap.dedent(
    """
    import json, os, sys, time
    import s3fs.core
    from splose_resources.staging import StagingStore

    uri, point = sys.argv[1:3]
    batch = StagingStore(uri=uri).batch("clinic-a", "patients")
    big = [
        {"id": str(n), "updated_at": "2024-06-01T00:00:00Z", "state": "active", "source": "main",
         "record": json.dumps({"id": n, "notes": os.urandom(3 << 10).hex()})}
        for n in range(100, 2600)
    ]
    original = s3fs.core.S3File._upload_chunk

    def holding(self, final=False):
        result = original(self, final)
        if self.parts:
            print("mid-write", flush=True)
            time.sleep(600)
        return result

    if point == "commit":
        batch.write_part(big)
    s3fs.core.S3File._upload_chunk = holding
    if point == "commit":
        batch.commit(replace=False)
    else:
        batch.write_part(big)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["part", "commit"])
def test_a_write_killed_mid_way_leaves_the_committed_copy_and_nothing_half_written(
    s3_staging, s3_server, tmp_path, point
):
    store, bucket = s3_staging
    batch = store.batch("clinic-a", "patients")
    batch.write_part([_row("1", "2024-01-01T00:00:00Z"), _row("2", "2024-01-01T00:00:00Z")])
    batch.commit(replace=True)
    committed = s3_server.keys(bucket)

    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITE, store.uri, point],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        stdout=subprocess.PIPE,
    )
    try:
        assert child.stdout.readline() == b"mid-write\n"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    assert s3_server.unfinished_uploads(bucket) != []  # bytes had gone out: the kill came mid-write
    assert sorted(store.read_index("clinic-a", "patients")["id"]) == ["1", "2"]
    whole_part = ["staging/clinic-a/cliniko/patients/incoming/part-000000.parquet"] if point == "commit" else []
    assert s3_server.keys(bucket) == sorted(committed + whole_part)
    # The next run resumes from what is whole: a complete part is folded in, a killed one never existed.
    assert batch.commit(replace=False).records == (2502 if point == "commit" else 2)

    store.purge("clinic-a")
    assert (s3_server.keys(bucket), s3_server.unfinished_uploads(bucket)) == ([], [])


def test_a_bucket_that_is_not_there_is_a_configuration_problem_said_without_a_credential(s3_staging):
    missing = StagingStore(uri="s3://no-such-bucket-here/staging")

    with pytest.raises(StagingUnavailable, match="STAGING_URI names an existing bucket") as raised:
        missing.write_json("clinic-a", "splose/mapping-1.json", {})
    with pytest.raises(StagingUnavailable), missing.tenant_lock("clinic-a"):
        pass
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in str(raised.value)
