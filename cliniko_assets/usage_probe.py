"""Which of the businesses, practitioners and appointment types the mapping leaves unmapped have data, asked of
Cliniko before the records that use them are extracted.

The mapping is checked before anything is written, and the first loads (contacts, clients) run while the
appointments and notes are still being extracted, so the check cannot read their links from staging. An
item the clinic mapped needs no answer; for the few left unmapped, each route whose records link to them
(:data:`cliniko_assets.references.REFERENCES`) is asked with Cliniko's documented list filter on the link
(``q[]=practitioner_id:=3,7,9``, with the filters the extraction lists that route with, so archived and
cancelled records count, deleted ones do not): the ids on the first page answered are in use; the rest
are asked again until a page comes back empty. One request per route and item in use, plus one.

A page with a record linked to an id that was not asked for means Cliniko ignored the filter (reported for
some routes in its issue tracker); then, as when Cliniko refuses the filter or the route, every item still
unanswered counts as in use: the check asks the clinic to map it rather than guess that it has no data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cliniko_assets.catalog import BY_NAME, linked_id
from cliniko_assets.references import REFERENCES
from splose_resources.cliniko import ClinikoClient, ClinikoError

PROBED = ("businesses", "practitioners", "appointment_types")
PER_PAGE = 100
IDS_PER_REQUEST = 50  # ids in one filter, so that the URL stays short


@dataclass
class ProbeOutcome:
    used: dict[str, set[str]] = field(default_factory=dict)  # resource -> ids with data
    assumed: dict[str, set[str]] = field(default_factory=dict)  # resource -> ids counted in use unanswered
    requests: int = 0

    def metadata(self) -> dict:
        return {
            "usage_probe_requests": self.requests,
            "unmapped_in_use": sum(len(ids) for ids in self.used.values()),
            "unmapped_assumed_in_use": sum(len(ids) for ids in self.assumed.values()),
        }


def probe_usage(client: ClinikoClient, unmapped: dict[str, set[str]]) -> ProbeOutcome:
    """For each resource of :data:`PROBED`, which of the ``unmapped`` ids some record links to."""
    outcome = ProbeOutcome()
    for resource in PROBED:
        candidates = set(unmapped.get(resource, ()))
        used: set[str] = set()
        for source, link in REFERENCES[resource]:
            unknown = candidates - used
            if unknown:
                used |= _probe_route(client, source, link, unknown, outcome, resource)
        if used:
            outcome.used[resource] = used
    return outcome


def _probe_route(
    client: ClinikoClient, source: str, link: str, asked: set[str], outcome: ProbeOutcome, resource: str
) -> set[str]:
    found: set[str] = set()
    ordered = sorted(asked, key=lambda i: (len(i), i))
    for start in range(0, len(ordered), IDS_PER_REQUEST):
        found |= _probe_ids(client, source, link, set(ordered[start : start + IDS_PER_REQUEST]), outcome, resource)
    return found


def _probe_ids(
    client: ClinikoClient, source: str, link: str, asked: set[str], outcome: ProbeOutcome, resource: str
) -> set[str]:
    spec = BY_NAME[source]
    stream = next(s for s in spec.streams if not s.deletions and not s.fallback_for)
    found: set[str] = set()
    remaining = set(asked)
    while remaining:
        params = [("q[]", f) for f in stream.filters]
        ids = ",".join(sorted(remaining, key=lambda i: (len(i), i)))
        params += [("q[]", f"{link}_id:={ids}"), ("per_page", str(PER_PAGE))]
        outcome.requests += 1
        try:
            body = client.get_json(client.url(stream.path, params), resource=source)
        except ClinikoError:
            return _assumed(outcome, resource, found, remaining)
        records = body.get(spec.list_key) if isinstance(body, dict) else None
        if not isinstance(records, list):
            return _assumed(outcome, resource, found, remaining)
        if not records:
            return found
        linked = {i for r in records if isinstance(r, dict) and (i := linked_id(r, link)) is not None}
        if not linked or linked - remaining:  # records the filter should have left out: Cliniko ignored it
            return _assumed(outcome, resource, found, remaining)
        found |= linked
        remaining -= linked
    return found


def _assumed(outcome: ProbeOutcome, resource: str, found: set[str], remaining: set[str]) -> set[str]:
    outcome.assumed.setdefault(resource, set()).update(remaining)
    return found | remaining
