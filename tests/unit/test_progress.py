"""Progress lines: done of how many, rate and time left, at a steady cadence; counts only."""

from __future__ import annotations

import logging

from cliniko_assets.progress import ExtractionProgress, LoadProgress, duration
from splose_resources.cliniko import Page


class Lines(logging.Logger):
    def __init__(self) -> None:
        super().__init__("progress-test")
        self.lines: list[str] = []

    def info(self, msg, *args, **kwargs) -> None:
        self.lines.append(msg)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_durations_read_as_a_person_says_them():
    assert [duration(s) for s in (0, 12.4, 200, 3725)] == ["0s", "12s", "3m 20s", "1h 02m"]


def test_a_load_logs_at_most_once_per_interval_with_share_rate_and_time_left():
    log, clock = Lines(), Clock()
    progress = LoadProgress(log, "splose/clients of tenant 'clinic-a'", 1000, every=15, clock=clock)
    for _ in range(10):
        clock.now += 1
        progress.advance(50)  # 50 records a second
    assert log.lines == []  # 10 s: not yet due
    clock.now += 5
    progress.advance(50)
    assert log.lines == ["splose/clients of tenant 'clinic-a': 550 of 1,000 records (55%), 37 records/s, 12s left"]
    clock.now += 1
    progress.advance(50)
    assert len(log.lines) == 1


def page(records: int, total: int | None) -> Page:
    return Page(records=[{"id": i} for i in range(records)], total_entries=total, has_next=False, server_time=None)


def test_an_extraction_counts_records_and_pages_of_what_each_listing_holds():
    log = Lines()
    requests = [0]
    progress = ExtractionProgress(
        log,
        "tenant 'clinic-a'",
        lambda: requests[0],
        budget=(200, 60.0),
        file_resources=frozenset({"patient_attachments"}),
        every=0,
    )
    listing = [("q[]", "archived_at:*"), ("sort", "id"), ("per_page", "100")]
    progress.page("patients", listing, page(100, 250))  # page 1: Cliniko counts 250
    progress.page("patients", [*listing, ("q[]", "id:>100")], page(100, 250))  # a window: its count is no total
    progress.page("patients", [("q[]", "archived_at:*"), ("sort", "id"), ("per_page", "1"), ("page", "1")], page(1, 9))
    progress.page("contacts", [("sort", "id"), ("per_page", "100")], page(40, 40))
    progress.page("patient_attachments", [("sort", "id"), ("per_page", "100")], page(10, 10))
    progress.file("patient_attachments", 2_500_000)
    requests[0] = 5
    progress.tick()
    (line,) = log.lines
    assert line.startswith(
        "Extraction of tenant 'clinic-a': 250 of ~300 records (83%), 4 of ~5 pages, 1 files (2.5 MB); 5 requests"
    )
    assert "left at the request budget" in line
    # Left: one page and nine downloads, which this window's budget still holds: at the rate so far.
    assert progress.time_left(5, 10, 2.0) == "4s"
    # With 195 of a window's 200 spent, the last of them waits for the next window, a minute after the first.
    assert progress.time_left(195, 10, 15.0) == "45s"
    assert progress.time_left(450, 100, 70.0) == "50s"  # 550 requests: the third window opens at 120 s
    with progress:
        pass
    assert log.lines[-1].startswith("Extraction of tenant 'clinic-a' done: 250 of ~300 records")
