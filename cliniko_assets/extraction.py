"""Extracting a tenant's Cliniko resources into staging.

Every page of every selected resource goes through one pool of worker threads sharing the key's budget,
so it is used whatever the mix of resources. Each route is listed by :class:`~cliniko_assets.paging.KeysetWalk`
(keyset paging by id, in parallel id windows), which no deletion or addition during the crawl can make skip
a live record; the records listed are then compared with Cliniko's count, a shortfall reported, never hidden.

Archived and cancelled rows that an older account leaves out of its filtered lists are read from the
older routes when the main list held none of them (see :mod:`cliniko_assets.catalog`); resources
without a deletion feed (``hard_deletes``) have their full id list compared with staging when Cliniko's
count differs from the live records staged, and every ``id_listing_every`` syncs: a staged record that
Cliniko no longer lists is staged as deleted. A re-sync asks their route for its newest records first
(sorted by ``updated_at``, one page), which gives the count too: when that page holds every change since
the cursor, the route costs that one request.

Progress is checkpointed with the parts it produced: a run that dies resumes with only the id windows
it had not staged. The cursor handed to the next sync is the newest ``updated_at`` staged, but never
later than the moment this crawl started (by the server's clock), so a record changed during the
crawl is asked for again next time; and never earlier than ``settled_seconds`` before that moment, so
what was settled when the crawl began is not asked for again (the next sync still starts
``overlap_seconds`` before the cursor). A resource listed in full whose routes hold more than a page is
first asked, route by route, for its newest record and its count: when every count matches staging and
nothing changed since the last listing began (less ``settled_seconds``), it is not listed again (mode
``unchanged``); every ``id_listing_every`` syncs it is listed whatever they say.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial

from cliniko_assets import references
from cliniko_assets.attachments import FileStats, stage_files
from cliniko_assets.catalog import RECORD_TYPES, ClinikoResourceSpec, record_id
from cliniko_assets.crawl import HONOURED_EARLIER, TIMESTAMP, Crawl, filters, moment, staged_row
from cliniko_assets.paging import KeysetWalk, Params, RefusedFilters, offset_query
from splose_resources.cliniko import ClinikoClient, ClinikoError, ClinikoRequestError, Download, Page
from splose_resources.staging import CommitStats, StagingStore

PER_PAGE = 100
ID_LISTING_EVERY = 10
# No write reaches Cliniko's lists this long after the updated_at it carries (a transaction, a clock behind).
SETTLED_SECONDS = 3600
CHECKPOINT_FORMAT = "id-windows"  # a checkpoint of another layout is not resumed
TICK_SECONDS = 2.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreviousSync:
    """What the resource's last materialization recorded for the next sync."""

    cursor: str | None = None
    syncs_since_id_listing: int = 0
    syncs_since_by_id: int = 0  # since the records staged by id were last asked for again
    # Fields whose filter the main list was seen to honour (it returned rows with them set): their older
    # routes are not needed on this account, even on a sync whose main list returns none of those rows.
    filters_honoured: frozenset[str] = frozenset()


@dataclass
class ResourceOutcome:
    spec: ClinikoResourceSpec
    mode: str = "full"
    fetched: int = 0
    unreadable: int = 0
    requests: int = 0
    duration_seconds: float = 0.0
    cursor: str | None = None
    stats: CommitStats | None = None
    files: FileStats | None = None
    error: BaseException | None = None
    failed_files: list[str] = field(default_factory=list)
    shortfalls: dict[str, int] = field(default_factory=dict)  # route -> records Cliniko counts but did not list
    old_routes: dict[str, str] = field(default_factory=dict)  # older route -> what was detected
    filters_honoured: set[str] = field(default_factory=set)  # this sync's or an earlier one's (PreviousSync)
    filters_refused: dict[str, list[str]] = field(default_factory=dict)  # route -> filters Cliniko refused (400)
    not_detected: dict[str, str] = field(default_factory=dict)  # rows (archived, deleted ...) -> why unlisted
    by_page: dict[str, str] = field(default_factory=dict)  # route -> how it was listed by page number, and why
    listed_in_full: dict[str, str] = field(default_factory=dict)  # route -> why a sync listed all of it again
    id_listing: str | None = None  # why the full id list was compared with staging (or why not)
    syncs_since_id_listing: int | None = None
    syncs_since_by_id: int | None = None
    kept_by_id: int = 0  # records staged by id in an earlier sync, kept without asking Cliniko again
    vanished: int = 0  # staged records Cliniko no longer lists, now staged as deleted
    nested_parents: list[str] | None = None  # the parents whose routes listed the records (cliniko_assets.nested)


