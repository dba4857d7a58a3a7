"""The code location: every asset, resource, job, sensor and schedule of the importer."""

import dagster as dg

from cliniko_assets.extract import cliniko_extract
from cliniko_assets.jobs import extract_job, import_job
from cliniko_assets.load import load_assets, splose_mapping
from cliniko_assets.mapping import ImportRequestResource
from cliniko_assets.monitoring import stale_queued_runs
from cliniko_assets.report import import_report
from cliniko_assets.schedules import nightly_resync
from cliniko_assets.sensors import import_failed, import_requests, purge_deleted_imports
from splose_resources.cliniko import ClinikoResource
from splose_resources.notifier import NotifierResource
from splose_resources.splose import SploseResource
from splose_resources.staging import StagingStore

defs = dg.Definitions(
    assets=[cliniko_extract, splose_mapping, *load_assets, import_report],
    jobs=[import_job, extract_job],
    sensors=[import_requests, import_failed, purge_deleted_imports, stale_queued_runs],
    schedules=[nightly_resync],
    resources={
        "cliniko": ClinikoResource(),
        "staging": StagingStore(),
        "splose": SploseResource(),
        "import_request": ImportRequestResource(),
        "notifier": NotifierResource(),
    },
)
