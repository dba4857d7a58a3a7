"""Listing one Cliniko route completely: keyset paging by id, walked in parallel id windows.

Cliniko pages by offset (``page``, ``per_page``). A record deleted on a page already read moves every
later record back by one, so an offset crawl can skip a live record and never know. Here every request
is the route's own query plus ``sort=id`` and ``q[]=id:>`` / ``q[]=id:<`` bounds (``id`` is filterable
on every resource): a page holds every record of its id interval as it was when served, and the
intervals of one listing cover every id, whatever is deleted or added meanwhile. Requests are built from
that query, never from the envelope's ``links`` (whose ``self`` may carry no query at all); a page's
``links.next`` only says whether more may follow.

To fetch in parallel, page 1's ``total_entries`` (a hint: it may be a string, misspelt or wrong) places
at most ``most`` - 1 pages at evenly spaced offsets, whatever it claims; those pages are kept as they
are, and the id windows between them are walked page by page, side by side. A page out of id order (the
server ignored ``sort=id`` or an id bound) stops the route with :class:`PagingAnomaly` rather than guess.

A route that refuses the id bounds (400 for a window whose query without them was answered: the docs type
treatment notes' ``id`` filter as String, whose operators have no ``>`` or ``<``) is listed by page
number instead (``sort=id``, ``page=1, 2, ...``), pages fetched side by side and taken in order. Offsets
move when a record is deleted, so a pass during which Cliniko's count changed (any page's count, or the
count asked once more at its end) is walked again, up to :data:`PAGE_PASSES` passes; what the last pass
found is reported with the route (``by_page``), never hidden. A deletion and a creation in the same pass
leave the count as it was while the deletion still moved a record past the pages read: for a resource
listed incrementally (a record a pass missed would not be listed again; a resource listed in full every sync
is, at the next), Cliniko's count of its deleted records (``deleted``) is asked before each pass of more than
a page and after it, and a pass during which it grew is walked again too.

``state`` is plain JSON kept in the extraction's checkpoint: ``windows`` (``[after, before]`` still to
walk; None until page 1 is staged), ``expected`` (page 1's count), ``listed`` (records taken) and, once
listed by page number, ``by_page`` (``pass``, ``next`` page, ``after``: the last id taken, the pass's
first ``count``, whether it ``changed``, ``deleted``: the count of deleted records as the pass began,
``unchecked`` when that count could not be read, and when done whether it ``settled``).

:class:`RefusedFilters` keeps the widening filters each route refused in one extraction.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace

from cliniko_assets.catalog import ALL_CANCELLED, ALL_ROWS, RECORD_TYPES, record_id
from splose_resources.cliniko import ClinikoError, ClinikoRequestError, Page

Params = list[tuple[str, str]]
Window = list  # [after, before]: ids strictly between them are still to list; None means unbounded
CHECKPOINT_EVERY_PAGES = 5
PAGES_PER_WINDOW = 4
PAGE_PASSES = 3  # passes by page number while Cliniko's count of the route keeps changing
PASS_START = {"next": 1, "count": None, "changed": False, "after": None, "deleted": None, "unchecked": False}


class PagingAnomaly(ClinikoError):
    """Cliniko answered a page that contradicts its query: a complete listing cannot be guaranteed."""


class _BoundsRefused(Exception):
    """A window's request was refused (400) where the same query without its id bounds was answered."""


def keyset_query(params: Params, per_page: int, after: int | None = None, before: int | None = None) -> Params:
    query = [*params, ("sort", "id"), ("per_page", str(per_page))]
    if after is not None:
        query.append(("q[]", f"id:>{after}"))
    if before is not None:
        query.append(("q[]", f"id:<{before}"))
    return query


def offset_query(params: Params, per_page: int, page: int) -> Params:
    return [*params, ("sort", "id"), ("per_page", str(per_page)), ("page", str(page))]


