"""The code location: every asset, resource, job, sensor and schedule of the importer."""

from __future__ import annotations

import dagster as dg

from cliniko_assets.extract import cliniko_extract
from splose_resources.cliniko import ClinikoResource
from splose_resources.staging import StagingStore

extract_job = dg.define_asset_job(
    name="cliniko_extract_job",
    selection=dg.AssetSelection.groups("cliniko"),
    description="Extract every Cliniko resource of one tenant into staging.",
)

defs = dg.Definitions(
    assets=[cliniko_extract],
    jobs=[extract_job],
    resources={
        "cliniko": ClinikoResource(),
        "staging": StagingStore(),
    },
)
