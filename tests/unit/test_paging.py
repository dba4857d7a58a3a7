"""The pure parts of paging: reading Cliniko's counts, placing sample pages, the id windows between them."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from cliniko_assets.paging import (
    PAGE_PASSES,
    KeysetWalk,
    PagingAnomaly,
    keyset_query,
    sample_pages,
    windows_between,
)
from splose_resources.cliniko import ClinikoRequestError, Page, total_entries


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
    every ``delete_every`` requests (the first ``deletions`` of them, when set), or answering in no particular
    order when ``ignore_sort``. With ``refuse_bounds`` an id bound is a 400, as a String-typed ``id`` filter
    would be; ``revive`` records come back into the list (unarchived) at the request numbered by each;
    ``ignore_page`` answers page 1 whatever page is asked; with ``creates`` a record is created with each
    deletion. :meth:`deleted_count` is its deletion feed's count."""

    def __init__(
        self,
        size: int,
        *,
        delete_every: int = 0,
        deletions: int | None = None,
        ignore_sort: bool = False,
        total: int | None = None,
        refuse_bounds: bool = False,
        revive: dict[int, int] | None = None,
        ignore_page: bool = False,
        creates: bool = False,
    ):
        self.live = set(range(1_000, 1_000 + 3 * size, 3))
        self.delete_every = delete_every
        self.deletions = deletions
        self.ignore_sort = ignore_sort
        self.total = total
        self.refuse_bounds = refuse_bounds
        self.revive = revive or {}
        self.ignore_page = ignore_page
        self.creates = creates  # each deletion comes with a creation (a new, highest id): the count holds
        self.requests = 0
        self.deleted: list[int] = []

    def fetch(self, params: list[tuple[str, str]]) -> Page:
        self.requests += 1
        if self.refuse_bounds and any(p[0] == "q[]" for p in params):
            raise ClinikoRequestError("Cliniko refused the request (400)", status=400)
        if self.requests in self.revive:
            self.live.add(self.revive[self.requests])
        deleting = self.deletions is None or len(self.deleted) < self.deletions
        if self.delete_every and self.requests % self.delete_every == 0 and deleting:
            self.deleted.append(min(self.live))
            self.live.discard(self.deleted[-1])
            if self.creates:
                self.live.add(max(self.live) + 3)
        values = dict(params)
        rows = sorted(self.live)
        if self.ignore_page:
            values["page"] = "1"
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

    def deleted_count(self) -> int:
        return len(self.deleted)


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


def test_a_route_that_refuses_id_bounds_is_listed_by_page_number_completely(pool):
    collection = Collection(200, refuse_bounds=True)
    taken: list[int] = []
    walk = _walk(pool, collection, taken)
    walk.run()
    assert set(taken) == collection.live
    assert walk.state["by_page"]["settled"] is True and walk.state["by_page"]["pass"] == 1
    assert walk.state["listed"] == 200 and walk.shortfall() == 0


def test_a_deletion_while_listed_by_page_walks_the_route_again_until_its_count_holds(pool):
    # One deletion early in the first pass moves every later record one place back: the record that was
    # first on the next page is never read in that pass. The count changed, so the route is walked again.
    collection = Collection(200, refuse_bounds=True, delete_every=20, deletions=1)
    walk = _walk(pool, collection, [])
    by_pass: dict[int, set[int]] = {}
    walk.take = lambda records: by_pass.setdefault(walk.state.get("by_page", {}).get("pass", 0), set()).update(
        int(r["id"]) for r in records
    )
    walk.run()
    assert collection.live - by_pass[1]  # the first pass by page missed a live record ...
    assert collection.live <= by_pass[2]  # ... the second found it
    assert walk.state["by_page"]["pass"] == 2 and walk.state["by_page"]["settled"] is True
    assert walk.shortfall() == 0


def test_a_deletion_that_a_creation_hides_from_the_count_walks_the_route_again_by_the_count_of_deletions(pool):
    # A deletion early in the pass and a creation with it: the count holds, yet a record moved past the pages read.
    missed = Collection(200, refuse_bounds=True, delete_every=20, deletions=1, creates=True)
    taken: list[int] = []
    walk = _walk(pool, missed, taken)
    walk.run()  # without a count of deletions the pass looks settled
    assert missed.live - set(taken) and walk.state["by_page"]["settled"] is True
    assert walk.state["by_page"]["pass"] == 1 and "unchecked" not in walk.state["by_page"]

    collection = Collection(200, refuse_bounds=True, delete_every=20, deletions=1, creates=True)
    taken = []
    walk = _walk(pool, collection, taken)
    walk.deleted = collection.deleted_count
    walk.run()
    assert collection.live <= set(taken) and len(collection.deleted) == 1
    assert walk.state["by_page"]["pass"] == 2 and walk.state["by_page"]["settled"] is True
    assert walk.state["by_page"]["deleted"] == 1 and walk.shortfall() == 0


