"""One resource's routes listed into staging parts, with the checkpoint a resumed run starts from.

:class:`Crawl` walks each route of a resource with :class:`~cliniko_assets.paging.KeysetWalk` on the
extraction's shared pool of page workers, buffers what comes back as staged rows and writes them as a part
with the checkpoint whenever a walk saves (:mod:`cliniko_assets.extraction` commits the parts).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING

from cliniko_assets.catalog import (
    DELETED_ROWS,
    RECORD_TYPES,
    ClinikoResourceSpec,
    Stream,
    is_set,
    record_id,
)
from cliniko_assets.nested import list_per_parent, new_state
from cliniko_assets.paging import KeysetWalk, Params, refuses_field
from splose_resources.cliniko import ClinikoError, ClinikoNotFound, ClinikoRequestError, Page
from splose_resources.listing import ListedRecord
from splose_resources.staging import STAGED_SCHEMA, StagingBatch, record_json

if TYPE_CHECKING:
    from cliniko_assets.extraction import Extraction, ResourceOutcome

log = logging.getLogger(__name__)
TIMESTAMP = "%Y-%m-%dT%H:%M:%SZ"
# What an older route's detection says when an earlier sync found the main list honouring its filter.
HONOURED_EARLIER = "not needed: the filtered list returned such rows in an earlier sync"
PAGED = "Cliniko refused q[]=id:> and id:< (400): listed by page number"
UNSETTLED = (
    ", and its count changed or records were deleted during each: a record deleted while it was listed can have "
    "moved another past the pages read"
)
UNCHECKED = (
    "; Cliniko's count of deleted records could not be read, so a deletion during a pass that a creation hid from "
    "the count could have moved a record past the pages read (a full refresh lists it again)"
)


class Crawl:
    """The routes of one resource, buffered into parts with a checkpoint."""

    def __init__(
        self,
        extraction: Extraction,
        spec: ClinikoResourceSpec,
        batch: StagingBatch,
        checkpoint: dict,
        outcome: ResourceOutcome,
        pages: ThreadPoolExecutor,
        listed: set[str] | None,
        honoured: set[str],
    ) -> None:
        self.extraction = extraction
        self.spec = spec
        self.batch = batch
        self.checkpoint = checkpoint
        self.outcome = outcome
        self.pages = pages
        self.listed = listed
        self.honoured = honoured  # found honoured by an earlier sync
        self.watched = {s.fallback_for for s in spec.streams if s.fallback_for}
        self.buffer = staged_columns()  # the rows taken since the last part, column by column
        self.absent: set[str] = set()  # routes that answered 404 to a count of deleted records

    def stream(self, stream: Stream, since: str | None) -> None:
        state = self.state(stream)
        if not state["complete"]:
            if stream.fallback_for and self._filter_honoured(stream.fallback_for):
                state["detected"] = "not needed: the filtered list returned such rows"
            elif stream.fallback_for and stream.fallback_for in self.honoured:
                state["detected"] = HONOURED_EARLIER
            elif state.get("instead"):  # resumed: the route was absent, the main list stands in for it
                self._deleted_from_main(stream, since, state)
            else:
                self._list(stream, since, state)
            state["complete"] = True
            self.save()
        self.report(stream, state)

    def _list(self, stream: Stream, since: str | None, state: dict) -> None:
        main = self.spec.streams[0]
        try:
            self.run(stream, since, state)
        except ClinikoNotFound:
            if stream is main and self.spec.nested and state["windows"] is None:
                list_per_parent(self, stream, state)
                return
            # A newer account serves no older route; a 404 once records were listed is no such answer.
            if stream is main or state["windows"] is not None:
                raise
            if stream.deletions:
                state["instead"] = True
                self._deleted_from_main(stream, since, state)
                return
            refused = self._refused_on_main(stream.fallback_for)
            if refused is None:  # the filter was taken: on an account without older routes, it is the way
                state["detected"] = "not needed: this route is absent (404), the filtered list is the account's way"
                return
            state["detected"] = f"absent (404), and {main.path} refused {refused} (400)"
            state["not_detected"] = (
                f"{stream.name} records cannot be listed: {main.path} refused q[]={refused} (400) and "
                f"{stream.path} is absent (404)"
            )
            return
        if stream is main:
            state["refused"] = sorted(self.extraction.refusals.of(stream.path) & set(stream.filters))
        if stream.fallback_for:
            refused = self._refused_on_main(stream.fallback_for)
            why = (
                f"Cliniko refused q[]={refused} on {main.path} (400)"
                if refused
                else f"the filtered list returned no rows with {stream.fallback_for} set"
            )
            state["detected"] = (
                f"used: {why}; {state['listed']} read from this route"
                if state["listed"]
                else "checked: nothing to find"
            )

    def _deleted_from_main(self, stream: Stream, since: str | None, state: dict) -> None:
        """A ``/deleted`` route that is absent (404): the main list with ``deleted_at:?`` lists the deleted rows."""
        main = self.spec.streams[0]
        instead = Stream(stream.name, main.path, (*main.filters, DELETED_ROWS), deletions=True)
        try:
            self.run(instead, since, state)
        except (ClinikoNotFound, ClinikoRequestError) as exc:
            if state["windows"] is not None or (isinstance(exc, ClinikoRequestError) and exc.status != 400):
                raise
            state["detected"] = f"absent (404), and {main.path} refused q[]={DELETED_ROWS}"
            state["not_detected"] = (
                f"deletions in Cliniko cannot be detected: {stream.path} is absent (404) and {main.path} "
                f"refused q[]={DELETED_ROWS}"
            )
            return
        state["detected"] = (
            f"absent (404): deleted rows listed from {main.path} with q[]={DELETED_ROWS} instead; "
            f"{state['listed']} read"
        )

    def run(self, stream: Stream, since: str | None, state: dict) -> None:
        if state.get("since_refused"):  # refused below, in this sync or before a resume
            since = None
        walk = self._walk(stream, since, state)
        try:
            walk.run()
        except ClinikoRequestError as exc:
            refused = since and stream.deletions and state["windows"] is None
            if not (refused and refuses_field(exc, "deleted_at", walk.params)):
                raise
            # Cliniko documents q[]=deleted_at on some resources only (not patients, individual appointments or
            # treatment note templates): an account that refuses it has its deleted rows listed in full.
            state["since_refused"] = f"deleted_at:>={since}"
            self.save()
            walk = self._walk(stream, None, state)
            walk.run()
        state["shortfall"] = walk.shortfall()

    def _refused_on_main(self, name: str | None) -> str | None:
        """The main list's filter on ``name`` when Cliniko refused it (400) in this crawl."""
        refused = self.checkpoint["streams"].get("main", {}).get("refused") or ()
        return next((f for f in refused if name and f.partition(":")[0] == name), None)

    def newest_first(self, stream: Stream, since: str) -> int | None:
        """Ask once for the route's newest records (``sort=updated_at:desc``, a page) and its count. When the
        page holds every record updated since ``since`` (it holds them all, or its oldest is older), they are
        taken as the walk would take them and the route is complete without a walk: an unchanged resource
        costs one request, its count included. Returns Cliniko's count of the route, None when unread."""
        state = self.state(stream)
        if state["complete"] or state["windows"] is not None:  # a walk resumed: it goes on
            return None
        params = [*filters(stream), ("sort", "updated_at:desc"), ("per_page", str(self.extraction.per_page))]
        try:
            page = self._fetch_for(stream)(params)
        except ClinikoError as exc:  # an account that refuses this sort is walked, as before
            log.info("%s of tenant '%s': newest records not asked (%s)", stream.path, self.extraction.tenant, exc)
            return None
        if page.total_entries is None:
            return None
        stamps = [moment(r.get("updated_at")) if isinstance(r, RECORD_TYPES) else None for r in page.records]
        if None in stamps:  # a record without a readable updated_at: where the newest end is is unknown
            return page.total_entries
        start = moment(since)
        if len(stamps) < page.total_entries:  # a part of the route: the newest end, if sorted as asked
            if not stamps or any(newer < older for newer, older in pairwise(stamps)):
                return page.total_entries  # not newest first (an account that ignores the sort): walked
            if stamps[-1] >= start:
                return page.total_entries  # more changed than one page holds: the walk lists them
        changed = [r for r, stamp in zip(page.records, stamps, strict=True) if stamp >= start]
        self.take(stream, state, changed)
        state["listed"] = state["expected"] = len(changed)
        state["complete"] = True
        self.save()
        return page.total_entries

    def state(self, stream: Stream) -> dict:
        return self.checkpoint["streams"].setdefault(stream.name, new_state())

    def _walk(self, stream: Stream, since: str | None, state: dict) -> KeysetWalk:
        params = filters(stream)
        if since:
            params.append(("q[]", f"{'deleted_at' if stream.deletions else 'updated_at'}:>={since}"))
        return KeysetWalk(
            self._fetch_for(stream),
            params,
            per_page=self.extraction.per_page,
            most=self.extraction.workers,
            pool=self.pages,
            take=partial(self.take, stream, state),
            save=self.save,
            state=state,
            label=f"{stream.path} of tenant '{self.extraction.tenant}'",
            deleted=self._deleted if stream is self.spec.streams[0] and self.spec.incremental else None,
        )

    def _deleted(self) -> int | None:
        """Cliniko's count of the resource's deleted records: its deletion feed's, or the main list's deleted rows
        where the feed is absent (404); None for hard deletes (no trace), a refusal (400) or no count of them."""
        main, feed = self.spec.streams[0], next((s for s in self.spec.streams if s.deletions), None)
        for stream in () if self.spec.hard_deletes else (feed, main) if feed else (main,):
            if stream.path in self.absent:
                continue
            query = [*filters(stream), *([] if stream is feed else [("q[]", DELETED_ROWS)]), ("per_page", "1")]
            query = self.extraction.refusals.without(stream.path, query)
            try:  # not through the extraction's fetch: a refusal here says nothing of the listing's filters
                page = self.extraction.client.get_page(
                    stream.path, query, resource=self.spec.name, list_key=self.spec.list_key
                )
            except ClinikoNotFound:
                self.absent.add(stream.path)
                continue
            except ClinikoRequestError as exc:
                if exc.status != 400:
                    raise
                return None
            # A list that ignored the filter counts live rows, which a deletion and a creation leave as they were.
            deleted = all(isinstance(r, RECORD_TYPES) and r.get("deleted_at") for r in page.records)
            return page.total_entries if deleted else None
        return None

    def _fetch_for(self, stream: Stream):
        def fetch(params: Params) -> Page:
            page = self.extraction.fetch(self.spec, stream.path, params)
            if self.checkpoint["started_at"] is None:
                self.checkpoint["started_at"] = page.server_time or datetime.now(UTC).strftime(TIMESTAMP)
                self.checkpoint["clock"] = "server" if page.server_time else "local"
            return page

        return fetch

    def _filter_honoured(self, name: str) -> bool:
        """The main list returned rows with ``name`` set, so its filter on it works on this account."""
        return self.checkpoint["streams"].get("main", {}).get("flagged", {}).get(name, 0) > 0

    def report(self, stream: Stream, state: dict) -> None:
        if state.get("shortfall"):
            self.outcome.shortfalls[stream.path] = state["shortfall"]
        paged = state.get("by_page")
        if paged:
            passes = f"{PAGED}, {paged['pass']} " + ("pass(es)" if paged.get("settled") else f"passes{UNSETTLED}")
            self.outcome.by_page[stream.path] = passes + (UNCHECKED if paged.get("unchecked") else "")
        detected = state.get("detected")
        if detected is not None:
            self.outcome.old_routes[stream.path] = detected
            if stream.fallback_for and detected.startswith("not needed: the filtered list returned"):
                self.outcome.filters_honoured.add(stream.fallback_for)
        if state.get("not_detected"):
            self.outcome.not_detected[stream.name] = state["not_detected"]
        if state.get("since_refused"):
            self.outcome.filters_refused[stream.path] = [state["since_refused"]]
            self.outcome.listed_in_full[stream.path] = (
                f"Cliniko refused q[]={state['since_refused']} (400): every deleted record listed again "
                f"({state['listed']} read)"
            )
        if state.get("refused"):
            self.outcome.filters_refused[stream.path] = state["refused"]
            for refused in state["refused"]:
                name = refused.partition(":")[0]
                if not any(s.fallback_for == name for s in self.spec.streams):
                    rows = name.removesuffix("_at")
                    self.outcome.not_detected[rows] = (
                        f"{rows} records cannot be listed: {stream.path} refused q[]={refused} (400) and Cliniko "
                        "has no older route for them"
                    )

    def take(self, stream: Stream, state: dict, records: list) -> None:
        columns = self.buffer  # by name: the unpacking holds whatever order the schema lists them in
        ids, updated, states, sources, texts = (columns[n] for n in ("id", "updated_at", "state", "source", "record"))
        for record in records:
            self.outcome.fetched += 1
            rid = record_id(record) if isinstance(record, RECORD_TYPES) else None
            if rid is None:
                self.outcome.unreadable += 1
                continue
            for name in self.watched:
                if is_set(record.get(name)):
                    state["flagged"][name] = state["flagged"].get(name, 0) + 1
            if self.listed is not None and not stream.deletions:
                self.listed.add(rid)
            ids.append(rid)
            updated.append(updated_at(record))
            states.append(self.spec.state(record, stream.name))
            sources.append(stream.name)
            texts.append(record_text(record))

    def flush(self) -> None:
        self.batch.write_columns(self.buffer)
        self.buffer = staged_columns()

    def save(self) -> None:
        self.flush()
        self.batch.save_checkpoint(self.checkpoint)


def moment(stamp: object) -> datetime | None:
    """A timestamp Cliniko sent, as an aware datetime; None when it is missing or not one."""
    try:
        parsed = datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def filters(stream: Stream) -> Params:
    return [("q[]", f) for f in stream.filters]


def staged_row(rid: str, record: dict, state: str, source: str) -> dict:
    return {
        "id": rid,
        "updated_at": updated_at(record),
        "state": state,
        "source": source,
        "record": record_text(record),
    }


def updated_at(record: dict | ListedRecord) -> str | None:
    """A record's ``updated_at`` as staged: a string, None when Cliniko sent none (or an empty one)."""
    stamp = record.get("updated_at")
    return str(stamp) if stamp else None


def staged_columns() -> dict[str, list]:
    """Empty columns of staged rows, in :data:`~splose_resources.staging.STAGED_SCHEMA`'s order."""
    return {name: [] for name in STAGED_SCHEMA.names}


def record_text(record: dict | ListedRecord) -> bytes:
    """What is staged of a record: a listed record's text as Cliniko sent it, or a decoded one encoded."""
    return record.text if isinstance(record, ListedRecord) else record_json(record)
