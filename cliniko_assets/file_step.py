"""Step ``patient_files``: ``cliniko/patient_attachments`` and ``splose/files``, two assets in one step.

Patient attachments are most of a clinic's Cliniko requests: their bytes download last, once everything
else is staged and the mapping is resolved. Each file goes up to Splose as soon as its bytes are staged,
in the batches of :mod:`cliniko_assets.file_loads`, while the rest are still downloading; when the
downloads are done ``cliniko/patient_attachments`` is materialized, the attachments not sent yet (unchanged,
or staged by an earlier run) are counted and sent, and ``splose/files`` is materialized with its
reconciliation and checks. Each asset can be run alone (``can_subset``): the extraction job downloads
without loading, and ``splose/files`` alone loads what is staged.

Each asset keeps its own dependencies (the attachments on the patients and ``cliniko/references``, the
files on the attachments, the clients and the clients found by id), so the lineage is what it was with
two steps. The step starts once the mapping step has loaded the clients found by id, a few seconds after
``cliniko/references``; a run whose mapping fails therefore downloads no attachment bytes (its re-run does).
"""

import dagster as dg

from cliniko_assets.extract import (
    ExtractionSettings,
    api_key_for,
    cliniko_key,
    extract,
    extract_assets,
    extraction_spec,
)
from cliniko_assets.failures import step_failures
from cliniko_assets.file_loads import file_uploads
from cliniko_assets.load import check_specs, finished, load_row, row_run, row_spec
from cliniko_assets.loading import import_of_load
from cliniko_assets.mapping import ImportRequestResource
from cliniko_assets.partitions import tenants
from cliniko_assets.reconciliation import RowReport, splose_key
from cliniko_assets.rows import BY_NAME
from splose_resources.cliniko import ClinikoResource
from splose_resources.collector import bulk_work
from splose_resources.splose import SploseResource
from splose_resources.staging import StagingStore

ATTACHMENTS = "patient_attachments"
FILES = BY_NAME["files"]


@dg.multi_asset(
    name="patient_files",
    specs=[extraction_spec(ATTACHMENTS), row_spec(FILES)],
    check_specs=check_specs(FILES),
    partitions_def=tenants,
    can_subset=True,
)
def patient_files(
    context: dg.AssetExecutionContext,
    extraction: ExtractionSettings,
    cliniko: ClinikoResource,
    staging: StagingStore,
    splose: SploseResource,
    import_request: ImportRequestResource,
):
    tenant = context.partition_key
    downloading = cliniko_key(ATTACHMENTS) in context.selected_asset_keys
    uploading = splose_key(FILES.name) in context.selected_asset_keys
    what = " and ".join(
        name for name, selected in (("attachment downloads", downloading), ("file uploads", uploading)) if selected
    )
    with step_failures(tenant, f"Patient files ({what})") as where, bulk_work():
        run_import = import_of_load(context, splose, import_request)  # before any Cliniko request
        where.import_id = run_import.import_id if run_import else None

        def downloads(on_downloaded=None):
            return extract(
                context, extraction, cliniko, staging, api_key_for(context, splose, run_import), on_downloaded
            )

        if not uploading:
            yield from downloads()
            return
        run = row_run(context, staging, run_import, FILES)
        with splose.workspace(run.tenant, log=context.log) as workspace:
            run.sink = sink = run.splose_sink(workspace.imports, FILES.name)
            if downloading and run.included(FILES.selected_as):
                report = RowReport(FILES.label)
                run.tracker = run.progress(FILES.name, None)  # its total once the attachments are listed
                with file_uploads(run, report) as uploads:
                    yield from downloads(uploads.downloaded)
                    uploads.rest()
                extra = uploads.metadata()
            else:
                if downloading:
                    yield from downloads()
                report, extra = load_row(run, FILES)
            sink.save()
        yield finished(run, FILES, report, extra)


EXTRACTION_ASSETS = [*extract_assets, patient_files]  # every cliniko/* asset's step (patient_files with the files)
EXTRACTION = dg.AssetSelection.groups("cliniko")  # what of them extracts (not splose/files)
