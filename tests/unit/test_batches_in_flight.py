"""A load keeps several upsert batches on their way at once, and counts every answer whatever its order."""

import threading

import pytest

from cliniko_assets.loading import BATCH, load_records
from cliniko_assets.reconciliation import RowReport
from cliniko_assets.transforms import Skip
from splose_resources.splose import SploseUnavailable, UpsertedRecord, UpsertResult


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

    def writes(self) -> SlowSink:
        return self.sink

    def advance(self, count: int = 1) -> None:
        self.advanced += count


def outcomes(count: int) -> list:
    made: list = [{"externalId": str(n)} for n in range(count)]
    return [*made, Skip("x1", "deleted in Cliniko"), {"externalId": "7-same"}]


def test_batches_are_sent_side_by_side_and_every_answer_is_counted():
    sink = SlowSink(in_flight=3, together=3)
    run, report, actions = Run(sink), RowReport("clients"), {}
    load_records(run, report, "clients", outcomes(3 * BATCH + 100), actions)

    assert sink.most_busy == 3
    assert sorted(sink.sizes) == [100, BATCH, BATCH, BATCH]
    assert (report.cliniko, report.created, report.unchanged, sum(report.skipped.values())) == (1602, 1600, 1, 1)
    assert len(actions) == 1601 and actions["7-same"] == "unchanged" and actions["1599"] == "created"
    assert run.advanced == 1602


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
