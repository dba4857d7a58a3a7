"""The collector's settings for bulk work hold inside a step and are undone after it, even when it fails."""

from __future__ import annotations

import gc

import pytest

from splose_resources.collector import YOUNG_THRESHOLD, bulk_work


def test_bulk_work_freezes_what_the_process_holds_and_undoes_it_afterwards():
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    with bulk_work():
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 1000  # the modules and objects the process held at the start
        cycle: list = []
        cycle.append(cycle)  # garbage made during the step is still collected
        del cycle
        assert gc.collect() >= 1
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_bulk_work_is_undone_when_the_step_fails():
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), bulk_work():
        raise RuntimeError("the step failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
