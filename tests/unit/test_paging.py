"""The pure parts of paging: reading Cliniko's counts, placing sample pages, the id windows between them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from cliniko_assets.paging import KeysetWalk, PagingAnomaly, keyset_query, sample_pages, windows_between
from splose_resources.cliniko import Page, total_entries


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


class Collection:
    """A list served the way Cliniko pages one (every filter honoured), deleting its oldest live record
    every ``delete_every`` requests, or answering in no particular order when ``ignore_sort``."""

    def __init__(self, size: int, *, delete_every: int = 0, ignore_sort: bool = False, total: int | None = None):
        self.live = set(range(1_000, 1_000 + 3 * size, 3))
        self.delete_every = delete_every
        self.ignore_sort = ignore_sort
        self.total = total
        self.requests = 0

    def fetch(self, params: list[tuple[str, str]]) -> Page:
        self.requests += 1
        if self.delete_every and self.requests % self.delete_every == 0:
            self.live.discard(min(self.live))
        values = dict(params)
        rows = sorted(self.live)
        for _, bound in (p for p in params if p[0] == "q[]"):
            op, value = bound[3], int(bound[4:])
            rows = [r for r in rows if (r > value if op == ">" else r < value)]
        per_page, page = int(values["per_page"]), int(values.get("page", "1"))
        shown = rows[(page - 1) * per_page : page * per_page]
        if self.ignore_sort:
            shown = sorted(shown, key=lambda r: -r)
        return Page(
            records=[{"id": str(r)} for r in shown],
            total_entries=self.total if self.total is not None else len(rows),
            has_next=page * per_page < len(rows),
            server_time=None,
        )


@pytest.fixture
def pool():
    with ThreadPoolExecutor(4) as executor:
        yield executor


def _walk(pool, collection: Collection, taken: list[int], per_page: int = 5) -> KeysetWalk:
    state = {"windows": None, "expected": None, "listed": 0}
    return KeysetWalk(
        collection.fetch,
        [],
        per_page=per_page,
        most=4,
        pool=pool,
        take=lambda records: taken.extend(int(r["id"]) for r in records),
        save=lambda: None,
        state=state,
        label="/things of tenant 'x'",
    )


@pytest.mark.parametrize("delete_every", [0, 1, 2, 3, 5])
def test_no_live_record_is_missed_whatever_is_deleted_during_the_walk(pool, delete_every):
    collection = Collection(200, delete_every=delete_every)
    taken: list[int] = []
    walk = _walk(pool, collection, taken)
    walk.run()
    assert collection.live <= set(taken)
    assert len(taken) == len(set(taken))  # no record listed twice either
    assert walk.shortfall() == 0


def test_a_count_that_is_no_count_costs_a_few_requests_and_is_reported(pool):
    collection = Collection(60, total=514810972972521916)
    taken: list[int] = []
    walk = _walk(pool, collection, taken, per_page=10)
    walk.run()
    assert set(taken) == collection.live
    assert collection.requests <= 6 + 3 + 1  # pages + empty samples + the last page's check
    assert walk.shortfall() == 514810972972521916 - 60


def test_a_list_out_of_id_order_stops_the_route_instead_of_guessing(pool):
    with pytest.raises(PagingAnomaly, match="/things of tenant 'x' out of id order"):
        _walk(pool, Collection(40, ignore_sort=True), []).run()
