"""What the list routes do not return: referenced records fetched by id, and the account's settings.

Real Cliniko records point at businesses, practitioners, appointment types, patients and treatment note
templates that no list route returns to the key: a deleted appointment type (its link answers 404), a
practitioner the key's role cannot list, an archived record behind a link. The asset ``cliniko/references``
comes after every resource that points at others and every resource pointed at: :func:`referenced_ids`
reads the links of the staged records (deleted records aside; each linking resource once, all its links in
the same pass), and :func:`stage_references` fetches every id of a resource it has not staged, once, by id (with
``q[]=archived_at:*``, which Cliniko documents for single-record GETs, so an archived record is found too;
without it when Cliniko refuses the filter). What Cliniko has is staged with the other records of its
resource in state ``unlisted`` and source ``by_id``; an id it answers 404 (or 403) for is staged as a stub in
state ``missing``, so the mapping, the transforms and the reconciliation all see it (the patients among them
are the clients row's second part, loaded after the listed patients). Nothing here fails a run: a reference
Cliniko does not have is data for the mapping, not an error.

What was staged by id stays staged: a resource listed in full on every sync (businesses, practitioners,
appointment types, templates) would otherwise drop those rows with its old data and ask Cliniko for each of
them again on every sync, changed or not (:func:`staged_by_id`, :func:`restage_by_id`). They are asked for
again every ``id_listing_every`` syncs and on a full refresh, and whenever a listing returns the id.

The account's settings (``GET /settings``, or ``/settings/public`` when the key's role cannot read
``/settings``) give the account's time zone and country, the fallbacks for businesses without a zone and for
phone numbers; only those two values are kept (``account.json`` beside the staged businesses).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

import msgspec
import pyarrow.compute as pc

from cliniko_assets.catalog import target_id
from cliniko_assets.crawl import staged_row
from cliniko_assets.mapping import MISSING, UNLISTED
from splose_resources.cliniko import (
    ClinikoAuthError,
    ClinikoClient,
    ClinikoNotFound,
    ClinikoRequestError,
)
from splose_resources.staging import STAGED_SCHEMA, CommitStats, StagingStore

# Resource -> (resource whose records link to it, link name).
REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    "businesses": (
        ("individual_appointments", "business"),
        ("group_appointments", "business"),
        ("daily_availabilities", "business"),
        ("practitioner_reference_numbers", "business"),
    ),
    "practitioners": (
        ("individual_appointments", "practitioner"),
        ("group_appointments", "practitioner"),
        ("daily_availabilities", "practitioner"),
        ("practitioner_reference_numbers", "practitioner"),
        ("treatment_notes", "practitioner"),
    ),
    "appointment_types": (("individual_appointments", "appointment_type"), ("group_appointments", "appointment_type")),
    # Not patient attachments: their extraction (downloads, most of a clinic's requests) comes after the
    # patients', so that clients load while they download; an attachment of a patient no list returns is
    # skipped as "client not imported".
    "patients": (("individual_appointments", "patient"), ("attendees", "patient"), ("treatment_notes", "patient")),
    "treatment_note_templates": (("treatment_notes", "treatment_note_template"),),
}
ACCOUNT_FILE = "cliniko/businesses/account.json"
BY_ID_SOURCE = "by_id"  # the staged source of a record found by id
SETTINGS_ROUTES = (("/settings", "settings"), ("/settings/public", "settings/public"))


# A link as Cliniko writes it, ``{"links": {"self": ".../patients/82"}}``, decoded into these and nothing else.
_Self = msgspec.defstruct("_Self", [("url", str | None, None)], rename={"url": "self"}, gc=False)
_Link = msgspec.defstruct("_Link", [("links", _Self | None, None)], gc=False)
URLS_KEPT = 10_000  # URLs whose id a link reader keeps


class _LinkReader:
    """A staged record's text decoded into the ids behind its top-level links ``names`` alone (msgspec skips
    the rest without building it): a link nested deeper is not the record's, and this costs less than matching
    each link in the text or decoding whole records. A link of the usual shape is decoded into its URL alone
    and each URL's id is worked out once, for the first :data:`URLS_KEPT` URLs (an appointment's practitioner and
    business repeat in every record; an attendee's booking is its own: half a million of them held 108 MB);
    a record with a link of any other shape is decoded again as it is
    (:func:`~cliniko_assets.catalog.target_id`); a text that is not a JSON object links to nothing."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.typed = msgspec.json.Decoder(msgspec.defstruct("Links", [(name, _Link | None, None) for name in names]))
        self.generic = msgspec.json.Decoder(msgspec.defstruct("AnyLinks", [(name, object, None) for name in names]))
        self.ids: dict[str | None, str | None] = {None: None}  # URL -> the id it ends in

    def read(self, text: str | None) -> list[str | None]:
        if text is None:
            return [None] * len(self.names)
        try:
            links = self.typed.decode(text)
        except msgspec.ValidationError:  # a link of another shape (or not an object): read as it is
            try:
                links = self.generic.decode(text)
            except msgspec.DecodeError:  # not an object
                return [None] * len(self.names)
            return [target_id(getattr(links, name)) for name in self.names]
        except msgspec.DecodeError:  # not JSON
            return [None] * len(self.names)
        found = []
        for name in self.names:
            link = getattr(links, name)
            url = link.links.url if link is not None and link.links is not None else None
            rid = self.ids.get(url, "")
            if rid == "":  # not kept: worked out (an id is never empty)
                rid = target_id({"links": {"self": url}})
                if len(self.ids) < URLS_KEPT:
                    self.ids[url] = rid
            found.append(rid)
        return found


