"""Resources that Cliniko's older docs list under their parent only (``ClinikoResourceSpec.nested``).

Cliniko's current docs list practitioner reference numbers at ``/practitioner_reference_numbers``; its older
docs at ``/practitioners/:id/practitioner_reference_numbers`` only. Where the main route is absent (404),
:func:`list_per_parent` lists the route of each parent staged instead, each walk resumable from the
checkpoint. Parents that only the by-id pass finds (practitioners the key's lists do not return, say) are
staged after the listing: :func:`list_for_found` lists theirs in the same run, so a first import has them.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import dagster as dg

from cliniko_assets.catalog import BY_NAME, Stream
from splose_resources.cliniko import ClinikoError, ClinikoNotFound

if TYPE_CHECKING:
    from cliniko_assets.crawl import Crawl
    from cliniko_assets.extraction import Extraction, ResourceOutcome

GONE = ("deleted", "missing")  # parents with nothing left to list: deleted, or answered 404 by id


def new_state() -> dict:
    """A route's listing state in the checkpoint, before its first page."""
    return {"windows": None, "expected": None, "listed": 0, "flagged": {}, "complete": False}


def parent_ids(extraction: Extraction, parent: str) -> list[str] | None:
    """The ids of the ``parent`` records staged and not gone, in id order; None when none are staged."""
    if not extraction.staging.has_data(extraction.tenant, parent):
        return None
    staged = extraction.staging.read_index(extraction.tenant, parent)
    return sorted(staged.loc[~staged["state"].isin(GONE), "id"], key=lambda rid: (len(rid), rid))


def list_per_parent(crawl: Crawl, main: Stream, state: dict, ids: list[str] | None = None) -> None:
    """List ``crawl``'s resource from the route of each parent (``ids``, or every one staged) into ``state``."""
    parent, template = crawl.spec.nested
    route = template.format(id=":id")
    if "nested" not in state:  # a resumed crawl goes on with the parents it started with
        ids = parent_ids(crawl.extraction, parent) if ids is None else ids
        if ids is None:
            state["detected"] = f"absent (404), and no {parent} are staged to list {route} by"
            state["not_detected"] = (
                f"{crawl.spec.name} cannot be listed: {main.path} is absent (404) and {route} needs the {parent}, "
                f"none staged (extract cliniko/{parent} first)"
            )
            return
        state["nested"] = {rid: new_state() for rid in ids}
    crawl.outcome.nested_parents = list(state["nested"])
    for rid, sub in state["nested"].items():
        if sub["complete"]:
            continue
        stream = Stream(main.name, template.format(id=rid), main.filters)
        try:
            crawl.run(stream, None, sub)
        except ClinikoNotFound:  # a parent Cliniko no longer has: nothing of it to list
            if sub["windows"] is not None:
                raise
            sub["absent"] = True
        sub["complete"] = True
        crawl.save()
        crawl.report(stream, sub)
    state["listed"] = sum(sub["listed"] for sub in state["nested"].values())
    absent = sum(1 for sub in state["nested"].values() if sub.get("absent"))
    state["detected"] = (
        f"absent (404): listed from {route} for each of the {len(state['nested'])} {parent} staged "
        f"({state['listed']} read" + (f"; {absent} answered 404" if absent else "") + ")"
    )


def list_for_found(extraction: Extraction, outcomes: list[ResourceOutcome]) -> dict[str, int]:
    """After the by-id pass: for each resource this run listed per parent, the routes of the parents staged
    since (found by id), their records staged with the rest. Returns resource -> records so listed."""
    from cliniko_assets.crawl import Crawl  # the crawl imports this module
    from cliniko_assets.extraction import CHECKPOINT_FORMAT, ResourceOutcome

    listed: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.nested_parents is None or outcome.error is not None or outcome.stats is None:
            continue  # not listed per parent, or failed: its checkpoint stays for the next run to resume
        before = set(outcome.nested_parents)
        found = [rid for rid in parent_ids(extraction, outcome.spec.nested[0]) or () if rid not in before]
        if not found:
            continue
        batch = extraction.staging.batch(extraction.tenant, outcome.spec.name)  # its listing's commit cleared it
        checkpoint = {"format": CHECKPOINT_FORMAT, "since": None, "replace": False, "started_at": None, "streams": {}}
        with ThreadPoolExecutor(extraction.workers, thread_name_prefix="cliniko") as pages:
            crawl = Crawl(
                extraction, outcome.spec, batch, checkpoint, ResourceOutcome(outcome.spec), pages, None, set()
            )
            state = crawl.state(outcome.spec.streams[0])
            list_per_parent(crawl, outcome.spec.streams[0], state, found)
            crawl.flush()
        batch.commit(replace=False)  # which clears the parts and checkpoint it folded
        listed[outcome.spec.name] = state["listed"]
    return listed


def list_found_parents(
    context: dg.AssetExecutionContext, extraction: Extraction, outcomes: list, failures: dict[str, object]
) -> None:
    """:func:`list_for_found` in an extraction step, after the by-id pass; a failure fails ``cliniko/references``."""
    try:
        for name, count in list_for_found(extraction, outcomes).items():
            context.log.info(f"cliniko/{name}: {count} more listed for the {BY_NAME[name].nested[0]} found by id")
    except ClinikoError as exc:
        failures["references"] = exc
        context.log.error(f"cliniko/references for tenant '{extraction.tenant}' failed: {exc}")
