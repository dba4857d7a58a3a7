"""The import API layer (``splose-api.md`` section 2): import requests, bulk upserts, files, undo.

Callers: the platform token (acting for ``X-Splose-Workspace``) everywhere; a workspace key only on
``POST /imports``. On endpoints under ``/imports/{id}`` the import names its workspace; a workspace
header, when sent, must be that workspace.

``POST /imports/{id}/records/{entity}/remove`` with ``{"externalIds": [...]}`` (1 to 500 strings) takes out
of the workspace what the source deleted: every record PUT takes, and ``files`` (their stored bytes go
too). A record is found by the upsert's key (workspace, source, entity, external id), whichever import
made it, and each id is answered ``removed`` (with its Splose id) or ``absent`` (already gone). An id
sent twice, or a record that a record outside the request still refers to, is an error naming the kinds
and counts of its referrers: removal never cascades and never clears a reference, so the caller removes
the referrers first (an appointment before its client). The request is one transaction.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.splose.app import (
    IMPORT_PAGE_SIZE,
    ApiError,
    Caller,
    Sandbox,
    check_query,
    endpoint,
    int_param,
    json_body,
    page_links,
)
from sandbox.splose.jsonvalues import JsonBodyError, echo, parse_json, plain_problem, shown, strict_int
from sandbox.splose.lifecycle import (
    PATCH_TARGETS,
    STATUSES,
    cascade,
    check_delete,
    check_one_active,
    check_patch,
    count_kinds,
    delete_deadline,
    still_referred,
    without_references,
)
from sandbox.splose.multipart import Form, MultipartError, UploadedFile, read_form
from sandbox.splose.schemas import ENTITY_SCHEMAS, FILE_FIELDS, validate_record
from sandbox.splose.store import ImportRequest, Store, StoredObject, iso, utc_now
from sandbox.splose.validation import LONG_TEXT, RecordError, normalize, parse_datetime

MAX_BATCH = 500
SOURCES = ("cliniko",)
# Matched with ``fullmatch``: a ``$`` would let a final newline through.
SHARD_PATTERN = re.compile(r"[a-z]{2}\d{1,2}")
KEY_PATTERN = re.compile(r"[A-Za-z0-9_\-]+")
MIN_KEY_LENGTH = 20
DEFAULT_SHARD = "au1"
CROSSWALK_ENTITIES = (*ENTITY_SCHEMAS, "files")
CROSSWALK_PAGE_SIZE = 10_000  # rows are three short fields: a large clinic's crosswalk in a few pages
MAX_CONTENT_HASH = 128
MAX_FILE_BATCH = 100


def shard_of(key: str) -> str:
    """Cliniko's shard is the key's suffix after the last '-' (``...-uk2``); keys without one are au1."""
    _, sep, suffix = key.rpartition("-")
    return suffix if sep and SHARD_PATTERN.fullmatch(suffix) else DEFAULT_SHARD


def key_problem(key: Any) -> str | None:
    if not isinstance(key, str) or not key:
        return "required: the clinic's Cliniko API key"
    if key != key.strip() or any(ch.isspace() for ch in key):
        return "must not contain whitespace"
    if len(key) < MIN_KEY_LENGTH:
        return f"too short to be a Cliniko API key (at least {MIN_KEY_LENGTH} characters)"
    if not KEY_PATTERN.fullmatch(key):
        return "contains characters a Cliniko API key never has (letters, digits, '-' and '_' only)"
    return None


def import_json(request: ImportRequest, delete_window: timedelta) -> dict[str, Any]:
    deadline = delete_deadline(request, delete_window)
    return {
        "id": request.id,
        "workspaceId": request.workspace_id,
        "source": request.source,
        "status": request.status,
        "shard": request.shard,
        "include": request.include,
        "mapping": request.mapping,
        "counts": request.counts,
        "message": request.message,
        "createdAt": request.created_at,
        "updatedAt": request.updated_at,
        "completedAt": request.completed_at,
        "deleteDeadline": iso(deadline) if deadline else None,
    }


class Imports:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.store: Store = sandbox.store
        self.delete_window = timedelta(hours=sandbox.settings.delete_window_hours)

    # -- import requests --------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        caller = self.sandbox.import_caller(request, workspace_key_allowed=True)
        check_query(request, set())
        if caller.workspace_id is None:
            raise ApiError(400, "X-Splose-Workspace header required with the platform token")
        body = await json_body(request)
        errors: dict[str, str] = {}
        source = body.get("source")
        if source not in SOURCES:
            errors["source"] = f"must be one of {list(SOURCES)}"
        problem = key_problem(body.get("clinikoApiKey"))
        if problem:
            errors["clinikoApiKey"] = problem
        include = body.get("include", [])
        if not isinstance(include, list) or not all(isinstance(item, str) for item in include):
            errors["include"] = "must be a list of data type names"
        mapping = body.get("mapping", {})
        errors.update(self._mapping_problems(caller.workspace_id, mapping))
        unknown = sorted(set(body) - {"source", "clinikoApiKey", "include", "mapping"})
        for name in unknown:
            errors[name] = "unknown field"
        if errors:
            raise ApiError(422, "The import request is invalid", errors)
        key = body["clinikoApiKey"]
        created = await run_in_threadpool(self._add, caller.workspace_id, source, key, include, mapping)
        return JSONResponse(import_json(created, self.delete_window), status_code=201)

    def _add(
        self, workspace_id: str, source: str, key: str, include: list[str], mapping: dict[str, Any]
    ) -> ImportRequest:
        with self.store.transaction():
            check_one_active(self.store, workspace_id)
            return self.store.add_import(workspace_id, source, key, shard_of(key), include, mapping)

    def _mapping_problems(self, workspace_id: str, mapping: Any) -> dict[str, str]:
        if not isinstance(mapping, dict):
            return {"mapping": "must be an object"}
        kinds = {
            "locations": ("locations", "ignore"),
            "practitioners": ("practitioners", None),
            "users": ("practitioners", None),
            "services": ("services", "create"),
        }
        problems: dict[str, str] = {}
        for section, entries in mapping.items():
            if section not in kinds:
                problems[f"mapping.{section}"] = f"unknown section; expected one of {sorted(kinds)}"
                continue
            if not isinstance(entries, dict):
                problems[f"mapping.{section}"] = "must be an object of Cliniko id -> Splose id"
                continue
            kind, keyword = kinds[section]
            for cliniko_id, target in entries.items():
                if keyword is not None and target == keyword:
                    continue
                if isinstance(target, bool) or not isinstance(target, int):
                    allowed = f"a {kind[:-1]} id" + (f" or {keyword!r}" if keyword else "")
                    problems[f"mapping.{section}.{cliniko_id}"] = f"{target!r} is not {allowed}"
                elif self.store.get_object(workspace_id, kind, target) is None:
                    problems[f"mapping.{section}.{cliniko_id}"] = (
                        f"{kind[:-1]} {target} does not exist in the workspace"
                    )
        return problems

    def list_imports(self, request: Request) -> Response:
        caller = self.sandbox.import_caller(request)
        check_query(request, {"status", "id_gt", "id_lt"})
        where, params = "", []
        status = request.query_params.get("status")
        if status is not None:
            if status not in STATUSES:
                raise ApiError(400, f"status must be one of {list(STATUSES)}")
            where, params = "AND status = ?", [status]
        if caller.workspace_id is not None:
            where += " AND workspace_id = ?"
            params.append(caller.workspace_id)
        page = self.store.import_page(
            page_size=IMPORT_PAGE_SIZE,
            id_gt=int_param(request, "id_gt"),
            id_lt=int_param(request, "id_lt"),
            where=where,
            params=params,
        )
        data = [import_json(row, self.delete_window) for row in page.rows]
        return JSONResponse({"data": data, "links": page_links(request, page)})

    def _load(self, request: Request, caller: Caller) -> ImportRequest:
        try:
            import_id = strict_int(request.path_params["id"])
        except ValueError as error:
            raise ApiError(404, f"Import {shown(request.path_params['id'])} not found") from error
        found = self.store.get_import(import_id)
        if found is None or (caller.workspace_id is not None and found.workspace_id != caller.workspace_id):
            raise ApiError(404, f"Import {import_id} not found")
        return found

    def get(self, request: Request) -> Response:
        caller = self.sandbox.import_caller(request)
        check_query(request, set())
        return JSONResponse(import_json(self._load(request, caller), self.delete_window))

    def credentials(self, request: Request) -> Response:
        caller = self.sandbox.import_caller(request)
        check_query(request, set())
        return JSONResponse({"clinikoApiKey": self._load(request, caller).cliniko_api_key})

    async def patch(self, request: Request) -> Response:
        caller = self.sandbox.import_caller(request)
        check_query(request, set())
        self._load(request, caller)
        changes = self._patch_changes(await json_body(request))
        updated = await run_in_threadpool(self._apply_patch, request, caller, changes)
        return JSONResponse(import_json(updated, self.delete_window))

    @staticmethod
    def _patch_changes(body: dict[str, Any]) -> dict[str, Any]:
        errors = {name: "unknown field" for name in sorted(set(body) - {"status", "counts", "message"})}
        if "status" in body and body["status"] not in STATUSES:  # a known status off the machine is a 409
            errors["status"] = f"must be one of {list(PATCH_TARGETS)}"
        if body.get("counts") is not None and not isinstance(body["counts"], dict):
            errors["counts"] = "must be an object"
        if body.get("message") is not None and not isinstance(body["message"], str):
            errors["message"] = "must be a string"
        elif len(body.get("message") or "") > LONG_TEXT:
            errors["message"] = f"{len(body['message'])} characters is over the maximum of {LONG_TEXT}"
        if errors:
            raise ApiError(422, "The import update is invalid", errors)
        return body

    def _apply_patch(self, request: Request, caller: Caller, changes: dict[str, Any]) -> ImportRequest:
        """Check the move against the status machine and apply it, in one transaction."""
        with self.store.transaction():
            current = self._load(request, caller)
            status = changes.get("status", current.status)
            check_patch(current, status)
            columns = {name: changes[name] for name in ("status", "counts", "message") if name in changes}
            if status == "running" and current.status != "running":
                check_one_active(self.store, current.workspace_id, other_than=current.id)
            if status == "complete" and current.completed_at is None:
                columns["completed_at"] = iso(utc_now())
            self.store.update_import(current.id, **columns)
            updated = self.store.get_import(current.id)
        assert updated is not None
        return updated

    def delete(self, request: Request) -> Response:
        caller = self.sandbox.import_caller(request)
        check_query(request, set())
        with self.store.transaction():
            current = self._load(request, caller)
            check_delete(current, utc_now(), self.delete_window)
            everything = self.store.workspace_objects(current.workspace_id)
            doomed = cascade(everything, {obj.id for obj in everything if obj.import_id == current.id})
            removed = [obj for obj in everything if obj.id in doomed]
            self.store.delete_objects(doomed)
            cleared = self._clear_references(current, [obj for obj in everything if obj.id not in doomed], doomed)
            self.store.update_import(current.id, status="deleted")
            updated = self.store.get_import(current.id)
        for obj in removed:
            if obj.kind == "files":
                self._file_path(obj.workspace_id, obj.id).unlink(missing_ok=True)
        assert updated is not None
        return JSONResponse(
            {
                **import_json(updated, self.delete_window),
                "deletedRecords": count_kinds(removed),
                "cascadedRecords": count_kinds(obj for obj in removed if obj.import_id != current.id),
                "clearedReferences": count_kinds(cleared),
            }
        )

    def _clear_references(
        self, current: ImportRequest, kept: list[StoredObject], removed: set[int]
    ) -> list[StoredObject]:
        """Null every reference a kept record (one no import created: the cascade spares only those) holds
        to a removed one; the records changed."""
        changed = []
        for obj in kept:
            data = without_references(obj.data, removed)
            if data is not None:
                self.store.update_object(obj, data, current.id, obj.content_hash, action="referenceCleared")
                changed.append(obj)
        return changed

    # -- records ----------------------------------------------------------------------------------

    def _writable(self, request: Request) -> ImportRequest:
        caller = self.sandbox.import_caller(request)
        check_query(request, set())
        current = self._load(request, caller)
        self._check_not_deleted(current.id)
        return current

    def _check_not_deleted(self, import_id: int) -> None:
        """Checked again inside each write's transaction, so a concurrent DELETE leaves no record behind."""
        current = self.store.get_import(import_id)
        if current is None or current.status == "deleted":
            raise ApiError(409, f"Import {import_id} was deleted; it takes no more records", {"status": "deleted"})

    def _entity(self, request: Request, allowed: tuple[str, ...]) -> str:
        entity = request.path_params["entity"]
        if entity not in allowed:
            raise ApiError(404, f"Unknown entity {entity!r}; expected one of {list(allowed)}")
        return entity

    async def put_records(self, request: Request) -> Response:
        current = self._writable(request)
        entity = self._entity(request, tuple(ENTITY_SCHEMAS))
        body = await json_body(request, plain=False)  # each record is checked on its own
        records = body.get("records")
        if not isinstance(records, list):
            raise ApiError(400, 'The body must be {"records": [...]}', {"records": "must be a list"})
        if len(records) > MAX_BATCH:
            raise ApiError(413, f"At most {MAX_BATCH} records per request; this one has {len(records)}")
        results, errors = await run_in_threadpool(self._upsert_batch, current, entity, records)
        return JSONResponse({"results": results, "errors": errors})

    def _upsert_batch(
        self, current: ImportRequest, entity: str, records: list[Any]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Each record is written or refused on its own: a refused record never rolls back the others."""
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        first_seen: dict[str, int] = {}
        with self.store.transaction():
            self._check_not_deleted(current.id)
            for index, raw in enumerate(records):
                external_id = raw.get("externalId") if isinstance(raw, dict) else None
                try:
                    _check_first_in_batch(first_seen, external_id, index)
                    results.append(self._upsert_record(current, entity, raw))
                except RecordError as error:
                    errors.append({"externalId": echo(external_id), "message": str(error)})
        return results, errors

    async def remove_records(self, request: Request) -> Response:
        current = self._writable(request)
        entity = self._entity(request, CROSSWALK_ENTITIES)
        external_ids = _external_ids(await json_body(request))
        results, errors, removed = await run_in_threadpool(self._remove_batch, current, entity, external_ids)
        if entity == "files":
            for object_id in removed:
                self._file_path(current.workspace_id, object_id).unlink(missing_ok=True)
        return JSONResponse({"results": results, "errors": errors})

    def _remove_batch(
        self, current: ImportRequest, entity: str, external_ids: list[str]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int]]:
        """Remove, in one transaction, every requested record nothing outside the request refers to; the
        answer's results and errors, and the ids removed."""
        first_seen: dict[str, int] = {}
        errors: list[dict[str, Any]] = []
        found: dict[str, StoredObject | None] = {}
        with self.store.transaction():
            self._check_not_deleted(current.id)
            for index, external_id in enumerate(external_ids):
                try:
                    _check_first_in_batch(first_seen, external_id, index, "externalIds")
                except RecordError as error:
                    errors.append({"externalId": external_id, "message": str(error)})
                    continue
                found[external_id] = self.store.find_external(current.workspace_id, entity, current.source, external_id)
            requested = {obj.id for obj in found.values() if obj is not None}
            kept = still_referred(self.store.workspace_objects(current.workspace_id), requested) if requested else {}
            removed = sorted(requested - kept.keys())
            self.store.delete_objects(removed)
        results: list[dict[str, Any]] = []
        for external_id, obj in found.items():
            if obj is None:
                results.append({"externalId": external_id, "id": None, "action": "absent"})
            elif obj.id in kept:
                errors.append({"externalId": external_id, "message": _referred_message(kept[obj.id])})
            else:
                results.append({"externalId": external_id, "id": obj.id, "action": "removed"})
        return results, errors, removed

    def _upsert_record(self, current: ImportRequest, entity: str, raw: Any) -> dict[str, Any]:
        content_hash = _content_hash(raw.pop("contentHash", None) if isinstance(raw, dict) else None)
        data = validate_record(entity, raw)
        self._resolve(current, entity, data)
        external_id = data.pop("externalId")
        with self.store.savepoint():
            object_id, action = self._upsert(current, entity, external_id, data, content_hash)
        return {"externalId": external_id, "id": object_id, "action": action}

    def _upsert(
        self, current: ImportRequest, kind: str, external_id: str, data: dict[str, Any], content_hash: str | None
    ) -> tuple[int, str]:
        """The action is decided by the fields alone; the content hash given is kept either way."""
        existing = self.store.find_external(current.workspace_id, kind, current.source, external_id)
        if existing is None:
            object_id = self.store.insert_object(
                current.workspace_id,
                kind,
                data,
                source=current.source,
                external_id=external_id,
                import_id=current.id,
                content_hash=content_hash,
            )
            return object_id, "created"
        if existing.data == data:
            if existing.content_hash != content_hash:
                self.store.set_content_hash(existing.id, content_hash)
            return existing.id, "unchanged"
        self.store.update_object(existing, data, current.id, content_hash)
        return existing.id, "updated"

    def _resolve(self, current: ImportRequest, entity: str, data: dict[str, Any]) -> None:
        """Check every reference and add the Splose id each external id resolves to."""
        if entity == "clients":
            data["referringContactId"] = self._external(current, "contacts", data, "referringContactExternalId")
        elif entity == "appointments":
            self._splose_id(current, "services", data, "serviceId")
            self._location(current, data)
            self._splose_id(current, "practitioners", data, "practitionerId")
            data["repeatOfId"] = self._external(current, "appointments", data, "repeatOfExternalId")
            for index, patient in enumerate(data["appointmentPatients"]):
                patient["patientId"] = self._external(
                    current, "clients", patient, "clientExternalId", f"appointmentPatients[{index}]."
                )
        elif entity in ("availability", "providerNumbers"):
            self._splose_id(current, "practitioners", data, "practitionerId")
            self._location(current, data)
        elif entity == "progressNotes":
            data["patientId"] = self._external(current, "clients", data, "clientExternalId")
            self._splose_id(current, "practitioners", data, "practitionerId")
            data["appointmentId"] = self._external(current, "appointments", data, "appointmentExternalId")
            data["templateId"] = self._external(current, "progressNoteTemplates", data, "templateExternalId")
        _normalize_datetimes(data)

    def _external(
        self, current: ImportRequest, kind: str, data: dict[str, Any], field: str, prefix: str = ""
    ) -> int | None:
        external_id = data.get(field)
        if external_id is None:
            return None
        found = self.store.find_external(current.workspace_id, kind, current.source, external_id)
        if found is None:
            raise RecordError(f"{prefix}{field}: {external_id!r} does not match any imported {kind} record")
        return found.id

    def _splose_id(self, current: ImportRequest, kind: str, data: dict[str, Any], field: str) -> StoredObject | None:
        object_id = data.get(field)
        if object_id is None:
            return None
        found = self.store.get_object(current.workspace_id, kind, object_id)
        if found is None:
            raise RecordError(f"{field}: {object_id} is not a {kind[:-1]} of workspace {current.workspace_id!r}")
        return found

    def _location(self, current: ImportRequest, data: dict[str, Any]) -> None:
        location = self._splose_id(current, "locations", data, "locationId")
        if location is not None and location.archived:
            raise RecordError(f"locationId: location {location.id} ({location.data['title']!r}) is archived")

    # -- crosswalk --------------------------------------------------------------------------------

    def crosswalk(self, request: Request) -> Response:
        caller = self.sandbox.import_caller(request)
        check_query(request, {"id_gt", "id_lt"})
        current = self._load(request, caller)
        entity = self._entity(request, CROSSWALK_ENTITIES)
        page = self.store.page(
            current.workspace_id,
            entity,
            page_size=CROSSWALK_PAGE_SIZE,
            id_gt=int_param(request, "id_gt"),
            id_lt=int_param(request, "id_lt"),
            where="AND source = ? AND external_id IS NOT NULL",
            params=[current.source],
        )
        data = [{"externalId": obj.external_id, "id": obj.id, "contentHash": obj.content_hash} for obj in page.rows]
        return JSONResponse({"data": data, "links": page_links(request, page)})

    def counts(self, request: Request) -> Response:
        """How many records of the import's source the workspace holds, per entity: one cheap call."""
        caller = self.sandbox.import_caller(request)
        check_query(request, set())
        current = self._load(request, caller)
        found = self.store.count_external(current.workspace_id, current.source)
        return JSONResponse({"data": {entity: found.get(entity, 0) for entity in CROSSWALK_ENTITIES}})

    # -- files ------------------------------------------------------------------------------------

    def _file_path(self, workspace_id: str, object_id: int) -> Path:
        return self.store.files_dir / workspace_id / str(object_id)

    async def upload(self, request: Request) -> Response:
        current = self._writable(request)
        spool = self.store.files_dir / "spool"
        spool.mkdir(parents=True, exist_ok=True)
        cap = self.sandbox.settings.file_size_cap
        try:
            form = await read_form(request, spool, cap)
        except MultipartError as error:
            raise ApiError(400, f"Bad multipart body: {error}") from error
        try:
            return await run_in_threadpool(self._store_upload, current, form)
        finally:
            form.discard()

    def _store_upload(self, current: ImportRequest, form: Form) -> Response:
        return JSONResponse(self._store_file(current, form.fields, form.files.get("file")))

    async def upload_batch(self, request: Request) -> Response:
        """Several files in one multipart body: a ``manifest`` (JSON list, each entry the fields of a single
        upload plus ``part``, the name of its file part) and the file parts. Each file is stored or refused
        on its own, like the records of a batch."""
        current = self._writable(request)
        spool = self.store.files_dir / "spool"
        spool.mkdir(parents=True, exist_ok=True)
        try:
            form = await read_form(request, spool, self.sandbox.settings.file_size_cap)
        except MultipartError as error:
            raise ApiError(400, f"Bad multipart body: {error}") from error
        try:
            return await run_in_threadpool(self._store_batch, current, form)
        finally:
            form.discard()

    def _store_batch(self, current: ImportRequest, form: Form) -> Response:
        manifest = _batch_manifest(form)
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        first_seen: dict[str, int] = {}
        stored_from: dict[str, int] = {}  # file part -> the entry whose file it became (it is moved away)
        for index, entry in enumerate(manifest):
            external_id = entry.get("externalId")
            try:
                _check_first_in_batch(first_seen, external_id, index)
                problem = plain_problem(entry)
                if problem:
                    raise RecordError(problem)
                fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in entry.items() if v is not None}
                part = str(fields.pop("part", ""))
                _check_part_unused(stored_from, part, index)
                results.append(self._store_file(current, fields, form.files.get(part)))
                stored_from[part] = index
            except RecordError as error:
                errors.append({"externalId": echo(external_id), "message": str(error)})
            except ApiError as error:
                if error.status == 409:  # the import itself (deleted meanwhile): the whole batch is refused
                    raise
                errors.append({"externalId": echo(external_id), "message": _with_fields(error)})
        return JSONResponse({"results": results, "errors": errors})

    def _store_file(self, current: ImportRequest, given: dict[str, str], upload: UploadedFile | None) -> dict:
        if upload is None:
            raise ApiError(422, "The upload has no file part", {"file": "required"})
        if upload.over_cap:
            raise ApiError(
                413,
                f"File is {upload.size} bytes; the per-file size cap is {self.sandbox.settings.file_size_cap} bytes"
                f" ({self.sandbox.settings.file_size_cap_mb:g} MB)",
            )
        fields = _file_fields(given, upload)
        data = {
            **{name: fields[name] for name in ("clientExternalId", "filename", "contentType", "description")},
            "createdAt": iso(parse_datetime(fields["createdAt"])) if fields["createdAt"] else None,
            "size": upload.size,
            "sha256": upload.sha256,
        }
        with self.store.transaction():
            self._check_not_deleted(current.id)
            try:
                data["patientId"] = self._external(current, "clients", fields, "clientExternalId")
            except RecordError as error:
                raise ApiError(422, str(error), {"clientExternalId": str(error)}) from error
            object_id, action = self._upsert(current, "files", fields["externalId"], data, fields["contentHash"])
            if action != "unchanged":
                target = self._file_path(current.workspace_id, object_id)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(upload.path, target)
        return {
            "externalId": fields["externalId"],
            "id": object_id,
            "action": action,
            "size": upload.size,
            "sha256": upload.sha256,
        }