def linked_ids(staging: StagingStore, tenant: str, resource: str, names: tuple[str, ...]) -> dict[str, set[str]]:
    """Ids behind each link of ``names`` in the staged, not deleted records of ``resource``: the resource is
    read once, in batches, whatever the number of links, each text decoded into those links alone
    (:class:`_LinkReader`)."""
    found: dict[str, set[str]] = {name: set() for name in names}
    reader = _LinkReader(names)
    for batch in staging.iter_batches(tenant, resource, ["state", "record"], batch_size=1_000):
        for text in batch.filter(pc.not_equal(batch.column("state"), "deleted")).column("record").to_pylist():
            for name, rid in zip(names, reader.read(text), strict=True):
                if rid is not None:
                    found[name].add(rid)
    return found


def record_links(staging: StagingStore, tenant: str, resource: str, name: str) -> Iterator[tuple[str, str | None]]:
    """(staged id, the id behind its link ``name``) of every staged record of ``resource``, deleted ones too,
    each text decoded into that link alone (:class:`_LinkReader`)."""
    reader = _LinkReader((name,))
    for batch in staging.iter_batches(tenant, resource, ["id", "record"], batch_size=1_000):
        for rid, text in zip(batch.column("id").to_pylist(), batch.column("record").to_pylist(), strict=True):
            yield rid, reader.read(text)[0]


def referenced_ids(staging: StagingStore, tenant: str) -> dict[str, set[str]]:
    """For each resource of :data:`REFERENCES`, the ids the staged records link to; each linking resource
    (the appointments, say, with four links) is read once."""
    links: dict[str, list[tuple[str, str]]] = {}  # linking resource -> (link name, resource pointed at)
    for target, sources in REFERENCES.items():
        for source, name in sources:
            links.setdefault(source, []).append((name, target))
    wanted: dict[str, set[str]] = {target: set() for target in REFERENCES}
    for source, pairs in links.items():
        found = linked_ids(staging, tenant, source, tuple(name for name, _ in pairs))
        for name, target in pairs:
            wanted[target] |= found[name]
    return wanted


@dataclass
class ReferenceOutcome:
    found: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    forbidden: int = 0
    requests: int = 0
    stats: CommitStats | None = None

    def metadata(self) -> dict:
        """Counts and ids only (the keys summed over resources are :data:`COUNTED`)."""
        return {
            "found_by_id": len(self.found),
            "not_in_cliniko": len(self.missing),
            "by_id_forbidden": self.forbidden,
            "by_id_requests": self.requests,
            "not_in_cliniko_ids": sorted(self.missing, key=_numeric)[:100],
        }


COUNTED = ("found_by_id", "not_in_cliniko", "by_id_forbidden", "by_id_requests")


def stage_references(
    client: ClinikoClient, staging: StagingStore, tenant: str, resource: str, linked: set[str]
) -> ReferenceOutcome:
    """Fetch and stage every record of ``resource`` that staged records point at (``linked``, from
    :func:`referenced_ids`) and the lists did not return."""
    outcome = ReferenceOutcome()
    staged = set(staging.read_index(tenant, resource, ("id",))["id"])
    wanted = sorted(linked - staged, key=_numeric)
    if not wanted:
        return outcome
    rows = [_row(rid, *fetch_by_id(client, resource, rid, outcome)) for rid in wanted]
    for row in rows:
        (outcome.found if row["state"] == UNLISTED else outcome.missing).append(row["id"])
    batch = staging.batch(tenant, resource)
    batch.write_part(rows)
    outcome.stats = batch.commit(replace=False)
    return outcome


