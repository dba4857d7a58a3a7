"""Contacts and patient attachments removed in Cliniko (no deletion feed, no stub) between two imports
are found on re-sync, staged as deleted and counted as "deleted in Cliniko" by the loads."""

from __future__ import annotations

from tests import test_import

DELETED = "deleted in Cliniko"
# The whole-import fixtures: a Splose sandbox and a tiny clinic's workspace and import request.
splose_sandbox = test_import.splose_sandbox
tiny_import = test_import.tiny_import


def _extracted(result) -> dict[str, dict]:
    """Metadata of each cliniko/<resource> materialization of a run."""
    found = {}
    for event in result.all_events:
        if event.event_type_value == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            if materialization.asset_key.path[0] == "cliniko":
                found[materialization.asset_key.path[-1]] = {
                    k: getattr(v, "value", v) for k, v in materialization.metadata.items()
                }
    return found


def test_contacts_and_attachments_removed_in_cliniko_are_staged_deleted_and_counted(tiny_import, instance):
    clinic = tiny_import.clinic
    request = tiny_import.submit()
    first = test_import._rows(tiny_import.run(instance, request))
    contact = next(rid for rid, (state, _) in clinic.staged_records("contacts").items() if state == "active")
    attachments = clinic.staged_records("patient_attachments")
    attachment = next(rid for rid, (state, r) in attachments.items() if state == "active" and r["processing_completed"])
    ops = [
        {"op": "delete", "resource": "contacts", "id": contact},
        {"op": "delete", "resource": "patient_attachments", "id": attachment},
    ]
    clinic.admin.mutate(clinic.account, ops=ops)

    result = tiny_import.run(instance, request)

    assert result.success
    extracted = _extracted(result)
    for resource, rid in (("contacts", contact), ("patient_attachments", attachment)):
        assert clinic.staged_records(resource)[rid][0] == "deleted", resource
        assert extracted[resource]["mode"] == "incremental", resource
        assert extracted[resource]["vanished_in_cliniko"] == 1, resource
        assert extracted[resource]["id_listing"].startswith("Cliniko counts"), resource
        assert extracted[resource]["state_deleted"] == clinic.truth()[resource]["deleted"] == 1, resource
    rows = test_import._rows(result)
    for row in ("contacts", "files"):
        assert rows[row]["skipped_by_reason"].get(DELETED, 0) == first[row]["skipped_by_reason"].get(DELETED, 0) + 1
        assert rows[row]["cliniko"] == rows[row]["loaded"] + rows[row]["skipped"] + rows[row]["rejected"], row
        assert rows[row]["unaccounted"] == 0, row