class Extraction:
    """One tenant's extraction of a set of resources, run by :meth:`run`."""

    def __init__(
        self,
        client: ClinikoClient,
        staging: StagingStore,
        tenant: str,
        *,
        workers: int,
        per_page: int = PER_PAGE,
        overlap_seconds: int = 120,
        settled_seconds: int = SETTLED_SECONDS,
        full_refresh: bool = False,
        id_listing_every: int = ID_LISTING_EVERY,
    ) -> None:
        self.client = client
        self.staging = staging
        self.tenant = tenant
        self.workers = workers
        self.per_page = per_page
        self.overlap = timedelta(seconds=overlap_seconds)
        self.settled = timedelta(seconds=settled_seconds)
        self.full_refresh = full_refresh
        self.id_listing_every = id_listing_every
        self._stop = threading.Event()
        self.on_tick: Callable[[], None] | None = None  # called from the caller's thread, every few seconds
        # Told of each attachment as soon as its bytes are staged (record, sha256, size), from the thread of
        # its resource: a file can be uploaded while the rest still download.
        self.on_downloaded: Callable[[dict, str, int], None] | None = None
        self.download_cpu_seconds = 0.0  # CPU the downloads took on the worker threads (the bytes' own cost)
        self._cpu_lock = threading.Lock()
        self.refusals = RefusedFilters()

    def run(self, specs: list[ClinikoResourceSpec], previous: dict[str, PreviousSync]) -> Iterator[ResourceOutcome]:
        """Extract ``specs`` concurrently, yielding each resource's outcome as soon as it is committed."""
        with (
            ThreadPoolExecutor(self.workers, thread_name_prefix="cliniko") as pages,
            ThreadPoolExecutor(max(1, len(specs)), thread_name_prefix="resource") as coordinators,
        ):
            futures = {
                coordinators.submit(self._extract, spec, previous.get(spec.name, PreviousSync()), pages): spec
                for spec in specs
            }
            try:
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=TICK_SECONDS, return_when=FIRST_COMPLETED)
                    if self.on_tick is not None:
                        self.on_tick()
                    for future in done:
                        yield future.result()
            except BaseException:  # the step is interrupted or failing: the threads' waits and retries end now
                self.client.stop()
                raise
            finally:
                self._stop.set()

    def _extract(self, spec: ClinikoResourceSpec, previous: PreviousSync, pages: ThreadPoolExecutor) -> ResourceOutcome:
        outcome = ResourceOutcome(spec=spec)
        started = time.monotonic()
        requests_before = self.client.requests_made(spec.name)
        try:
            self._extract_into(outcome, spec, previous, pages)
        except ClinikoError as exc:
            outcome.error = exc
        except Exception as exc:  # reported with the resource's name; the other resources go on
            log.exception("extraction of %s failed", spec.name)
            outcome.error = exc
        outcome.requests = self.client.requests_made(spec.name) - requests_before
        outcome.duration_seconds = round(time.monotonic() - started, 3)
        return outcome

    def _extract_into(
        self, outcome: ResourceOutcome, spec: ClinikoResourceSpec, previous: PreviousSync, pages: ThreadPoolExecutor
    ) -> None:
        batch = self.staging.batch(self.tenant, spec.name)
        has_data = self.staging.has_data(self.tenant, spec.name)
        since = None
        if spec.incremental and previous.cursor and not self.full_refresh and has_data:
            since = _format(_parse(previous.cursor) - self.overlap)
        # What Cliniko removes without a trace must stay staged, to be marked deleted once found missing.
        replace = since is None and not (spec.hard_deletes and has_data)
        checkpoint = batch.load_checkpoint()
        resumable = {"format": CHECKPOINT_FORMAT, "since": since, "replace": replace}
        if checkpoint and all(checkpoint.get(k) == v for k, v in resumable.items()):
            outcome.mode = "resumed"
        elif replace and self._unchanged(spec, previous, has_data, outcome):
            batch.discard()
            outcome.mode = "unchanged"
            outcome.stats = batch.commit(replace=False)  # staging as it was: its counts for the metadata
            outcome.cursor = previous.cursor
            return
        else:
            batch.discard()
            checkpoint = {**resumable, "started_at": None, "streams": {}}
            outcome.mode = "full" if since is None else "incremental"
        # A listing of every id this run (not one resumed from another process) tells what Cliniko removed.
        listed: set[str] | None = set() if spec.hard_deletes and since is None and outcome.mode == "full" else None
        honoured = set() if self.full_refresh else set(previous.filters_honoured)
        crawl = Crawl(self, spec, batch, checkpoint, outcome, pages, listed, honoured)
        # Without a deletion feed, the route's count is compared with staging: asked with its newest records.
        counted = crawl.newest_first(spec.streams[0], since) if spec.hard_deletes and since else None
        for stream in spec.streams:
            crawl.stream(stream, since)
        crawl.flush()
        keep = self._by_id_to_keep(spec, previous, outcome) if replace and has_data else []
        outcome.stats = batch.commit(replace=replace)
        if keep:
            outcome.stats, outcome.kept_by_id = references.restage_by_id(
                self.staging, self.tenant, spec.name, keep, outcome.stats
            )
        newest = outcome.stats.max_updated_at
        # A resource listed in full has no cursor to start from, only a moment its next sync compares with.
        outcome.cursor = self._cursor(newest, checkpoint) if spec.incremental else self._settled_before(checkpoint)
        if not spec.incremental:
            outcome.id_listing, outcome.syncs_since_id_listing = "listed in full", 0
        if spec.hard_deletes:
            self._find_vanished(spec, outcome, previous, listed, pages, counted)
        if spec.has_files:
            outcome.files = stage_files(self, spec, pages, outcome)

    def _cursor(self, newest: str | None, checkpoint: dict) -> str | None:
        """Where the next sync starts asking (less the overlap): on Cliniko's clock :meth:`_settled_before` the crawl,
        whatever the newest ``updated_at`` staged (a late write is older than a busy clinic's newest change); on the
        local clock the newest ``updated_at`` staged, never later than the moment the crawl started."""
        if (settled := self._settled_before(checkpoint)) is not None:
            return settled
        return min(filter(None, (newest, checkpoint.get("started_at"))), default=None, key=_parse)

    def _settled_before(self, checkpoint: dict) -> str | None:
        """``settled`` before this crawl began, when that moment is Cliniko's own clock (its ``Date``): a change
        stamped earlier was committed before the crawl and listed. None on the local clock, which may be off."""
        started = checkpoint.get("started_at")
        if not started or checkpoint.get("clock") != "server":
            return None
        return _format(_parse(started) - self.settled)

    def _unchanged(
        self, spec: ClinikoResourceSpec, previous: PreviousSync, has_data: bool, outcome: ResourceOutcome
    ) -> bool:
        """Whether a resource listed in full on every sync is unchanged since the last listing, asked at the
        cost of one request per route (its newest record and its count) instead of the whole listing: each
        route counts exactly the records staged from it, and none of them was updated after the last listing's
        cursor less the overlap. Only worth asking when a route holds more than a page; never on a full
        refresh, when the records found by id are due again, when an older route may be needed, or once every
        ``id_listing_every`` syncs."""
        if spec.incremental or not has_data or self.full_refresh or not previous.cursor:
            return False
        if previous.syncs_since_id_listing + 1 >= self.id_listing_every:
            return False
        if spec.name in references.REFERENCES and previous.syncs_since_by_id + 1 >= self.id_listing_every:
            return False
        if any(s.fallback_for and s.fallback_for not in previous.filters_honoured for s in spec.streams):
            return False
        streams = [s for s in spec.streams if not s.fallback_for]
        staged = self.staging.read_index(self.tenant, spec.name, ("id", "source"))["source"].value_counts()
        if all(int(staged.get(s.name, 0)) <= self.per_page for s in streams):
            return False  # the listing costs no more than asking
        since = _parse(previous.cursor) - self.overlap
        for stream in streams:
            try:
                page = self.fetch(spec, stream.path, [*filters(stream), ("sort", "updated_at:desc"), ("per_page", "1")])
            except ClinikoError as exc:  # an account that refuses this sort is listed in full, as before
                log.info("%s of tenant '%s': not asked whether it changed (%s)", stream.path, self.tenant, exc)
                return False
            if page.total_entries is None or page.total_entries != int(staged.get(stream.name, 0)):
                return False
            newest = moment(next((r.get("updated_at") for r in page.records if isinstance(r, RECORD_TYPES)), None))
            if page.total_entries and (newest is None or newest >= since):  # unreadable: listed in full
                return False
        outcome.id_listing = "not needed: each route's count and newest change match staging"
        outcome.syncs_since_id_listing = previous.syncs_since_id_listing + 1
        if spec.name in references.REFERENCES:
            outcome.syncs_since_by_id = previous.syncs_since_by_id + 1
            outcome.kept_by_id = int(staged.get(references.BY_ID_SOURCE, 0))
        outcome.filters_honoured = set(previous.filters_honoured)
        for stream in spec.streams:
            if stream.fallback_for:
                outcome.old_routes[stream.path] = HONOURED_EARLIER
        return True

    def _by_id_to_keep(self, spec: ClinikoResourceSpec, previous: PreviousSync, outcome: ResourceOutcome) -> list[dict]:
        """Before ``spec`` replaces its staged data with a listing in full: the rows staged by id to keep
        (:func:`references.restage_by_id`), none when they are due to be asked for again."""
        if spec.name not in references.REFERENCES:
            return []
        due = self.full_refresh or previous.syncs_since_by_id + 1 >= self.id_listing_every
        outcome.syncs_since_by_id = 0 if due else previous.syncs_since_by_id + 1
        return [] if due else references.staged_by_id(self.staging, self.tenant, spec.name)

    def _find_vanished(
        self,
        spec: ClinikoResourceSpec,
        outcome: ResourceOutcome,
        previous: PreviousSync,
        listed: set[str] | None,
        pages: ThreadPoolExecutor,
        counted: int | None,
    ) -> None:
        """Stage as deleted what Cliniko removed since the last sync: it has no deletion feed to say so.
        ``counted``: Cliniko's count of the main route, when this sync has read it already."""
        index = self.staging.read_index(self.tenant, spec.name)
        live = set(index.loc[index["state"] != "deleted", "id"])
        reason = "listed in full" if listed is not None else self._listing_reason(spec, previous, len(live), counted)
        if reason is None:
            outcome.id_listing = "not needed: Cliniko's count matches the records staged"
            outcome.syncs_since_id_listing = previous.syncs_since_id_listing + 1
            return
        if listed is None:
            listed = self._list_ids(spec, pages)
        outcome.id_listing = reason
        outcome.syncs_since_id_listing = 0
        vanished = live - listed
        outcome.vanished = len(vanished)
        if vanished:
            batch = self.staging.batch(self.tenant, spec.name)
            batch.write_part(list(self._tombstones(spec, vanished)))
            outcome.stats = batch.commit(replace=False)

    def _listing_reason(
        self, spec: ClinikoResourceSpec, previous: PreviousSync, live: int, counted: int | None
    ) -> str | None:
        """Why the full id list must be read this sync; None when Cliniko's count agrees with staging."""
        if previous.syncs_since_id_listing + 1 >= self.id_listing_every:
            return f"periodic: every {self.id_listing_every} syncs"
        main = spec.streams[0]
        total = counted
        if total is None:
            total = self.fetch(spec, main.path, offset_query(filters(main), 1, 1)).total_entries
        if total is None:
            return "Cliniko's count is unreadable"
        if total != live:
            return f"Cliniko counts {total}, staging holds {live} live"
        return None

    def _list_ids(self, spec: ClinikoResourceSpec, pages: ThreadPoolExecutor) -> set[str]:
        listed: set[str] = set()

        def take(records: list) -> None:
            listed.update(filter(None, (record_id(r) for r in records if isinstance(r, RECORD_TYPES))))

        for stream in spec.streams:
            if stream.deletions:
                continue
            state = {"windows": None, "expected": None, "listed": 0}
            KeysetWalk(
                partial(self.fetch, spec, stream.path),
                filters(stream),
                per_page=self.per_page,
                most=self.workers,
                pool=pages,
                take=take,
                save=lambda: None,
                state=state,
                label=f"{stream.path} of tenant '{self.tenant}'",
            ).run()
        return listed

    def _tombstones(self, spec: ClinikoResourceSpec, vanished: set[str]) -> Iterator[dict]:
        """The staged rows of ``vanished`` again, as deletions (the record kept as Cliniko last sent it)."""
        for records in self.staging.iter_records(self.tenant, spec.name):
            for record in records:
                rid = record_id(record)
                if rid in vanished:
                    record.pop("_state")
                    record.pop("_source")
                    yield staged_row(rid, record, "deleted", "vanished")

    def download(self, resource: str, rid: str) -> Download:
        """Stream one attachment's bytes into staging (through Cliniko's redirect to a signed URL)."""
        if self._stop.is_set():
            raise ClinikoError("extraction stopped")
        url = self.client.url(f"/patient_attachments/{rid}/content")
        writer = partial(self.staging.file_writer, self.tenant, resource, rid)
        started = time.thread_time()
        try:
            return self.client.download(url, writer, resource=resource, attachment=rid)
        finally:
            with self._cpu_lock:
                self.download_cpu_seconds += time.thread_time() - started

    def fetch(self, spec: ClinikoResourceSpec, path: str, params: Params) -> Page:
        """One page of ``path``, without the widening filters the route refused (:class:`RefusedFilters`)."""
        while True:
            if self._stop.is_set():
                raise ClinikoError("extraction stopped")
            params = self.refusals.without(path, params)
            try:
                return self.client.get_page(path, params, resource=spec.name, list_key=spec.list_key)
            except ClinikoRequestError as exc:
                dropped = self.refusals.note(path, exc, params)
                if not dropped:
                    raise
            log.warning("%s of tenant '%s' refused %s (400): listed without it", path, self.tenant, ", ".join(dropped))


def _parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def _format(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(TIMESTAMP)
