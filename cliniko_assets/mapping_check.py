"""``splose/mapping_check``: the clinic's mapping checked before anything is written, as soon as the clinic's
businesses, users, practitioners and appointment types are staged.

It runs while the appointments and notes are still being extracted, so that the first loads (contacts, then
clients) start then too. Every business, practitioner and appointment type Cliniko lists is checked: mapped
to something the workspace has, ignored, or without data to import (for the few left unmapped, Cliniko is
asked which have records linking to them: :mod:`cliniko_assets.usage_probe`). Every problem is collected
and the run fails once, before any write, with one message listing them all and the matches to paste.
Each mapping entry for an id no list returns is checked against the workspace too.

The step also binds the run to its import (the facts every later step of the run uses instead of asking
Splose again) and reads the run's crosswalks once for the loads that run side by side after it. The
mapping step (:mod:`cliniko_assets.load`) resolves the whole mapping later, with the staged usage and the
records found by id, and creates the services mapped to "create".
"""

import dagster as dg

from cliniko_assets.catalog import linked_id, record_id
from cliniko_assets.extract import api_key_for, cliniko_key
from cliniko_assets.failures import step_failures
from cliniko_assets.lifecycle import bound_import
from cliniko_assets.loading import CHECK_ASSET, IMPORT_KEY, RUN_IMPORT_KEY, LoadRun
from cliniko_assets.mapping import UNKNOWN, ImportMapping, ImportRequestResource, Usage
from cliniko_assets.mapping_resolution import is_listed
from cliniko_assets.mapping_rows import MAPPED_RESOURCES, StagedMapping, resolve
from cliniko_assets.partitions import tenants
from cliniko_assets.reconciliation import splose_key
from cliniko_assets.references import read_account_settings
from cliniko_assets.rows import crosswalks_of
from cliniko_assets.usage_probe import probe_usage
from splose_resources.cliniko import ClinikoResource
from splose_resources.splose import SploseResource
from splose_resources.staging import StagingStore

CHECKED = ("businesses", "users", "practitioners", "appointment_types")


@dg.asset(
    key=splose_key(CHECK_ASSET),
    deps=[cliniko_key(resource) for resource in CHECKED],
    partitions_def=tenants,
    group_name="splose",
    kinds={"python"},
    description="The clinic's mapping checked against every business, user, practitioner and appointment type "
    "Cliniko lists and the Splose workspace, before any write: the run fails once, listing every problem.",
)
def splose_mapping_check(
    context: dg.AssetExecutionContext,
    staging: StagingStore,
    splose: SploseResource,
    cliniko: ClinikoResource,
    import_request: ImportRequestResource,
) -> dg.MaterializeResult:
    with step_failures(context.partition_key, f"splose/{CHECK_ASSET}") as where:
        run = LoadRun(context, staging, bound_import(context, splose, import_request))
        where.import_id = run.import_id
        records = {name: list(run.records(name)) for name in MAPPED_RESOURCES}
        unmapped = unmapped_listed(records, run.request.mapping)
        probe_metadata: dict = {"usage_probe_requests": 0}
        usage = mapped_ids(run.request.mapping)
        if any(unmapped.values()):
            with cliniko.client(run.tenant, api_key_for(context, splose, run.request), log=context.log) as client:
                probe = probe_usage(client, unmapped)
            probe_metadata = probe.metadata()
            for resource, ids in probe.used.items():
                getattr(usage, resource).update(ids)  # Usage names its sets after the resources
        staged = StagedMapping(records, usage, read_account_settings(run.staging, run.tenant), missing={})
        with splose.workspace(run.tenant, log=context.log) as workspace:
            resolved = resolve(run, staged, run.request.mapping, workspace.v1)
            if resolved.problems:
                raise dg.Failure(
                    description=resolved.failure_message(run.tenant),
                    metadata={
                        "problems": len(resolved.problems),
                        "proposed_mapping": dg.MetadataValue.json(resolved.proposals),
                        "what_to_do": "complete the mapping (run config or the import request), then re-run",
                    },
                )
            known = run.splose_sink(workspace.imports, CHECK_ASSET).known
            for entity in crosswalks_of(run.included):  # once for the run, before its loads start side by side
                known.prefetch(entity)
        context.log.info(
            f"The mapping of tenant '{run.tenant}' covers every item with data to import "
            f"({probe_metadata['usage_probe_requests']} Cliniko requests to find which unmapped items have data)."
        )
        return dg.MaterializeResult(
            metadata={
                IMPORT_KEY: dg.MetadataValue.text(str(run.import_id)),
                RUN_IMPORT_KEY: dg.MetadataValue.json(run.request.facts()),
                "problems": 0,
                "unmapped_listed": dg.MetadataValue.json({k: len(v) for k, v in unmapped.items()}),
                **probe_metadata,
                "proposed_mapping": dg.MetadataValue.json(resolved.proposals),
                **run.keep_mapping(resolved),
            }
        )


def unmapped_listed(records: dict[str, list[dict]], mapping: ImportMapping) -> dict[str, set[str]]:
    """The ids of the businesses, practitioners and appointment types Cliniko lists that the mapping leaves out
    (a practitioner counts as mapped through its user)."""
    listed = {name: [r for r in rows if is_listed(r)] for name, rows in records.items()}
    return {
        "businesses": _ids(listed["businesses"]) - set(mapping.locations),
        "practitioners": {
            pid
            for p in listed["practitioners"]
            if (pid := record_id(p)) and pid not in mapping.practitioners and linked_id(p, "user") not in mapping.users
        },
        "appointment_types": _ids(listed["appointment_types"]) - set(mapping.services),
    }


def mapped_ids(mapping: ImportMapping) -> Usage:
    """Every id the mapping names, as if in use: so that each entry is checked against the workspace, listed by
    Cliniko or not."""
    return Usage(
        businesses=set(mapping.locations),
        practitioners=set(mapping.practitioners),
        appointment_types=set(mapping.services) - {UNKNOWN},
    )


def _ids(rows: list[dict]) -> set[str]:
    return {rid for r in rows if (rid := record_id(r))}
