"""Jobs: the whole import of one tenant, and its Cliniko extraction alone."""

import dagster as dg

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
