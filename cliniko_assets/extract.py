"""The ``cliniko/<resource>`` assets, each with its own materialization, metadata and cursor.

Steps (``multi_asset``, ``can_subset=True``) extract them, in an order that is lineage in the graph
(:data:`AFTER`):

- ``cliniko_clinic`` stages the clinic's businesses (with the account's settings), users, practitioners,
  appointment types, patients and contacts: what the mapping check and the first loads (contacts, then
  clients) need, so those loads run while the rest is extracted;
- ``cliniko_extract`` stages the appointments, attendees, availabilities, reference numbers and treatment
  notes and their templates, then ``cliniko/references``: every record they point at that no list
  returned, fetched by id (:mod:`cliniko_assets.references`), which is why it comes after the first step;
- ``patient_files`` (:mod:`cliniko_assets.file_step`) stages patient attachments and downloads their
  bytes, most of a clinic's requests, and uploads each file to Splose as soon as it is staged
  (``splose/files``, the same step): the loads run beside it.

The key's budget is one, whatever runs at once (the rate limiter's state is shared by every process on
the host); each step's resources share one pool of workers.
"""

import os
import re
from collections.abc import Callable, Iterator
from functools import partial

import dagster as dg
from pydantic import Field

from cliniko_assets import nested, references
from cliniko_assets.catalog import BY_NAME, CATALOG
from cliniko_assets.extraction import ID_LISTING_EVERY, SETTLED_SECONDS, Extraction, PreviousSync, ResourceOutcome
from cliniko_assets.failures import KNOWN, remedy, step_failures
from cliniko_assets.lifecycle import bound_import
from cliniko_assets.mapping import ImportRequestResource
from cliniko_assets.partitions import tenants, validate_tenant
from cliniko_assets.progress import ExtractionProgress
from cliniko_assets.resolution import RunImport
from splose_resources.cliniko import ClinikoAuthError, ClinikoClient, ClinikoError, ClinikoResource
from splose_resources.collector import bulk_work
from splose_resources.http import Secret
from splose_resources.splose import SploseResource
from splose_resources.staging import StagingStore

REFERENCES = "references"  # the asset of the records other records point at and no list returns


class ExtractionSettings(dg.ConfigurableResource):
    """How a run extracts (run config ``resources: {extraction: {config: ...}}``), whichever step extracts."""

    full_refresh: bool = Field(
        default=False, description="Ignore cursors and staged data; list every resource in full again."
    )
    overlap_seconds: int = Field(
        default=120, description="How far before the cursor an incremental sync starts asking, to absorb clock skew."
    )
    settled_seconds: int = Field(
        default=SETTLED_SECONDS,
        ge=0,
        description="How long after its updated_at a change can still reach Cliniko's lists (a long transaction, a "
        "clock behind): an incremental sync asks again for what was updated this long before the previous one "
        "started, however old the newest change is. Used only when the previous sync read the start from "
        "Cliniko's own clock.",
    )
    id_listing_every: int = Field(
        default=ID_LISTING_EVERY,
        ge=1,
        description="Compare the full id list of contacts and patient attachments (no deletion feed) with staging "
        "at least every this many syncs, besides whenever Cliniko's count disagrees with staging; and ask again "
        "for the records found by id (referenced, not listed) at least every this many syncs.",
    )


def cliniko_key(resource: str) -> dg.AssetKey:
    return dg.AssetKey(["cliniko", resource])


CLINIC = ("businesses", "users", "practitioners", "appointment_types", "patients", "contacts")
# What each asset waits for: the by-id pass for every record the extraction staged (those pointing at
# others, and those pointed at); patient attachments for it too, so that their downloads come last.
AFTER: dict[str, tuple[str, ...]] = {
    REFERENCES: tuple(
        dict.fromkeys(
            [*references.REFERENCES, *(source for links in references.REFERENCES.values() for source, _ in links)]
        )
    ),
    "patient_attachments": ("patients", REFERENCES),
}
STEPS: dict[str, tuple[str, ...]] = {
    "cliniko_clinic": CLINIC,
    "cliniko_extract": (
        *(spec.name for spec in CATALOG if spec.name not in CLINIC and spec.name != "patient_attachments"),
        REFERENCES,
    ),
}  # cliniko/patient_attachments: step patient_files, with splose/files (cliniko_assets.file_step)
DESCRIPTIONS = {
    **{spec.name: spec.description for spec in CATALOG},
    REFERENCES: "Records other records point at that no list route returned (deleted appointment types, practitioners "
    "the key cannot list, archived records behind links), fetched once by id and staged with their resource: "
    "'unlisted' when Cliniko has them, 'missing' when it answers 404.",
}