def _batch_manifest(form: Form) -> list[dict[str, Any]]:
    """The batch's manifest, parsed as strictly as a JSON body: JSON that is not acceptable is a 400, as a
    body's is; the values of each entry are checked with that entry (see ``_store_batch``)."""
    text = form.fields.get("manifest")
    if text is None:
        raise ApiError(422, "The batch has no manifest: a JSON list of files", {"manifest": "required"})
    try:
        manifest = parse_json(text.encode("utf-8"), "the manifest")
    except JsonBodyError as error:
        raise ApiError(400, f"The manifest is refused: {error}", {"manifest": str(error)}) from error
    if not isinstance(manifest, list) or not all(isinstance(entry, dict) for entry in manifest):
        raise ApiError(422, "The manifest must be a JSON list of objects", {"manifest": "must be a list"})
    if len(manifest) > MAX_FILE_BATCH:
        raise ApiError(413, f"At most {MAX_FILE_BATCH} files per batch; this one has {len(manifest)}")
    return manifest


def _with_fields(error: ApiError) -> str:
    return f"{error.message} {json.dumps(error.errors, sort_keys=True)}" if error.errors else error.message


def _file_fields(form_fields: dict[str, str], upload: UploadedFile) -> dict[str, Any]:
    """The upload's form fields, checked like a record (an empty field is an absent one)."""
    given: dict[str, Any] = {name: value for name, value in form_fields.items() if value != ""}
    content_hash = given.pop("contentHash", None)
    given.setdefault("filename", upload.filename)
    given.setdefault("contentType", upload.content_type or "application/octet-stream")
    try:
        fields = normalize(FILE_FIELDS, given)
    except RecordError as error:
        raise ApiError(422, f"The file upload is invalid: {error}", {str(error).split(":")[0]: str(error)}) from error
    if fields["sha256"] and fields["sha256"].lower() != upload.sha256:
        raise ApiError(
            422, "Checksum mismatch", {"sha256": f"the received bytes hash to {upload.sha256}, not {fields['sha256']}"}
        )
    try:
        fields["contentHash"] = _content_hash(content_hash)
    except RecordError as error:
        raise ApiError(422, f"The file upload is invalid: {error}", {"contentHash": str(error)}) from error
    return fields


