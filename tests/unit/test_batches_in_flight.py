"""A load keeps several upsert batches on their way at once, and counts every answer whatever its order."""

import threading
import time
from pathlib import Path

import pytest

from cliniko_assets.file_loads import FILES_PER_BATCH, FileBatch
from cliniko_assets.in_flight import InFlight
from cliniko_assets.loading import BATCH, load_records
from cliniko_assets.reconciliation import RowReport
from cliniko_assets.transforms import Skip
from splose_resources.splose import (
    FileBatchResult,
    FileUpload,
    SploseRequestError,
    SploseUnavailable,
    UpsertedRecord,
    UpsertResult,
)


class SlowSink:
    """Answers each batch only once ``together`` batches are in flight (the barrier times out otherwise)."""

    def __init__(self, in_flight: int, together: int, fail_batch: int | None = None) -> None:
        self.in_flight = in_flight
        self._barrier = threading.Barrier(together, timeout=10)
        self._lock = threading.Lock()
        self.calls = self.finished = self.busy = self.most_busy = 0
        self.fail_batch = fail_batch
        self.sizes: list[int] = []

    def unchanged(self, entity: str, record: dict) -> bool:
        return record["externalId"].endswith("-same")

    def stop(self) -> None:  # only an interrupted step calls it
        raise AssertionError("not interrupted")

    def upsert(self, entity: str, records: list[dict]) -> UpsertResult:
        with self._lock:
            self.calls += 1
            number = self.calls
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
            self.sizes.append(len(records))
        try:
            if number <= self._barrier.parties:
                self._barrier.wait()
            if number == self.fail_batch:
                raise SploseUnavailable("Splose's import API kept failing (test)")
            return UpsertResult(
                entity, records=[UpsertedRecord(r["externalId"], i, "created") for i, r in enumerate(records)]
            )
        finally:
            with self._lock:
                self.busy -= 1
                self.finished += 1


class Run:
    def __init__(self, sink: SlowSink) -> None:
        self.sink = sink
        self.advanced = 0
        self.retired: list[tuple[str, str, str]] = []

    def writes(self) -> SlowSink:
        return self.sink

    def retire(self, report: RowReport, entity: str, external_id: str, reason: str) -> None:
        self.retired.append((entity, external_id, reason))

    def advance(self, count: int = 1) -> None:
        self.advanced += count


def outcomes(count: int) -> list:
    made: list = [{"externalId": str(n)} for n in range(count)]
    return [*made, Skip("x1", "deleted in Cliniko"), {"externalId": "7-same"}]


def test_batches_are_sent_side_by_side_and_every_answer_is_counted():
    sink = SlowSink(in_flight=3, together=3)
    run, report, actions = Run(sink), RowReport("clients"), {}
    load_records(run, report, "clients", outcomes(3 * BATCH + 100), actions.__setitem__)

    assert sink.most_busy == 3
    assert sorted(sink.sizes) == [100, BATCH, BATCH, BATCH]
    assert (report.cliniko, report.created, report.unchanged, sum(report.skipped.values())) == (1602, 1600, 1, 1)
    assert len(actions) == 1601 and actions["7-same"] == "unchanged" and actions["1599"] == "created"
    assert run.advanced == 1602
    assert run.retired == [("clients", "x1", "deleted in Cliniko")]  # removed from Splose if it holds it


def test_a_sink_that_takes_one_batch_at_a_time_gets_one():
    sink = SlowSink(in_flight=1, together=1)
    report = RowReport("clients")
    load_records(Run(sink), report, "clients", outcomes(2 * BATCH))
    assert (sink.most_busy, report.created) == (1, 2 * BATCH)


def test_a_failed_batch_fails_the_load_once_every_batch_sent_is_answered():
    sink = SlowSink(in_flight=3, together=3, fail_batch=2)
    report = RowReport("clients")
    with pytest.raises(SploseUnavailable, match="kept failing"):
        load_records(Run(sink), report, "clients", outcomes(5 * BATCH))
    assert sink.finished == sink.calls  # nothing is left on its way when the error reaches the step
    assert report.created == BATCH  # the first batch's answer was counted before the failure surfaced