def extraction_spec(resource: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        cliniko_key(resource),
        deps=[cliniko_key(upstream) for upstream in AFTER.get(resource, ())],
        description=DESCRIPTIONS[resource],
        group_name="cliniko",
        kinds={"python", "parquet"},
    )


def _extraction_step(name: str, resources: tuple[str, ...]) -> dg.AssetsDefinition:
    @dg.multi_asset(
        name=name,
        specs=[extraction_spec(resource) for resource in resources],
        partitions_def=tenants,
        can_subset=True,
        op_tags={"cliniko": "extract"},
    )
    def _step(
        context: dg.AssetExecutionContext,
        extraction: ExtractionSettings,
        cliniko: ClinikoResource,
        staging: StagingStore,
        splose: SploseResource,
        import_request: ImportRequestResource,
    ):
        tenant = context.partition_key
        with (
            step_failures(tenant, f"Cliniko extraction ({len(context.selected_asset_keys)} resources)") as where,
            bulk_work(),
        ):
            run_import = bound_import(context, splose, import_request)  # before any Cliniko request
            where.import_id = run_import.import_id if run_import else None
            yield from extract(context, extraction, cliniko, staging, api_key_for(context, splose, run_import))

    return _step


extract_assets = [_extraction_step(name, resources) for name, resources in STEPS.items()]


def extract(
    context: dg.AssetExecutionContext,
    config: ExtractionSettings,
    cliniko: ClinikoResource,
    staging: StagingStore,
    api_key: Secret,
    on_downloaded: Callable[[dict, str, int], None] | None = None,
) -> Iterator[dg.MaterializeResult]:
    """Stage the step's selected ``cliniko/*`` assets, each materialized as soon as it is committed;
    ``on_downloaded`` is told of each attachment whose bytes are staged (see ``Extraction.on_downloaded``)."""
    tenant = validate_tenant(context.partition_key)
    selected = sorted(key.path[-1] for key in _selected(context))
    specs = [BY_NAME[name] for name in selected if name != REFERENCES]
    previous = {spec.name: _previous_sync(context, tenant, spec.name) for spec in specs}
    failures: dict[str, object] = {}  # asset -> the error that failed it
    with (
        staging.tenant_lock(tenant),
        cliniko.client(tenant, api_key, log=context.log) as client,
        _progress(context, cliniko, client) as progress,
    ):
        client.on_page, client.on_file = progress.page, progress.file
        new_extraction = partial(
            Extraction,
            client,
            staging,
            tenant,
            workers=cliniko.concurrency,
            per_page=cliniko.page_size,
            overlap_seconds=config.overlap_seconds,
            settled_seconds=config.settled_seconds,
            full_refresh=config.full_refresh,
            id_listing_every=config.id_listing_every,
        )
        extraction, outcomes = new_extraction(), []
        extraction.on_tick = progress.tick
        extraction.on_downloaded = on_downloaded
        for outcome in extraction.run(specs, previous):
            name = outcome.spec.name
            outcomes.append(outcome)
            if outcome.error is not None or outcome.stats is None:
                failures[name] = outcome.error
                context.log.error(f"cliniko/{name} for tenant '{tenant}' failed: {outcome.error}")
                continue
            context.log.info(
                f"cliniko/{name}: {outcome.stats.records} staged, {outcome.fetched} fetched "
                f"with {outcome.requests} requests ({outcome.mode})"
            )
            _log_findings(context, tenant, outcome)
            metadata = _metadata(outcome)
            if name == "businesses":  # with the account's settings, the fallbacks for businesses' zones
                before = client.requests_made("settings")
                try:
                    metadata |= references.stage_account_settings(client, staging, tenant)
                except ClinikoError as exc:
                    failures[name] = exc
                    context.log.error(f"cliniko/{name} for tenant '{tenant}' failed: {exc}")
                    continue
                metadata["requests"] = outcome.requests + client.requests_made("settings") - before
            yield dg.MaterializeResult(asset_key=cliniko_key(name), metadata=metadata)
        if REFERENCES in selected:
            yield from _references(context, client, staging, failures)
            nested.list_found_parents(context, new_extraction(), outcomes, failures)
        context.log.info(f"Cliniko requests for tenant '{tenant}': {client.requests_made()}")
    if failures:
        raise extraction_failure(tenant, failures)