def sample_pages(total: int | None, first_page_size: int, per_page: int, most: int) -> list[int]:
    """Page numbers whose records split what follows page 1 into at most ``most`` even windows.

    Each window costs about one request more than its records need (its last page is partial), so a
    window is given at least ``PAGES_PER_WINDOW`` pages: short lists are walked in one window.
    """
    if total is None or total <= first_page_size:
        return []
    pages = -(-total // per_page)
    windows = min(most, (pages - 1) // PAGES_PER_WINDOW)
    if windows < 2:
        return []
    return [1 + i * (pages - 1) // windows for i in range(1, windows)]


def windows_between(last_of_first_page: int, samples: list[list[int]]) -> tuple[list[Window], list[int]]:
    """The id windows left between page 1 and the sampled pages, and which samples bound them.

    A sample that starts at or before the end of what precedes it (records moved between the two
    requests) bounds nothing: its ids fall inside a window and are walked there.
    """
    windows: list[Window] = []
    kept: list[int] = []
    lower = last_of_first_page
    for number, ids in sorted(enumerate(samples), key=lambda item: item[1][0] if item[1] else 0):
        if not ids or ids[0] <= lower:
            continue
        if ids[0] - lower > 1:
            windows.append([lower, ids[0]])
        kept.append(number)
        lower = ids[-1]
    windows.append([lower, None])
    return windows, kept


class KeysetWalk:
    """Lists one route into ``take``; ``save`` is called at points where ``state`` matches what was taken."""

    def __init__(
        self,
        fetch: Callable[[Params], Page],
        params: Params,
        *,
        per_page: int,
        most: int,
        pool: ThreadPoolExecutor,
        take: Callable[[list], None],
        save: Callable[[], None],
        state: dict,
        label: str,
        deleted: Callable[[], int | None] | None = None,
    ) -> None:
        """``deleted()``: Cliniko's count of the route's deleted records (None when it cannot say); without it, a
        pass by page number is checked by the route's count alone."""
        self.fetch = fetch
        self.deleted = deleted
        self.params = params
        self.per_page = per_page
        self.most = most
        self.pool = pool
        self.take = take
        self.save = save
        self.state = state
        self.label = label

    def run(self) -> None:
        if self.state.get("by_page") is None:
            try:
                if self.state.get("windows") is None:
                    self._start()
                self._walk()
                return
            except _BoundsRefused:
                self.state["by_page"] = {"pass": 1, "next": 1, "count": None, "changed": False, "after": None}
                self.state["listed"] = 0  # what is taken again by page; staging keeps one row an id
                self.save()
        self._by_page()

    def shortfall(self) -> int:
        """Records Cliniko counts in the route beyond those listed. The count is asked for again first:
        records deleted during the listing lower it, and are no shortfall."""
        expected = self.state.get("expected")
        if expected is None or self.state["listed"] >= expected:
            return 0
        now = self.fetch(offset_query(self.params, 1, 1)).total_entries
        return max(0, (expected if now is None else now) - self.state["listed"])

    def _start(self) -> None:
        first = self.fetch(keyset_query(self.params, self.per_page))
        ids = self._ids(first, None, None)
        self.state["expected"] = first.total_entries
        self._take(first)
        windows: list[Window] = []
        if self._more(first, ids):
            windows = self._split(ids[-1], first)
        self.state["windows"] = windows
        self.save()

    def _split(self, last: int, first: Page) -> list[Window]:
        numbers = sample_pages(first.total_entries, len(first.records), self.per_page, self.most)
        futures = [self.pool.submit(self.fetch, offset_query(self.params, self.per_page, n)) for n in numbers]
        try:
            pages = [future.result() for future in futures]
        finally:
            for future in futures:
                future.cancel()
        samples = [self._ids(page, None, None) for page in pages]
        windows, kept = windows_between(last, samples)
        for number in kept:
            self._take(pages[number])
        return windows

    def _walk(self) -> None:
        windows: list[Window] = self.state["windows"]
        running: dict[Future, Window] = {}

        def submit(window: Window) -> None:
            running[self.pool.submit(self.fetch, keyset_query(self.params, self.per_page, *window))] = window

        for window in windows:
            submit(window)
        pages = 0
        try:
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    window = running.pop(future)
                    try:
                        page = future.result()
                    except ClinikoRequestError as exc:
                        if exc.status == 400:  # page 1 had the same query without the bounds
                            raise _BoundsRefused from exc
                        raise
                    ids = self._ids(page, *window)
                    self._take(page)
                    if self._more(page, ids):
                        window[0] = ids[-1]
                        submit(window)
                    else:
                        windows[:] = [w for w in windows if w is not window]
                    pages += 1
                    if pages % CHECKPOINT_EVERY_PAGES == 0:
                        self.save()
        finally:
            for future in running:
                future.cancel()
        self.save()

    def _by_page(self) -> None:
        """Page numbers until a pass sees Cliniko's count unchanged and nothing deleted, or :data:`PAGE_PASSES`
        passes."""
        paged = self.state["by_page"]
        size = paged["count"] if paged["count"] is not None else self.state.get("expected")
        while True:
            wide = size is None or size > self.per_page  # more than a page to read, as far as is known
            if paged["next"] == 1 and paged.get("deleted") is None and self.deleted and wide:
                paged["deleted"] = self.deleted()  # as the pass begins; a pass resumed without it goes unchecked
                self.save()
            self._pass(paged)
            now = self.fetch(offset_query(self.params, 1, 1)).total_entries
            paged["changed"] = paged["changed"] or (now is not None and now != paged["count"])
            if self.deleted and not paged["changed"] and self.state["listed"] > self.per_page:  # a record can move
                before = paged.get("deleted")
                deleted = None if before is None else self.deleted()
                paged["changed"], paged["unchecked"] = deleted is not None and deleted != before, deleted is None
            if not paged["changed"] or paged["pass"] >= PAGE_PASSES:
                break
            size = now if now is not None else paged["count"]
            paged.update({"pass": paged["pass"] + 1, **PASS_START})
            self.state["listed"] = 0
            self.save()
        paged["settled"] = not paged["changed"]
        self.state["expected"] = now if now is not None else paged["count"]
        self.save()

    def _pass(self, paged: dict) -> None:
        """One pass from page ``next``: up to ``most`` pages in flight (as far as the count reaches), taken in order."""
        ahead: deque[tuple[int, Future]] = deque()
        submitted = paged["next"] - 1

        def submit() -> None:
            nonlocal submitted
            submitted += 1
            ahead.append((submitted, self.pool.submit(self.fetch, offset_query(self.params, self.per_page, submitted))))

        def fill() -> None:
            last = -(-paged["count"] // self.per_page) if paged["count"] is not None else None
            while len(ahead) < self.most and (submitted < last if last is not None else not ahead):
                submit()
            if not ahead:  # the last page said more than the count: one more
                submit()

        try:
            fill()
            while ahead:
                number, future = ahead.popleft()
                page = future.result()
                if page.total_entries is not None:
                    if paged["count"] is None:
                        paged["count"] = page.total_entries
                    elif page.total_entries != paged["count"]:
                        paged["changed"] = True
                self._take_new(page, paged)
                paged["next"] = number + 1
                if number % CHECKPOINT_EVERY_PAGES == 0:
                    self.save()
                if not (page.records and (page.has_next or len(page.records) >= self.per_page)):
                    break
                fill()
        finally:
            for _, future in ahead:
                future.cancel()

    def _take_new(self, page: Page, paged: dict) -> None:
        """A page by number, less the records a page before it already gave: a record that came back into
        the list (unarchived, say) moves those after it one place on, which marks the pass changed."""
        after = paged["after"]
        ids = self._ids(page, None, None)
        if after is not None and ids and ids[0] <= after:
            if ids[-1] <= after:
                raise self._anomaly("with a page repeating the one before", "the page number", "paging it by number")
            fresh = [r for r in page.records if (rid := _numeric_id(r)) is None or int(rid) > after]
            page = replace(page, records=fresh)
            paged["changed"] = True
        self._take(page)
        paged["after"] = ids[-1] if ids else after

    def _take(self, page: Page) -> None:
        self.state["listed"] += len(page.records)
        self.take(page.records)

    def _more(self, page: Page, ids: list[int]) -> bool:
        return bool(ids) and (page.has_next or len(page.records) >= self.per_page)

    def _ids(self, page: Page, after: int | None, before: int | None) -> list[int]:
        """The page's ids, which must rise strictly inside (after, before)."""
        ids = [int(rid) for rid in map(_numeric_id, page.records) if rid is not None]
        previous = after
        for rid in ids:
            if (previous is not None and rid <= previous) or (before is not None and rid >= before):
                raise self._anomaly("out of id order")
            previous = rid
        if page.records and not ids and (page.has_next or len(page.records) >= self.per_page):
            raise self._anomaly("without readable ids")
        return ids

    def _anomaly(
        self, what: str, ignored: str = "sort=id or an id filter", ask: str = "sorting it by id"
    ) -> PagingAnomaly:
        return PagingAnomaly(
            f"Cliniko listed {self.label} {what} (it did not honour {ignored}), so a complete "
            "listing cannot be guaranteed; the resource's staged data was left as it was. Re-run the "
            f"extraction; if this recurs, ask Cliniko support about {ask}."
        )


def _numeric_id(record) -> str | None:
    rid = record_id(record) if isinstance(record, RECORD_TYPES) else None
    return rid if rid is not None and rid.isdigit() else None


# Filters that only widen a list (archived or cancelled rows too): a route whose account refuses one (400) is
# listed without it, and the crawl reports what that leaves out.
WIDENING = (ALL_ROWS, ALL_CANCELLED)


def names(exc: ClinikoRequestError, field: str) -> bool:
    """Whether Cliniko's message in ``exc`` names the filter field ``field``."""
    return re.search(rf"\b{re.escape(field)}\b", str(exc)) is not None


def refuses_field(exc: ClinikoRequestError, field: str, others: Params) -> bool:
    """Whether ``exc`` is a 400 for the filter on ``field``: it names that field, or none of the ``others``."""
    if exc.status != 400:
        return False
    fields = {v.partition(":")[0] for k, v in others if k == "q[]"} - {field}
    return names(exc, field) or not any(names(exc, name) for name in fields)


class RefusedFilters:
    """The widening filters each route answered 400 for in one extraction, shared by its page workers."""

    def __init__(self) -> None:
        self._refused: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def of(self, path: str) -> frozenset[str]:
        with self._lock:
            return frozenset(self._refused.get(path, ()))

    def without(self, path: str, params: Params) -> Params:
        """``params`` less the filters ``path`` refused."""
        refused = self.of(path)
        return [(k, v) for k, v in params if not (k == "q[]" and v in refused)]

    def note(self, path: str, exc: ClinikoRequestError, params: Params) -> list[str]:
        """The widening filters a 400 refused, now marked refused: those whose field the message names; all of
        them when it names no field of the request, unless it bounds ids (the route's first page, unbounded,
        took them: the walk answers a refusal of its bounds); none when it names another field (that refusal is
        not theirs) or the answer was not a 400."""
        if exc.status != 400:
            return []
        sent = [v for k, v in params if k == "q[]"]
        named = [v for v in sent if names(exc, v.partition(":")[0])]
        if not named and any(v.startswith(("id:>", "id:<")) for v in sent):
            return []
        dropped = [v for v in (named or sent) if v in WIDENING]
        with self._lock:
            self._refused.setdefault(path, set()).update(dropped)
        return dropped