def _content_hash(value: Any) -> str | None:
    """The client's fingerprint of a record as it sent it: opaque to Splose, kept with the crosswalk entry."""
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_CONTENT_HASH:
        raise RecordError(f"contentHash: {shown(value)} is not a string of 1 to {MAX_CONTENT_HASH} characters")
    return value


def _check_first_in_batch(first_seen: dict[str, int], external_id: Any, index: int, where: str = "records") -> None:
    """The same ``externalId`` twice in one batch: the second (and any later) occurrence is refused."""
    if not isinstance(external_id, str):
        return
    if external_id in first_seen:
        raise RecordError(
            f"externalId: {shown(external_id)} appears more than once in this batch (first at {where}"
            f"[{first_seen[external_id]}], this is {where}[{index}]); send each record once per request"
        )
    first_seen[external_id] = index


def _external_ids(body: dict[str, Any]) -> list[str]:
    """A removal's ``externalIds``: 1 to :data:`MAX_BATCH` non-empty strings (400 otherwise; 413 over, as PUT)."""
    errors = {name: "unknown field" for name in sorted(set(body) - {"externalIds"})}
    external_ids = body.get("externalIds")
    if not isinstance(external_ids, list) or not external_ids:
        errors["externalIds"] = f"must be a list of 1 to {MAX_BATCH} external ids"
    elif len(external_ids) > MAX_BATCH:
        raise ApiError(413, f"At most {MAX_BATCH} external ids per request; this one has {len(external_ids)}")
    else:
        errors.update(
            {
                f"externalIds[{index}]": f"{shown(value)} is not an external id (a non-empty string)"
                for index, value in enumerate(external_ids)
                if not isinstance(value, str) or not value
            }
        )
    if errors:
        raise ApiError(400, 'The body must be {"externalIds": ["...", ...]}', errors)
    return external_ids


