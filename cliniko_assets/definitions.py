"""The code location: every asset, resource, job, sensor and schedule of the importer.

Configuration is Dagster's own: base URLs and the Splose platform token are ``dg.EnvVar``s, read when a
run (or a sensor tick) starts, never at import time, and shown in the UI by name only. Staging and the
outbox live in the instance's home unless ``STAGING_URI`` is set.
"""

import os

import dagster as dg

from cliniko_assets.extract import ExtractionSettings
from cliniko_assets.file_step import EXTRACTION_ASSETS
from cliniko_assets.jobs import extract_job, import_job, preview_job
from cliniko_assets.load import load_assets, splose_mapping
from cliniko_assets.mapping import ImportRequestResource
from cliniko_assets.mapping_check import splose_mapping_check
from cliniko_assets.monitoring import stale_queued_runs
from cliniko_assets.preview import import_preview
from cliniko_assets.report import import_report
from cliniko_assets.schedules import nightly_resync
from cliniko_assets.sensors import import_cancelled, import_failed, import_requests
from cliniko_assets.undo import purge_deleted_imports_job, purge_deleted_imports_schedule, undo_import_job
from splose_resources.cliniko import ClinikoResource
from splose_resources.notifier import NotifierResource
from splose_resources.shared_limits import SHARED_STATE_VARIABLE
from splose_resources.splose import SploseResource
from splose_resources.staging import StagingStore


def shared_state() -> dict[str, dg.EnvVar]:
    """``SHARED_STATE_POSTGRES_URL`` when the code location is started with it: the rate limits (and the
    record of emails sent) then live in Postgres, shared by every node; else on this host."""
    if SHARED_STATE_VARIABLE not in os.environ:
        return {}
    return {"shared_state_postgres_url": dg.EnvVar(SHARED_STATE_VARIABLE)}


def cliniko_resource(**settings: object) -> ClinikoResource:
    """The Cliniko resource as the code location configures it: ``CLINIKO_API_URL`` read at run time."""
    return ClinikoResource(api_url=dg.EnvVar("CLINIKO_API_URL"), **{**shared_state(), **settings})


def splose_resource(**settings: object) -> SploseResource:
    """The Splose resource as the code location configures it: ``SPLOSE_API_URL`` and the platform token
    (``SPLOSE_PLATFORM_TOKEN``) read at run time."""
    return SploseResource(
        api_url=dg.EnvVar("SPLOSE_API_URL"),
        platform_token=dg.EnvVar("SPLOSE_PLATFORM_TOKEN"),
        **{**shared_state(), **settings},
    )


def staging_resource() -> StagingStore:
    """``STAGING_URI`` when the code location is started with it; else the instance home's ``staging``."""
    return StagingStore(uri=dg.EnvVar("STAGING_URI")) if "STAGING_URI" in os.environ else StagingStore()


def notifier_resource() -> NotifierResource:
    """Email through the mail server when ``SMTP_HOST`` is set at load time (``SMTP_PORT``, ``SMTP_USERNAME``
    and ``SMTP_PASSWORD`` read at run time); else the outbox in the instance's home."""
    if "SMTP_HOST" not in os.environ:
        return NotifierResource(**shared_state())
    optional = {
        field: variable
        for field, variable in (("smtp_username", "SMTP_USERNAME"), ("smtp_password", "SMTP_PASSWORD"))
        if variable in os.environ
    }
    return NotifierResource(
        smtp_host=dg.EnvVar("SMTP_HOST"),
        smtp_port=dg.EnvVar.int("SMTP_PORT") if "SMTP_PORT" in os.environ else 25,
        **{field: dg.EnvVar(variable) for field, variable in optional.items()},
        **shared_state(),
    )


defs = dg.Definitions(
    assets=[*EXTRACTION_ASSETS, splose_mapping_check, splose_mapping, *load_assets, import_report, import_preview],
    jobs=[import_job, extract_job, preview_job, undo_import_job, purge_deleted_imports_job],
    sensors=[import_requests, import_failed, import_cancelled, stale_queued_runs],
    schedules=[nightly_resync, purge_deleted_imports_schedule],
    resources={
        "cliniko": cliniko_resource(),
        "extraction": ExtractionSettings(),
        "staging": staging_resource(),
        "splose": splose_resource(),
        "import_request": ImportRequestResource(),
        "notifier": notifier_resource(),
    },
)
