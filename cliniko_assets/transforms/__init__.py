"""Pure transforms from staged Cliniko records to records of the Splose import API.

One module per row of the migration table; each function takes a record exactly as Cliniko's API
returns it (plus the ``_state`` and ``_source`` keys staging adds) and returns the Splose record, with
``externalId`` = the Cliniko id as a string, or a :class:`Skip` with a short stable reason. No I/O, no
Dagster, and no record makes a function raise. A record loaded without a field it could not use carries
the field names under the reserved key ``_warnings`` (:data:`WARNINGS`), which the load removes with
:func:`pop_warnings` and counts. Businesses, users and practitioners are mapped rather
than transformed (``ImportContext``), so they have no module here.
"""

from cliniko_assets.transforms.appointments import to_splose_appointment
from cliniko_assets.transforms.availability import to_splose_availability
from cliniko_assets.transforms.clients import to_splose_client
from cliniko_assets.transforms.common import ImportContext, Skip
from cliniko_assets.transforms.contacts import to_splose_contact
from cliniko_assets.transforms.files import to_splose_file
from cliniko_assets.transforms.group_appointments import to_splose_group_appointment
from cliniko_assets.transforms.progress_note_templates import to_splose_progress_note_template
from cliniko_assets.transforms.progress_notes import to_splose_progress_note
from cliniko_assets.transforms.provider_numbers import to_splose_provider_number
from cliniko_assets.transforms.salvage import WARNINGS, pop_warnings
from cliniko_assets.transforms.services import to_splose_service

__all__ = [
    "WARNINGS",
    "ImportContext",
    "Skip",
    "pop_warnings",
    "to_splose_appointment",
    "to_splose_availability",
    "to_splose_client",
    "to_splose_contact",
    "to_splose_file",
    "to_splose_group_appointment",
    "to_splose_progress_note",
    "to_splose_progress_note_template",
    "to_splose_provider_number",
    "to_splose_service",
]
