"""A clinic's Splose workspace as it would be set up before importing, and its import mapping.

From a Cliniko sandbox account: every open business becomes a location (plus a closed one, archived), in
the business's time zone (its identifier, else its Rails label, else the account's zone); every
practitioner a Splose practitioner with the same email (inactive ones inactive); and half of the
appointment types existing services; the other half are mapped to "create". Archived businesses are
mapped to "ignore", so their appointments are skipped and counted.

Records Cliniko deleted but other records still point at are not part of the workspace: the clinic maps a
deleted business's id to its first location (as it would after reading the run's proposal); a deleted
practitioner and a deleted appointment type stay unmapped, so the import keeps those appointments without
the practitioner and gives the type a "Deleted appointment type <id>" service.
"""

from __future__ import annotations

from cliniko_assets.timezones import iana_zone
from sandbox.admin import ClinikoSandboxAdmin


def _id(link: dict | None) -> str | None:
    href = ((link or {}).get("links") or {}).get("self") or ""
    return href.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or None


def _by_id(admin: ClinikoSandboxAdmin, account: str, resource: str) -> dict[str, dict]:
    """The account's records of ``resource`` that Cliniko still has (deleted ones are only links now)."""
    return {str(r["id"]): r for r in admin.export(account, resource) if not r.get("deleted_at")}


def _deleted(admin: ClinikoSandboxAdmin, account: str, resource: str) -> list[str]:
    return [str(r["id"]) for r in admin.export(account, resource) if r.get("deleted_at")]


def zone_of(business: dict, account_zone: str | None) -> str:
    return (
        iana_zone(business.get("time_zone_identifier"))
        or iana_zone(business.get("time_zone"))
        or (iana_zone(account_zone) or "Australia/Sydney")
    )


def workspace_seed(admin: ClinikoSandboxAdmin, account: str, workspace_id: str) -> dict:
    businesses = _by_id(admin, account, "businesses")
    users = _by_id(admin, account, "users")
    practitioners = _by_id(admin, account, "practitioners")
    types = _by_id(admin, account, "appointment_types")
    account_zone = admin.settings(account)["account"].get("time_zone")
    locations = [
        {"title": b["business_name"], "timezone": zone_of(b, account_zone)}
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
    first_location = min((v for v in mapping["locations"].values() if v != "ignore"), default="ignore")
    for bid in _deleted(admin, account, "businesses"):
        mapping["locations"][bid] = first_location
    for pid, practitioner in _by_id(admin, account, "practitioners").items():
        email = users.get(_id(practitioner.get("user")) or "", {}).get("email") or f"practitioner-{pid}@clinic.example"
        mapping["practitioners"][pid] = workspace["practitioners"][email]
    for tid, appointment_type in _by_id(admin, account, "appointment_types").items():
        service = workspace["services"].get(appointment_type["name"])
        mapping["services"][tid] = service if service else "create"
    return mapping