def extraction_failure(tenant: str, failures: dict[str, object]) -> dg.Failure:
    """One failure for the step's failed assets: each message once, with the assets it stopped (a revoked key
    stops them all with the same words), the errors' kinds and what to do about each."""
    grouped: dict[str, list[str]] = {}
    for name, error in failures.items():
        grouped.setdefault(str(error), []).append(f"cliniko/{name}")
    remedies = [remedy(e) if isinstance(e, KNOWN) else "fix what the error names" for e in failures.values()]
    return dg.Failure(
        description=(
            f"Extraction of tenant '{tenant}' failed for {len(failures)} asset(s): "
            + "; ".join(f"{', '.join(sorted(assets))}: {message}" for message, assets in grouped.items())
            + " Assets not listed here were staged; re-running resumes the failed ones."
        ),
        metadata={
            "failed_assets": [f"cliniko/{name}" for name in failures],
            "error": ", ".join(sorted({type(error).__name__ for error in failures.values()})),
            "what_to_do": "; ".join(dict.fromkeys(remedies)) + ", then re-run: the extraction resumes",
        },
    )


def _references(
    context: dg.AssetExecutionContext, client: ClinikoClient, staging: StagingStore, failures: dict[str, object]
) -> Iterator[dg.MaterializeResult]:
    """``cliniko/references``: for each resource others point at, the records no list returned, by id."""
    tenant = context.partition_key
    by_resource: dict[str, dict] = {}
    linked = references.referenced_ids(staging, tenant)
    for resource in sorted(references.REFERENCES):
        try:
            outcome = references.stage_references(client, staging, tenant, resource, linked[resource])
        except ClinikoError as exc:  # fails this asset only: what is staged stays, the next run resumes it
            failures[REFERENCES] = exc
            context.log.error(f"cliniko/{REFERENCES} ({resource}) for tenant '{tenant}' failed: {exc}")
            return
        by_resource[resource] = outcome.metadata()
    totals = {key: sum(m[key] for m in by_resource.values()) for key in references.COUNTED}
    yield dg.MaterializeResult(
        asset_key=cliniko_key(REFERENCES),
        metadata={
            **totals,
            "fetched": totals["found_by_id"],
            "requests": totals["by_id_requests"],
            "by_resource": dg.MetadataValue.json(by_resource),
        },
    )


def _progress(context: dg.AssetExecutionContext, cliniko: ClinikoResource, client: ClinikoClient) -> ExtractionProgress:
    keys = _selected(context)
    tenant = f"tenant '{context.partition_key}'"
    return ExtractionProgress(
        context.log,
        f"{next(iter(keys)).to_user_string()} of {tenant}" if len(keys) == 1 else tenant,
        client.requests_made,
        budget=(cliniko.requests_per_window, cliniko.window_seconds),
        file_resources=frozenset(spec.name for spec in CATALOG if spec.has_files),
    )


def _selected(context: dg.AssetExecutionContext) -> list[dg.AssetKey]:
    """The step's selected ``cliniko/*`` assets (a step may hold a Splose asset too: ``file_step``)."""
    return [key for key in context.selected_asset_keys if key.path[0] == "cliniko"]


def api_key_for(context: dg.AssetExecutionContext, splose: SploseResource, run_import: RunImport | None) -> Secret:
    """The clinic's key from its import request (read at run time, kept in memory only).

    Read acting for the tenant's workspace, so Splose too refuses the key of another workspace's import.
    Without an import request (local development only) it is ``CLINIKO_API_KEY__<TENANT>``.
    """
    tenant = context.partition_key
    if run_import is None:
        return local_development_key(tenant)
    with splose.workspace(tenant, log=context.log) as workspace:
        return workspace.imports.credentials(run_import.import_id)


def local_development_key(tenant: str) -> Secret:
    """A tenant's Cliniko key for local development runs without an import request."""
    name = "CLINIKO_API_KEY__" + re.sub(r"[^A-Z0-9]", "_", tenant.upper())
    value = os.environ.get(name, "").strip()
    if not value:
        raise ClinikoAuthError(
            f"No Cliniko API key for tenant '{tenant}' in this local development run: set the environment "
            f"variable {name}, or run without local_development so the key comes from the import request."
        )
    return Secret(value)