@pytest.mark.parametrize(("size", "unchecked"), [(200, True), (5, False)])
def test_a_listing_by_page_without_a_count_of_deletions_is_marked_unchecked_past_one_page(pool, size, unchecked):
    collection = Collection(size, refuse_bounds=True)
    walk = _walk(pool, collection, [])
    walk.deleted = lambda: None  # no deletion feed, or one that gives no count
    walk.run()  # five records: one page by number (and an empty one), where nothing can move past what was read
    assert walk.state["by_page"]["settled"] is True and walk.state["by_page"].get("unchecked", False) is unchecked


def test_a_pass_resumed_without_its_count_of_deletions_is_unchecked_not_given_a_late_one(pool):
    # A checkpoint written before the count was kept: the pass goes on from page 3 and is reported unchecked (a
    # count asked now would hide deletions from before the resume).
    collection = Collection(200, refuse_bounds=True)
    asked: list[int] = []
    walk = _walk(pool, collection, [])
    walk.deleted = lambda: asked.append(1) or 0
    walk.state.update(
        {
            "expected": 200,
            "listed": 10,
            "by_page": {"pass": 1, "next": 3, "count": 200, "changed": False, "after": 1027},
        }
    )
    walk.run()
    assert walk.state["by_page"]["settled"] is True and walk.state["by_page"]["unchecked"] is True
    assert asked == [] and walk.state["listed"] == 200


def test_a_route_whose_count_never_holds_is_reported_unsettled_after_the_last_pass(pool):
    collection = Collection(200, refuse_bounds=True, delete_every=7)
    walk = _walk(pool, collection, [])
    walk.run()
    assert walk.state["by_page"]["pass"] == PAGE_PASSES and walk.state["by_page"]["settled"] is False


def test_a_record_back_in_the_list_while_listed_by_page_is_taken_once(pool):
    collection = Collection(60, refuse_bounds=True)
    revived = 1_001  # between the first two live ids: every later record moves one place on
    collection.revive = {8: revived}
    taken: list[int] = []
    walk = _walk(pool, collection, taken)
    walk.run()
    assert set(taken) == collection.live and revived in taken
    assert walk.state["listed"] == len(collection.live)  # the last pass took each record once
    assert walk.state["by_page"]["pass"] == 2 and walk.state["by_page"]["settled"] is True


def test_pages_that_ignore_the_page_number_stop_the_route_instead_of_looping(pool):
    with pytest.raises(PagingAnomaly, match="repeating the one before"):
        _walk(pool, Collection(40, refuse_bounds=True, ignore_page=True), []).run()


def test_a_refusal_drops_the_widening_filters_it_can_be_about_and_never_for_id_bounds():
    from cliniko_assets.paging import RefusedFilters

    def refused(message: str, params: list[tuple[str, str]], status: int = 400) -> list[str]:
        return RefusedFilters().note("/things", ClinikoRequestError(message, status=status), params)

    widening = [("q[]", "archived_at:*"), ("q[]", "cancelled_at:*")]
    bounded = [*widening, ("sort", "id"), ("q[]", "id:>5")]
    assert refused("Unknown filter field 'archived_at'", widening) == ["archived_at:*"]
    assert refused("Bad Request", widening) == ["archived_at:*", "cancelled_at:*"]  # it can be about either
    # A window's request: the same query without its bounds was answered, so the bounds are what was refused.
    assert refused("Bad Request", bounded) == []
    assert refused("Invalid operator '>' for the String filter 'id'", bounded) == []
    assert refused("Unknown filter field 'cancelled_at'", bounded) == ["cancelled_at:*"]
    assert refused("Unknown filter field 'archived_at'", widening, status=422) == []


def test_a_walk_by_page_stopped_midway_resumes_from_its_checkpoint(pool):
    collection = Collection(200, refuse_bounds=True)
    state = {"windows": None, "expected": None, "listed": 0}
    saved: list[dict] = []
    first: list[int] = []

    def fetch(params: list[tuple[str, str]]) -> Page:
        if dict(params).get("page") == "25":
            raise ConnectionError("the run was stopped")
        return collection.fetch(params)

    walk = KeysetWalk(
        fetch, [], per_page=5, most=4, pool=pool, take=lambda rs: first.extend(int(r["id"]) for r in rs),
        save=lambda: saved.append(json.loads(json.dumps(state))), state=state, label="/things of tenant 'x'",
    )  # fmt: skip
    with pytest.raises(ConnectionError):
        walk.run()
    resumed_from = saved[-1]  # what the checkpoint holds, as a resumed run reads it
    assert resumed_from["by_page"]["next"] > 1 and resumed_from["listed"] == 5 * (resumed_from["by_page"]["next"] - 1)
    rest: list[int] = []
    asked: list[int] = []

    def resumed_fetch(params: list[tuple[str, str]]) -> Page:
        values = dict(params)
        if values["per_page"] != "1":  # not the count asked at the end
            asked.append(int(values["page"]))
        return collection.fetch(params)

    walk = _walk(pool, collection, rest)
    walk.fetch, walk.state = resumed_fetch, resumed_from
    start = resumed_from["by_page"]["next"]
    walk.run()
    assert min(asked) == start  # on from the checkpoint, not from page 1
    assert collection.live <= set(first) | set(rest) and walk.state["listed"] == 200
    assert walk.state["by_page"]["settled"] is True and walk.shortfall() == 0