def staged_by_id(staging: StagingStore, tenant: str, resource: str) -> list[dict]:
    """The staged rows of ``resource`` that came from fetches by id (found or not), as ``write_part`` takes them."""
    rows: list[dict] = []
    for batch in staging.iter_batches(tenant, resource, list(STAGED_SCHEMA.names), batch_size=1_000):
        rows.extend(batch.filter(pc.fill_null(pc.equal(batch.column("source"), BY_ID_SOURCE), False)).to_pylist())
    return rows


def restage_by_id(
    staging: StagingStore, tenant: str, resource: str, rows: list[dict], stats: CommitStats
) -> tuple[CommitStats, int]:
    """Stage again ``rows`` (from :func:`staged_by_id`, before a listing replaced the resource's data), but not an
    id the listing returned: the listed record stands. ``stats`` are the listing's commit; returns the resource's
    and how many rows were kept."""
    listed = set(staging.read_index(tenant, resource, ("id",))["id"])
    kept = [row for row in rows if row["id"] not in listed]
    if not kept:
        return stats, 0
    batch = staging.batch(tenant, resource)
    batch.write_part(kept)
    return replace(batch.commit(replace=False), removed=max(0, stats.removed - len(kept))), len(kept)


def fetch_by_id(client: ClinikoClient, resource: str, rid: str, outcome: ReferenceOutcome) -> tuple[dict | None, str]:
    """The record (or None) and the url asked, archived records included when Cliniko accepts the filter."""
    plain = client.url(f"/{resource}/{rid}")
    for url in (f"{plain}?{urlencode([('q[]', 'archived_at:*')])}", plain):
        outcome.requests += 1
        try:
            body = client.get_json(url, resource=resource)
        except ClinikoNotFound:
            return None, plain
        except ClinikoAuthError:
            outcome.forbidden += 1
            return None, plain
        except ClinikoRequestError:
            continue  # the filter refused (400): ask again without it
        return (body if isinstance(body, dict) else None), plain
    return None, plain


def _row(rid: str, record: dict | None, url: str) -> dict:
    if record is None:  # a stub: what the reference said, no more
        return staged_row(rid, {"id": rid, "links": {"self": url}}, MISSING, BY_ID_SOURCE)
    return staged_row(rid, record, UNLISTED, BY_ID_SOURCE)


def _numeric(value: str) -> int:
    return int(value) if value.isdigit() else -1


def missing_ids(staging: StagingStore, tenant: str, resource: str) -> list[str]:
    """Ids of ``resource`` staged as ``missing`` stubs: referenced, and Cliniko does not have them."""
    index = staging.read_index(tenant, resource)
    return sorted(index.loc[index["state"] == MISSING, "id"], key=_numeric)


# -- the account's settings --------------------------------------------------------------------------------


def stage_account_settings(client: ClinikoClient, staging: StagingStore, tenant: str) -> dict:
    """Keep the account's time zone and country; a key that cannot read ``/settings`` falls back to the public
    settings. Returns metadata: where the settings came from and how many routes refused the key."""
    forbidden = 0
    for path, source in SETTINGS_ROUTES:
        try:
            body = client.get_json(path, resource="settings")
        except ClinikoAuthError:
            forbidden += 1
            continue
        except (ClinikoNotFound, ClinikoRequestError):
            continue
        account = body.get("account") if isinstance(body, dict) else None
        if isinstance(account, dict):
            write_account_settings(staging, tenant, _account_fields(account, source))
            return {"account_settings_from": source, "settings_forbidden": forbidden}
    write_account_settings(staging, tenant, {"time_zone": None, "country": None, "source": None})
    return {"account_settings_from": "unavailable", "settings_forbidden": forbidden}


def _account_fields(account: dict, source: str) -> dict:
    zone, country = account.get("time_zone"), account.get("country")
    return {
        "time_zone": zone if isinstance(zone, str) else None,
        "country": country if isinstance(country, str) else None,
        "source": source,
    }


def write_account_settings(staging: StagingStore, tenant: str, settings: dict) -> None:
    staging.write_json(tenant, ACCOUNT_FILE, settings)


def read_account_settings(staging: StagingStore, tenant: str) -> dict:
    return staging.read_json(tenant, ACCOUNT_FILE) or {}
