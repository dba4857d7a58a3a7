"""The pure parts of paging: reading Cliniko's counts, placing sample pages, the id windows between them."""

from __future__ import annotations

import pytest

from cliniko_assets.paging import keyset_query, sample_pages, windows_between
from splose_resources.cliniko import total_entries


@pytest.mark.parametrize(
    ("body", "count"),
    [
        ({"total_entries": 952}, 952),
        ({"total_entries": "514810972972521916"}, 514810972972521916),  # practitioners.md
        ({"total_entires": 1}, 1),  # businesses.md
        ({"total_entires": "7"}, 7),
        ({"total_entries": None, "total_entires": 3}, 3),
        ({"total_entries": -5}, None),
        ({"total_entries": "many"}, None),
        ({"total_entries": True}, None),
        ({"total_entries": 2.5}, None),
        ({}, None),
    ],
)
def test_counts_are_read_in_every_documented_shape(body, count):
    assert total_entries(body) == count


def test_sample_pages_never_exceed_the_window_budget_whatever_the_count():
    assert sample_pages(None, 100, 100, 6) == []
    assert sample_pages(300, 100, 100, 6) == []  # too short to split: one window
    assert sample_pages(2_001, 100, 100, 4) == [6, 11, 16]
    huge = sample_pages(514810972972521916, 100, 100, 6)
    assert len(huge) == 5 and huge == sorted(set(huge)) and huge[0] > 1


def test_windows_cover_every_id_between_the_pages_kept():
    windows, kept = windows_between(10, [[20, 25], [40, 41]])
    assert (windows, kept) == ([[10, 20], [25, 40], [41, None]], [0, 1])
    # Adjacent ids leave no window to walk; a sample overlapping what precedes it bounds nothing.
    windows, kept = windows_between(10, [[11, 15], [14, 30], [], [50, 60]])
    assert (windows, kept) == ([[15, 50], [60, None]], [0, 3])


def test_keyset_queries_keep_the_routes_own_filters():
    query = keyset_query([("q[]", "archived_at:*")], 100, after=5, before=9)
    assert query == [
        ("q[]", "archived_at:*"),
        ("sort", "id"),
        ("per_page", "100"),
        ("q[]", "id:>5"),
        ("q[]", "id:<9"),
    ]