def _referred_message(referrers: dict[str, int]) -> str:
    """Why a record stays: the kinds and counts of what still refers to it (never their fields)."""
    kinds = " and ".join(f"{count} {kind}" for kind, count in sorted(referrers.items()))
    return f"still referred to by {kinds}: remove those first"


def _check_part_unused(stored_from: dict[str, int], part: str, index: int) -> None:
    """A file part already stored for an earlier entry of the batch cannot be stored again."""
    if part in stored_from:
        raise RecordError(
            f"part: {shown(part)} is already the file of manifest[{stored_from[part]}] (this is manifest[{index}]);"
            " send each file in a part of its own"
        )


def _normalize_datetimes(data: dict[str, Any]) -> None:
    """Store every datetime in one spelling, so re-sending the same instant is ``unchanged``."""
    for name in ("start", "end", "createdAt", "finalizedAt", "statusUpdatedAt"):
        if data.get(name):
            data[name] = iso(parse_datetime(data[name]))
    for patient in data.get("appointmentPatients") or []:
        _normalize_datetimes(patient)


def routes(sandbox: Sandbox) -> list[Route]:
    api = Imports(sandbox)

    def route(path: str, handler: Any, method: str) -> Route:
        return Route(f"/v1{path}", endpoint(sandbox, handler), methods=[method])

    return [
        route("/imports", api.create, "POST"),
        route("/imports", api.list_imports, "GET"),
        route("/imports/{id}", api.get, "GET"),
        route("/imports/{id}", api.patch, "PATCH"),
        route("/imports/{id}", api.delete, "DELETE"),
        route("/imports/{id}/credentials", api.credentials, "GET"),
        route("/imports/{id}/records/{entity}", api.put_records, "PUT"),
        route("/imports/{id}/records/{entity}/remove", api.remove_records, "POST"),
        route("/imports/{id}/records/{entity}", api.crosswalk, "GET"),
        route("/imports/{id}/counts", api.counts, "GET"),
        route("/imports/{id}/files", api.upload, "POST"),
        route("/imports/{id}/files/batch", api.upload_batch, "POST"),
    ]