class SlowFileSink:
    """Answers each file batch only once three are in flight; the second batch is refused as a whole."""

    in_flight = 3

    def __init__(self) -> None:
        self._barrier = threading.Barrier(3, timeout=10)
        self.calls = 0
        self._lock = threading.Lock()

    def held_file(self, upload: FileUpload) -> dict | None:
        return None

    def stop(self) -> None:  # only an interrupted step calls it
        raise AssertionError("not interrupted")

    def upload_files(self, files: list[FileUpload]) -> FileBatchResult:
        with self._lock:
            self.calls += 1
            number = self.calls
        if number <= 3:
            self._barrier.wait()
        if number == 2:
            raise SploseRequestError("Splose refused the batch (test)")
        answers = {f.external_id: {"id": 1, "action": "created", "sha256": f.sha256} for f in files}
        return FileBatchResult(answers, {})


def test_file_batches_are_sent_side_by_side_and_a_refused_batch_counts_its_files_rejected():
    sink = SlowFileSink()
    report = RowReport("files")
    with InFlight[FileBatchResult | SploseRequestError](sink.in_flight, "upload-files") as sent:
        batch = FileBatch(Run(sink), report, sent)
        for n in range(3 * FILES_PER_BATCH + 7):
            batch.add(str(n), FileUpload(str(n), "c1", Path("/none"), sha256="0" * 64), size=10)
        batch.flush()
    assert sink.calls == 4
    assert (report.created, report.rejected) == (2 * FILES_PER_BATCH + 7, FILES_PER_BATCH)


class FileSizesSink:
    """Stores every file at once and keeps the size of each batch it was sent."""

    in_flight = 2

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def held_file(self, upload: FileUpload) -> dict | None:
        return None

    def stop(self) -> None:  # only an interrupted step calls it
        raise AssertionError("not interrupted")

    def upload_files(self, files: list[FileUpload]) -> FileBatchResult:
        self.sizes.append(len(files))
        return FileBatchResult({f.external_id: {"id": 1, "action": "created"} for f in files}, {})


def test_files_handed_over_as_they_download_go_up_once_the_first_of_a_batch_has_waited():
    sink = FileSizesSink()
    report = RowReport("files")
    with InFlight[FileBatchResult | SploseRequestError](sink.in_flight, "upload-files") as sent:
        batch = FileBatch(Run(sink), report, sent, max_wait=0.3)
        for n in range(3):  # moments apart: they wait for more
            batch.add(str(n), FileUpload(str(n), "c1", Path("/none")), size=10)
        assert sink.sizes == []
        time.sleep(0.35)
        batch.add("3", FileUpload("3", "c1", Path("/none")), size=10)  # the first has waited long enough
        batch.max_wait = None  # then from staging: batches fill
        for n in range(4, 4 + FILES_PER_BATCH + 2):
            batch.add(str(n), FileUpload(str(n), "c1", Path("/none")), size=10)
        batch.flush()
    assert sorted(sink.sizes) == [2, 4, FILES_PER_BATCH]  # answered side by side, in any order
    assert report.created == FILES_PER_BATCH + 6 and len(batch.cpu_seconds) == 3


@pytest.mark.parametrize("error", [KeyboardInterrupt, ValueError])
def test_an_interrupted_caller_has_the_calls_on_their_way_give_up_before_it_waits_for_them(error):
    """Interrupted (Dagster's interrupt or a Ctrl-C, not an ordinary error), the caller first tells the calls on
    their way to stop (a sink's stop: its waits for a budget or a retry end), then waits for them: they give up
    rather than finish. An ordinary error waits for them to finish, as before."""
    stopped, ended = threading.Event(), []

    def call() -> str:  # waits as a retry's backoff would, until stopped
        ended.append("gave up" if stopped.wait(2 if error is ValueError else 60) else "finished")
        return ended[-1]

    with pytest.raises(error), InFlight[str](2, "calls", stopped.set) as flight:
        flight.send(call, lambda answer: None)
        flight.send(call, lambda answer: None)
        raise error
    assert ended == (["gave up"] * 2 if error is KeyboardInterrupt else ["finished"] * 2)
