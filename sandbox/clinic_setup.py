"""A clinic's Splose workspace as it would be set up before importing, and its import mapping.

From a Cliniko sandbox account: every open business becomes a location (plus a closed one, archived),
every practitioner a Splose practitioner with the same email (inactive ones inactive), and half of the
appointment types existing services; the other half are mapped to "create". Archived businesses are
mapped to "ignore", so their appointments are skipped and counted.
"""

from __future__ import annotations

from sandbox.admin import ClinikoSandboxAdmin


def _id(link: dict | None) -> str | None:
    href = ((link or {}).get("links") or {}).get("self") or ""
    return href.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or None


def _by_id(admin: ClinikoSandboxAdmin, account: str, resource: str) -> dict[str, dict]:
    return {str(r["id"]): r for r in admin.export(account, resource)}


def workspace_seed(admin: ClinikoSandboxAdmin, account: str, workspace_id: str) -> dict:
    businesses = _by_id(admin, account, "businesses")
    users = _by_id(admin, account, "users")
    practitioners = _by_id(admin, account, "practitioners")
    types = _by_id(admin, account, "appointment_types")
    locations = [
        {"title": b["business_name"], "timezone": b.get("time_zone_identifier") or "Australia/Sydney"}
        for b in businesses.values()
        if not b.get("archived_at")
    ]
    locations.append({"title": "Old premises (closed)", "timezone": "Australia/Sydney", "archived": True})
    people = []
    for practitioner in practitioners.values():
        user = users.get(_id(practitioner.get("user")) or "", {})
        people.append(
            {
                "firstname": practitioner.get("first_name") or "Practitioner",
                "lastname": practitioner.get("last_name") or str(practitioner["id"]),
                "email": user.get("email") or f"practitioner-{practitioner['id']}@clinic.example",
                "isActive": practitioner.get("active") is not False,
            }
        )
    services = [
        {
            "name": t["name"],
            "duration": int(t.get("duration_in_minutes") or 30),
            "maxPatients": max(1, int(t.get("max_attendees") or 1)),
        }
        for n, t in enumerate(sorted(types.values(), key=lambda t: int(t["id"])))
        if n % 2 == 0
    ]
    return {"id": workspace_id, "name": f"{workspace_id} (demo)", "locations": locations, "practitioners": people,
            "services": services}  # fmt: skip


def import_mapping(admin: ClinikoSandboxAdmin, account: str, workspace: dict) -> dict:
    """The mapping a clinic would submit for the workspace that :func:`workspace_seed` set up."""
    users = _by_id(admin, account, "users")
    mapping: dict[str, dict[str, int | str]] = {"locations": {}, "practitioners": {}, "users": {}, "services": {}}
    for bid, business in _by_id(admin, account, "businesses").items():
        location = workspace["locations"].get(business["business_name"])
        mapping["locations"][bid] = location if location and not business.get("archived_at") else "ignore"
    for pid, practitioner in _by_id(admin, account, "practitioners").items():
        email = users.get(_id(practitioner.get("user")) or "", {}).get("email") or f"practitioner-{pid}@clinic.example"
        mapping["practitioners"][pid] = workspace["practitioners"][email]
    for tid, appointment_type in _by_id(admin, account, "appointment_types").items():
        service = workspace["services"].get(appointment_type["name"])
        mapping["services"][tid] = service if service else "create"
    return mapping
