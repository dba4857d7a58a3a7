"""Sandbox-only administration under ``/_sandbox`` (no auth; loopback only): workspaces, stats, dumps.

A seed document sets a workspace up the way a clinic would before importing (v1 cannot create these):

    {"id": "<slug>", "name": "...", "key": "<v1 key, optional: generated>",
     "locations": [{"title", "timezone", "archived"?, "abn"?, "address"?, "suburb"?, "state"?,
                    "postalCode"?, "country"?, "phone"?, "email"?, "services"?: [service names]}],
     "practitioners": [{"firstname", "lastname", "email", "isActive"?, "archived"?, "title"?,
                        "profession"?, "description"?, "roleName"?, "timezone"?,
                        "locations"?: [titles], "services"?: [names],
                        "providerNumbers"?: [{"type", "number", "location"?: title}]}],
     "services": [{"name", "duration", "type"?, "description"?, "code"?, "archived"?, "maxPatients"?}]}

A location's ``services`` (default: every service) become its ``associatedServiceIds``; a
practitioner's ``locations``/``services`` (default: every one) become its ``connections``. Seeding a
workspace id that already exists changes nothing and answers with what is there, so a server
restarted with the same ``--seed-workspace`` on the same database keeps its data.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.splose.app import ApiError, Sandbox, endpoint, json_body
from sandbox.splose.imports import import_json
from sandbox.splose.store import Store

SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # fullmatch: "$" would let a final newline through
SEEDED_KINDS = ("locations", "practitioners", "services")
DUMP_TABLES = (
    "locations",
    "practitioners",
    "services",
    "contacts",
    "clients",
    "appointments",
    "availability",
    "providerNumbers",
    "progressNoteTemplates",
    "progressNotes",
    "files",
    "imports",
)


class SeedError(ValueError):
    pass


def _require(item: dict[str, Any], names: tuple[str, ...], where: str) -> None:
    missing = [name for name in names if item.get(name) in (None, "")]
    if missing:
        raise SeedError(f"{where}: missing {', '.join(missing)}")


def seed_workspace(store: Store, seed: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create the workspace a seed document describes; returns (description, created)."""
    workspace_id = seed.get("id")
    if not isinstance(workspace_id, str) or not SLUG.fullmatch(workspace_id):
        raise SeedError(f"id: {workspace_id!r} is not a slug (lowercase letters, digits, '-')")
    if store.workspace(workspace_id) is not None:
        return describe_workspace(store, workspace_id), False
    locations = seed.get("locations", [])
    practitioners = seed.get("practitioners", [])
    services = seed.get("services", [])
    for index, item in enumerate(locations):
        _require(item, ("title", "timezone"), f"locations[{index}]")
    for index, item in enumerate(practitioners):
        _require(item, ("firstname", "lastname", "email"), f"practitioners[{index}]")
    for index, item in enumerate(services):
        _require(item, ("name", "duration"), f"services[{index}]")
    key = seed.get("key") or f"splose_{workspace_id}_{secrets.token_urlsafe(24)}"
    with store.transaction():
        store.add_workspace(workspace_id, seed.get("name") or workspace_id, key)
        service_ids = {item["name"]: store.insert_object(workspace_id, "services", dict(item)) for item in services}
        location_ids: dict[str, int] = {}
        for item in locations:
            wanted = item.get("services", list(service_ids))
            data = {k: v for k, v in item.items() if k != "services"}
            data["associatedServiceIds"] = [_lookup(service_ids, name, "service") for name in wanted]
            location_ids[item["title"]] = store.insert_object(workspace_id, "locations", data)
        for item in practitioners:
            data = {k: v for k, v in item.items() if k not in ("locations", "services", "providerNumbers")}
            data["connections"] = [
                *(
                    {"typeId": _lookup(location_ids, t, "location"), "type": "Location"}
                    for t in item.get("locations", list(location_ids))
                ),
                *(
                    {"typeId": _lookup(service_ids, n, "service"), "type": "Service"}
                    for n in item.get("services", list(service_ids))
                ),
            ]
            data["providerNumbers"] = [
                {
                    "type": number["type"],
                    "number": number["number"],
                    "locationId": _lookup(location_ids, number["location"], "location")
                    if number.get("location")
                    else None,
                }
                for number in item.get("providerNumbers", [])
            ]
            store.insert_object(workspace_id, "practitioners", data)
    return describe_workspace(store, workspace_id), True


def _lookup(ids: dict[str, int], name: str, what: str) -> int:
    if name not in ids:
        raise SeedError(f"unknown {what} {name!r}")
    return ids[name]


def describe_workspace(store: Store, workspace_id: str) -> dict[str, Any]:
    row = store.workspace(workspace_id)
    assert row is not None
    label = {"locations": "title", "practitioners": "email", "services": "name"}
    return {
        "id": row["id"],
        "name": row["name"],
        "key": row["key"],
        **{
            kind: {obj.data[label[kind]]: obj.id for obj in store.objects(workspace_id, kind, "AND source IS NULL")}
            for kind in SEEDED_KINDS
        },
    }


def routes(sandbox: Sandbox) -> list[Route]:
    store = sandbox.store

    async def create(request: Request) -> Response:
        try:
            described, created = seed_workspace(store, await json_body(request))
        except SeedError as error:
            raise ApiError(400, f"Bad seed document: {error}") from error
        return JSONResponse(described, status_code=201 if created else 200)

    def _workspace_id(request: Request) -> str:
        workspace_id = request.path_params["id"]
        if store.workspace(workspace_id) is None:
            raise ApiError(404, f"Workspace {workspace_id!r} not found")
        return workspace_id

    async def get(request: Request) -> Response:
        return JSONResponse(describe_workspace(store, _workspace_id(request)))

    async def stats(request: Request) -> Response:
        return JSONResponse({"keys": sandbox.limiter.stats(), "routes": sandbox.route_stats()})

    async def dump(request: Request) -> Response:
        workspace_id = _workspace_id(request)
        table = request.path_params["table"]
        if table not in DUMP_TABLES:
            raise ApiError(404, f"Unknown table {table!r}; expected one of {list(DUMP_TABLES)}")
        if table == "imports":
            rows = store.query("SELECT id FROM imports WHERE workspace_id = ? ORDER BY id", (workspace_id,))
            imports = [store.get_import(row["id"]) for row in rows]
            window = timedelta(hours=sandbox.settings.delete_window_hours)
            data = [import_json(item, window) for item in imports if item]
        else:
            data = [obj.dump() for obj in store.objects(workspace_id, table)]
        return JSONResponse({"data": data})

    return [
        Route("/_sandbox/workspaces", endpoint(sandbox, create, api=False), methods=["POST"]),
        Route("/_sandbox/workspaces/{id}", endpoint(sandbox, get, api=False), methods=["GET"]),
        Route("/_sandbox/stats", endpoint(sandbox, stats, api=False), methods=["GET"]),
        Route("/_sandbox/workspaces/{id}/dump/{table}", endpoint(sandbox, dump, api=False), methods=["GET"]),
    ]
