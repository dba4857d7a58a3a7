"""Jobs: the whole import of one tenant, its Cliniko extraction alone, and its preview.

Each runs for one tenant with nothing but the partition key: the run finds the tenant's import in
Splose (:mod:`cliniko_assets.resolution`). The undo and purge jobs are in :mod:`cliniko_assets.undo`.

Their steps run side by side in processes of their own, forked from a server that has the code location
loaded and resolved (:mod:`cliniko_assets.preload`):
each Cliniko resource's extraction, and each load as soon as what it reads is staged and the rows it
needs are loaded. The steps wait on request budgets far more than on the CPU, hence more of them at
once than the host has cores.
"""

import dagster as dg

from cliniko_assets.preview import PREVIEW_KEY

MAX_CONCURRENT_STEPS = 16

steps_side_by_side = dg.multiprocess_executor.configured(
    {
        "max_concurrent": MAX_CONCURRENT_STEPS,
        "start_method": {"forkserver": {"preload_modules": ["cliniko_assets.preload"]}},
    },
    name="steps_side_by_side",
)

import_job = dg.define_asset_job(
    name="import_job",
    selection=dg.AssetSelection.groups("cliniko", "splose"),
    description="Extract one tenant from Cliniko, map and load it into Splose, reconcile and report.",
    executor_def=steps_side_by_side,
)

extract_job = dg.define_asset_job(
    name="cliniko_extract_job",
    selection=dg.AssetSelection.groups("cliniko"),
    description="Extract every Cliniko resource of one tenant into staging.",
    executor_def=steps_side_by_side,
)

preview_job = dg.define_asset_job(
    name="preview_job",
    selection=dg.AssetSelection.groups("cliniko") | dg.AssetSelection.assets(PREVIEW_KEY),
    description="Extract one tenant into staging and show what its import would bring (splose/import_preview), "
    "writing nothing to Splose.",
    executor_def=steps_side_by_side,
)