def _metadata(outcome: ResourceOutcome) -> dict:
    stats = outcome.stats
    assert stats is not None
    metadata: dict = {
        "records": stats.records,
        "by_state": dg.MetadataValue.json(stats.by_state),
        "fetched": outcome.fetched,
        "unreadable": outcome.unreadable,
        "removed_since_last_sync": stats.removed,
        "requests": outcome.requests,
        "mode": outcome.mode,
        "cursor": outcome.cursor or "",
        "duration_seconds": outcome.duration_seconds,
    }
    for state, count in stats.by_state.items():
        metadata[f"state_{state}"] = count
    metadata["shortfall"] = sum(outcome.shortfalls.values())
    if outcome.shortfalls:
        metadata["shortfall_by_route"] = dg.MetadataValue.json(outcome.shortfalls)
    if outcome.old_routes:
        metadata["old_routes"] = dg.MetadataValue.json(outcome.old_routes)
    if outcome.filters_honoured:
        metadata["filters_honoured"] = dg.MetadataValue.json(sorted(outcome.filters_honoured))
    if outcome.filters_refused:
        metadata["filters_refused"] = dg.MetadataValue.json(outcome.filters_refused)
    if outcome.not_detected:
        metadata["not_detected"] = dg.MetadataValue.json(outcome.not_detected)
    if outcome.by_page:
        metadata["listed_by_page"] = dg.MetadataValue.json(outcome.by_page)
    if outcome.listed_in_full:
        metadata["listed_in_full"] = dg.MetadataValue.json(outcome.listed_in_full)
    if outcome.syncs_since_by_id is not None:  # a resource others point at, listed in full again
        metadata["syncs_since_by_id"] = outcome.syncs_since_by_id
        metadata["kept_by_id"] = outcome.kept_by_id
    if outcome.id_listing is not None:
        metadata["id_listing"] = outcome.id_listing
        metadata["syncs_since_id_listing"] = outcome.syncs_since_id_listing
        metadata["vanished_in_cliniko"] = outcome.vanished
    if outcome.files is not None:
        metadata.update(outcome.files.metadata(), failed_files=dg.MetadataValue.json(outcome.failed_files[:200]))
    return metadata


def _log_findings(context: dg.AssetExecutionContext, tenant: str, outcome: ResourceOutcome) -> None:
    """What a data engineer should see: counts and routes only, never a record."""
    name = outcome.spec.name
    for route, missing in outcome.shortfalls.items():
        context.log.warning(
            f"cliniko/{name} of tenant '{tenant}': Cliniko counts {missing} more record(s) in {route} than it "
            "listed (a wrong count, or records it does not list). Counted as 'shortfall'; re-run to check again."
        )
    for route, detected in outcome.old_routes.items():
        if detected.startswith("used"):
            context.log.warning(f"cliniko/{name} of tenant '{tenant}': older route {route} {detected}.")
    for detail in outcome.not_detected.values():
        context.log.warning(
            f"cliniko/{name} of tenant '{tenant}': {detail}. The rest was staged; those records stay in Splose as "
            "they were (metadata 'not_detected'). Ask Cliniko support how this account lists them, and until then "
            "apply such changes in Splose by hand."
        )
    for route, how in outcome.by_page.items():
        context.log.warning(
            f"cliniko/{name} of tenant '{tenant}': {route}: {how}. What was listed is staged (metadata "
            "'listed_by_page'); if a record may be missing, re-run with full_refresh when the clinic is quiet."
        )
    for route, why in outcome.listed_in_full.items():
        context.log.info(f"cliniko/{name} of tenant '{tenant}': {route}: {why} (metadata 'listed_in_full').")
    if outcome.vanished:
        context.log.info(
            f"cliniko/{name} of tenant '{tenant}': {outcome.vanished} record(s) removed in Cliniko, staged as deleted."
        )


def _previous_sync(context: dg.AssetExecutionContext, tenant: str, resource: str) -> PreviousSync:
    """What the tenant's last materialization of this resource recorded for the next sync."""
    result = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=cliniko_key(resource), asset_partitions=[tenant]), limit=1
    )
    for record in result.records:
        materialization = record.asset_materialization
        if materialization is None:
            continue
        values = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
        cursor = values.get("cursor")
        return PreviousSync(
            cursor=str(cursor) if cursor else None,
            syncs_since_id_listing=int(values.get("syncs_since_id_listing") or 0),
            syncs_since_by_id=int(values.get("syncs_since_by_id") or 0),
            filters_honoured=frozenset(values.get("filters_honoured") or ()),
        )
    return PreviousSync()
