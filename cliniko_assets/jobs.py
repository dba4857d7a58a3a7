"""Jobs: the whole import of one tenant, its Cliniko extraction alone, and its preview.

Each runs for one tenant with nothing but the partition key: the run finds the tenant's import in
Splose (:mod:`cliniko_assets.resolution`). The undo and purge jobs are in :mod:`cliniko_assets.undo`.
"""

import dagster as dg

from cliniko_assets.preview import PREVIEW_KEY

import_job = dg.define_asset_job(
    name="import_job",
    selection=dg.AssetSelection.groups("cliniko", "splose"),
    description="Extract one tenant from Cliniko, map and load it into Splose, reconcile and report.",
)

extract_job = dg.define_asset_job(
    name="cliniko_extract_job",
    selection=dg.AssetSelection.groups("cliniko"),
    description="Extract every Cliniko resource of one tenant into staging.",
)

preview_job = dg.define_asset_job(
    name="preview_job",
    selection=dg.AssetSelection.groups("cliniko") | dg.AssetSelection.assets(PREVIEW_KEY),
    description="Extract one tenant into staging and show what its import would bring (splose/import_preview), "
    "writing nothing to Splose.",
)
