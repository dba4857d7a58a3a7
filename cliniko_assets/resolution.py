"""Which import a run works for, from its tenant alone: the partition key is enough to run a clinic.

A run's import is, in this order:

1. the import id in run config (``resources.import_request.config.import_id``: the sensor's runs, the
   nightly re-sync, anything edited in the Launchpad);
2. the import id already recorded on the run (tag ``splose/import_id``): every step of one run works
   for the same import, even if the clinic submits another one meanwhile;
3. the tenant's latest import that is not deleted, read from Splose at run time (the import API lists
   a workspace's imports to a caller acting for it).

Its mapping and data types are those the clinic submitted with it, unless run config gives its own
(each field on its own). The first step to resolve it records the import id on the run (tags
``splose/import_id``, ``splose/import_from``, ``splose/mapping_from``) and logs where both came from;
the mapping (ids only) is in the metadata of the mapping assets and of the preview. Never a key.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from cliniko_assets.mapping import ImportMapping, ImportRequestResource, mapping_from_request
from splose_resources.splose import SploseImportClient

IMPORT_ID_TAG = "splose/import_id"
IMPORT_FROM_TAG = "splose/import_from"
MAPPING_FROM_TAG = "splose/mapping_from"
FROM_CONFIG = "run config"
FROM_TAG = "run tag"
FROM_LATEST = "latest import of the workspace"
FROM_REQUEST = "import request"

HOW_TO_SUBMIT = (
    "A clinic submits one from its Splose workspace: the Cliniko import (paste the Cliniko API key, map "
    "businesses, practitioners and appointment types, choose the data, Submit). The import-request sensor "
    "then launches it; or run the tenant again once it is submitted."
)


@dataclass(frozen=True)
class RunImport:
    """The import one run works for: the request as Splose holds it (never its key), mapping and data types."""

    tenant: str
    import_id: int
    mapping: ImportMapping
    include: tuple[str, ...]
    source: str
    mapping_source: str
    remove_most: bool = False  # more than half of a kind of record may leave Splose (run config confirms it)

    def included(self, data_type: str) -> bool:
        return not self.include or data_type in self.include

    def mapping_ids(self) -> dict[str, dict[str, str]]:
        """The mapping as recorded on the run: Cliniko ids to Splose ids (or 'ignore' / 'create')."""
        return self.mapping.model_dump()

    def facts(self) -> dict:
        """What a later step of the same run needs of it (ids and names only, never the key), as metadata."""
        return {
            "import_id": self.import_id,
            "mapping": self.mapping_ids(),
            "include": list(self.include),
            "source": self.source,
            "mapping_source": self.mapping_source,
            "remove_most": self.remove_most,
        }

    @classmethod
    def from_facts(cls, tenant: str, facts: dict) -> RunImport:
        return cls(
            tenant=tenant,
            import_id=int(facts["import_id"]),
            mapping=ImportMapping.model_validate(facts["mapping"]),
            include=tuple(facts["include"]),
            source=str(facts["source"]),
            mapping_source=str(facts["mapping_source"]),
            remove_most=bool(facts.get("remove_most", False)),
        )


def parse_import_id(value: str, tenant: str) -> int:
    if not str(value).isdigit():
        raise dg.Failure(
            description=f"Import id {value!r} of tenant '{tenant}' is not a Splose import id (digits only): set "
            "resources.import_request.config.import_id to the id of one of the workspace's import requests, or "
            "leave it empty to use the tenant's latest import.",
            metadata={"tenant": tenant, "what_to_do": "fix or clear the import id in the run config"},
        )
    return int(value)


def chosen_import_id(
    context: dg.AssetExecutionContext | dg.OpExecutionContext, import_request: ImportRequestResource, tenant: str
) -> tuple[int | None, str]:
    """The import id run config or the run's own tag names, and which; ``None`` when the latest is wanted."""
    if import_request.import_id:
        return parse_import_id(import_request.import_id, tenant), FROM_CONFIG
    tags = run_tags(context)
    if tags.get(IMPORT_ID_TAG):  # as the run's first step found it
        return parse_import_id(tags[IMPORT_ID_TAG], tenant), tags.get(IMPORT_FROM_TAG, FROM_TAG)
    return None, FROM_LATEST


def run_tags(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> dict[str, str]:
    """The run's tags as stored now (a step started earlier in the run may have added some)."""
    run = context.instance.get_run_by_id(context.run.run_id)
    return dict(run.tags) if run is not None else dict(context.run.tags)


def latest_import(imports: SploseImportClient, tenant: str) -> dict | None:
    """The workspace's newest import that is not deleted (``imports`` acts for the workspace)."""
    found = [
        request
        for request in imports.list_imports()
        if request.get("status") != "deleted" and str(request.get("workspaceId", "")) == tenant
    ]
    return max(found, key=lambda request: int(request["id"]), default=None)


def no_import(tenant: str) -> dg.Failure:
    return dg.Failure(
        description=f"Tenant '{tenant}' has no import request in Splose (its workspace lists none that is not "
        f"deleted), so there is nothing to run. {HOW_TO_SUBMIT}",
        metadata={"tenant": tenant, "what_to_do": "the clinic submits an import request in Splose"},
    )


def run_import_for(record: dict, tenant: str, import_request: ImportRequestResource, source: str) -> RunImport:
    """The run's import: the request's mapping and data types, unless run config gives its own."""
    mapping = import_request.mapping
    include = import_request.include
    return RunImport(
        tenant=tenant,
        import_id=int(record["id"]),
        mapping=mapping if mapping is not None else mapping_from_request(record.get("mapping") or {}),
        include=tuple(include if include is not None else record.get("include") or []),
        source=source,
        mapping_source=FROM_CONFIG if mapping is not None else FROM_REQUEST,
        remove_most=import_request.remove_most,
    )


def record_on_run(context: dg.AssetExecutionContext | dg.OpExecutionContext, run_import: RunImport) -> None:
    """Tag the run with its import (once per run) and log what it resolved to: ids only."""
    tags = {
        IMPORT_ID_TAG: str(run_import.import_id),
        IMPORT_FROM_TAG: run_import.source,
        MAPPING_FROM_TAG: run_import.mapping_source,
    }
    current = run_tags(context)
    if all(current.get(key) == value for key, value in tags.items() if key != IMPORT_FROM_TAG):
        return
    context.instance.add_run_tags(context.run.run_id, tags)
    sizes = ", ".join(f"{len(ids)} {kind}" for kind, ids in run_import.mapping_ids().items())
    context.log.info(
        f"Tenant '{run_import.tenant}' runs import {run_import.import_id} ({run_import.source}); mapping from the "
        f"{run_import.mapping_source}: {sizes} (ids in the metadata of splose/locations); data types: "
        f"{', '.join(run_import.include) or 'all'}."
    )
