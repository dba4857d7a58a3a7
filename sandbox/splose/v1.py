"""The public v1 API layer, as ``reference/splose-openapi-v1.yml`` defines it (read side plus two creates).

Objects are stored in the sandbox's own shape (``store.py``); the serializers below render them with
every field the spec lists (``null`` or an empty list where the sandbox has nothing to say), so a
response validates against the spec's response schema.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.splose import spec_facts
from sandbox.splose.app import (
    V1_PAGE_SIZE,
    ApiError,
    Sandbox,
    check_query,
    endpoint,
    int_param,
    json_body,
    page_links,
)
from sandbox.splose.jsonvalues import strict_int, strict_number
from sandbox.splose.schemas import CONTACTS
from sandbox.splose.spec_facts import request_schema, response_properties
from sandbox.splose.store import Store, StoredObject, iso, utc_now
from sandbox.splose.validation import EMAIL_PATTERN, RecordError, Schema, normalize, parse_datetime

PAGING_PARAMS = {"id_gt", "id_lt", "update_gt", "update_lt", "include_archived"}
MAX_AVAILABILITY_DAYS = 100


def _deleted_at(obj: StoredObject) -> str | None:
    return obj.updated_at if obj.archived else None


def _stamps(obj: StoredObject, created_at: str | None = None) -> dict[str, Any]:
    return {"createdAt": created_at or obj.created_at, "updatedAt": obj.updated_at}


def location_json(store: Store, obj: StoredObject) -> dict[str, Any]:
    d = obj.data
    return {
        "id": obj.id,
        "title": d["title"],
        **{key: d.get(key) for key in ("abn", "address", "postalCode", "suburb", "state", "country", "phone", "email")},
        "onlineBooking": d.get("onlineBooking", False),
        "timezone": d.get("timezone"),
        "archived": obj.archived,
        "associatedServiceIds": d.get("associatedServiceIds", []),
        **_stamps(obj),
        "deletedAt": _deleted_at(obj),
    }


def practitioner_json(store: Store, obj: StoredObject) -> dict[str, Any]:
    d = obj.data
    imported = store.objects(
        obj.workspace_id, "providerNumbers", "AND json_extract(data, '$.practitionerId') = ?", (obj.id,)
    )
    provider_numbers = [
        *d.get("providerNumbers", []),
        *({k: p.data[k] for k in ("type", "number", "locationId")} for p in imported),
    ]
    return {
        "id": obj.id,
        "firstname": d["firstname"],
        "lastname": d["lastname"],
        "email": d.get("email"),
        "title": d.get("title"),
        "profession": d.get("profession"),
        "isActive": d.get("isActive", True),
        "description": d.get("description"),
        "roleName": d.get("roleName", "Practitioner"),
        "onlineBooking": d.get("onlineBooking", False),
        "timezone": d.get("timezone"),
        "connections": d.get("connections", []),
        "providerNumbers": provider_numbers,
        "archived": obj.archived,
        **_stamps(obj),
        "deletedAt": _deleted_at(obj),
    }


def service_json(store: Store, obj: StoredObject) -> dict[str, Any]:
    d = obj.data
    return {
        "id": obj.id,
        "for": "appointment",
        "name": d["name"],
        "description": d.get("description"),
        "type": d.get("type") or ("Group" if d.get("maxPatients", 1) > 1 else "Individual"),
        "code": d.get("code"),
        "duration": d.get("duration"),
        "unit": d.get("unit"),
        "pricing": d.get("pricing"),
        "taxType": None,
        "allowProviderTravel": False,
        "providerTravelItemCode": None,
        "providerTravelPricing": None,
        "allowProviderTravelNonLabourCosts": False,
        "providerTravelNonLabourCostsItemCode": None,
        "providerTravelNonLabourCostsPricing": None,
        "serviceTags": d.get("serviceTags", []),
        "archived": obj.archived,
        **_stamps(obj),
        "deletedAt": _deleted_at(obj),
    }


# Rendered by the sandbox itself; every other field of a v1 patient is the stored value (or null).
PATIENT_COMPUTED = frozenset(
    {"id", "archived", "patientTags", "customFields", "healthFund", "createdAt", "updatedAt", "deletedAt"}
)
PATIENT_FIELDS = [name for name in response_properties("/patients/{id}") if name not in PATIENT_COMPUTED]


def patient_json(store: Store, obj: StoredObject) -> dict[str, Any]:
    d = obj.data
    body: dict[str, Any] = {name: d.get(name) for name in PATIENT_FIELDS}
    body.update(
        {
            "id": obj.id,
            "archived": obj.archived,
            "patientTags": [],
            "customFields": [],
            "healthFund": None,
            **_stamps(obj, d.get("createdAt")),
            "deletedAt": _deleted_at(obj),
        }
    )
    if body["communicationPreference"] is None:
        del body["communicationPreference"]  # not nullable in the spec: left out when unset
    return body


CONTACT_FIELDS = [name for name in CONTACTS["properties"] if name not in ("externalId", "archived", "notes")]


def contact_json(store: Store, obj: StoredObject) -> dict[str, Any]:
    d = obj.data
    referred = store.objects(
        obj.workspace_id, "clients", "AND json_extract(data, '$.referringContactId') = ?", (obj.id,)
    )
    return {
        "id": obj.id,
        **{name: d.get(name) for name in CONTACT_FIELDS},
        "phoneNumbers": d.get("phoneNumbers") or [],
        "associatedPatientIds": [patient.id for patient in referred],
        "associatedInvoiceIds": [],
        "associatedCaseIds": [],
        "archived": obj.archived,
        **_stamps(obj),
    }


def appointment_json(store: Store, obj: StoredObject) -> dict[str, Any]:
    d = obj.data
    return {
        "id": obj.id,
        "start": d["start"],
        "end": d["end"],
        "isUnavailableBlock": False,
        "busyTimePractitionerIds": [],
        "serviceId": d.get("serviceId"),
        "locationId": d["locationId"],
        "practitionerId": d.get("practitionerId"),
        "maxPatients": d["maxPatients"],
        "appointmentPatients": [
            {
                "appointmentId": obj.id,
                "patientId": patient["patientId"],
                "caseId": None,
                "status": patient.get("status"),
                "note": patient.get("note"),
                "doNotInvoice": False,
                "invoiceId": None,
                "cancellationReason": patient.get("cancellationReason"),
                "cancellationRate": None,
                "cancellationNote": patient.get("cancellationNote"),
                "statusUpdatedAt": patient.get("statusUpdatedAt"),
            }
            for patient in d["appointmentPatients"]
        ],
        "repeatId": str(d["repeatOfId"]) if d.get("repeatOfId") else None,
        "recurringRule": None,
        "unit": None,
        "pricing": None,
        "total": None,
        "taxType": None,
        "supportItemIds": [],
        "note": d.get("note"),
        "archived": obj.archived,
        **_stamps(obj),
        "deletedAt": _deleted_at(obj),
    }


def _json_eq(path: str) -> str:
    return f"AND json_extract(data, '$.{path}') = ?"


def _in_list(array: str, path: str, op: str = "=") -> str:
    return (
        f"AND EXISTS (SELECT 1 FROM json_each(objects.data, '$.{array}') AS item"
        f" WHERE json_extract(item.value, '$.{path}') {op} ?)"
    )


def _bool_param(value: str) -> bool:
    return value == "true"


def _datetime_param(value: str) -> str:
    return iso(parse_datetime(value))


NEVER = "AND ? IS NULL"  # a filter on something the sandbox never stores (tags, codes): nothing matches


@dataclass(frozen=True)
class Filter:
    sql: str
    convert: Callable[[str], Any] = str


@dataclass(frozen=True)
class Resource:
    """One v1 resource: its stored kind, its JSON form, and the filters its list accepts."""

    path: str
    kind: str
    render: Callable[[Store, StoredObject], dict[str, Any]]
    filters: dict[str, Filter]


RESOURCES = [
    Resource("/locations", "locations", location_json, {"title": Filter(_json_eq("title"))}),
    Resource(
        "/practitioners",
        "practitioners",
        practitioner_json,
        {
            "firstname": Filter(_json_eq("firstname")),
            "lastname": Filter(_json_eq("lastname")),
            "email": Filter(_json_eq("email")),
            "isActive": Filter("AND coalesce(json_extract(data, '$.isActive'), 1) = ?", _bool_param),
            "roleName": Filter("AND coalesce(json_extract(data, '$.roleName'), 'Practitioner') = ?"),
        },
    ),
    Resource(
        "/services",
        "services",
        service_json,
        {
            "name": Filter(_json_eq("name")),
            "type": Filter(
                "AND coalesce(json_extract(data, '$.type'), CASE WHEN"
                " coalesce(json_extract(data, '$.maxPatients'), 1) > 1 THEN 'Group' ELSE 'Individual' END) = ?"
            ),
            "code": Filter(_json_eq("code")),
            "serviceTag": Filter(
                "AND EXISTS (SELECT 1 FROM json_each(objects.data, '$.serviceTags') AS tag WHERE tag.value = ?)"
            ),
        },
    ),
    Resource(
        "/patients",
        "clients",
        patient_json,
        {
            "firstname": Filter(_json_eq("firstname")),
            "lastname": Filter(_json_eq("lastname")),
            "email": Filter(_json_eq("email")),
            "birthdate": Filter(_json_eq("birthdate")),
            "phoneNumber": Filter(_in_list("phoneNumbers", "phoneNumber")),
            "patientTag": Filter(NEVER),
        },
    ),
    Resource(
        "/contacts",
        "contacts",
        contact_json,
        {
            "firstname": Filter(_json_eq("firstName")),
            "lastname": Filter(_json_eq("lastName")),
            "email": Filter(_json_eq("email")),
            "phoneNumber": Filter(_in_list("phoneNumbers", "phoneNumber")),
        },
    ),
    Resource(
        "/appointments",
        "appointments",
        appointment_json,
        {
            "start_gt": Filter("AND json_extract(data, '$.start') > ?", _datetime_param),
            "start_lt": Filter("AND json_extract(data, '$.start') < ?", _datetime_param),
            # ``type: number`` in the spec: an integral number (``6.0``) is that id, any other matches nothing.
            "patientId": Filter(_in_list("appointmentPatients", "patientId"), strict_number),
            "practitionerId": Filter(_json_eq("practitionerId"), strict_number),
            "status": Filter(_in_list("appointmentPatients", "status")),
            "status_update_gt": Filter(_in_list("appointmentPatients", "statusUpdatedAt", ">"), _datetime_param),
            "status_update_lt": Filter(_in_list("appointmentPatients", "statusUpdatedAt", "<"), _datetime_param),
        },
    ),
]


def _list_handler(sandbox: Sandbox, resource: Resource):
    allowed = PAGING_PARAMS | set(resource.filters)

    def handler(request: Request) -> Response:
        caller = sandbox.v1_caller(request)
        check_query(request, allowed)
        params = request.query_params
        check_query_values(resource.path, params)
        where: list[str] = []
        args: list[Any] = []
        include_archived = params.get("include_archived", "false")
        if include_archived not in ("true", "false"):
            raise ApiError(400, f"include_archived must be 'true' or 'false', got {include_archived!r}")
        if include_archived == "false":
            where.append("AND archived = 0")
        for name, op in (("update_gt", ">"), ("update_lt", "<")):
            if name in params:
                where.append(f"AND updated_at {op} ?")
                args.append(_convert(name, params[name], _datetime_param))
        for name, filter_ in resource.filters.items():
            if name in params:
                where.append(filter_.sql)
                args.append(_convert(name, params[name], filter_.convert))
        page = sandbox.store.page(
            caller.workspace_id or "",
            resource.kind,
            page_size=V1_PAGE_SIZE,
            id_gt=int_param(request, "id_gt"),
            id_lt=int_param(request, "id_lt"),
            where=" ".join(where),
            params=args,
        )
        data = [resource.render(sandbox.store, obj) for obj in page.rows]
        return JSONResponse({"data": data, "links": page_links(request, page)})

    return handler


@functools.cache
def _query_schemas(path: str) -> dict[str, dict[str, Any]]:
    """The spec's schema of each query parameter of ``GET path``."""
    parameters = spec_facts.operation(path, "get").get("parameters", [])
    return {p["name"]: p.get("schema", {}) for p in parameters if p.get("in") == "query"}


def check_query_values(path: str, params: Any) -> None:
    """A 400 for a query value the spec rules out: one outside its enum, or not an address where the
    parameter's format is ``email`` (``isActive=yes``, ``status=Foo``, ``email=bad``)."""
    for name, schema in _query_schemas(path).items():
        for value in params.getlist(name):
            allowed = [str(v) for v in schema.get("enum") or () if v is not None]
            if allowed and value not in allowed:
                raise ApiError(400, f"{name}: must be one of {', '.join(allowed)}", {name: "invalid value"})
            if schema.get("format") == "email" and not EMAIL_PATTERN.fullmatch(value):
                raise ApiError(400, f"{name}: must be an email address", {name: "invalid value"})


def _convert(name: str, value: str, convert: Callable[[str], Any]) -> Any:
    try:
        return convert(value)
    except ValueError as error:
        raise ApiError(400, f"{name}: invalid value {value!r}", {name: "invalid value"}) from error


def _path_id(request: Request, name: str = "id") -> int:
    """Every v1 path id is ``type: integer, minimum: 0, exclusiveMinimum: true``: anything else is a bad
    parameter (400), not a missing object."""
    try:
        number = strict_int(request.path_params[name])
    except ValueError as error:
        raise ApiError(400, f"{name}: {error}", {name: "must be a 64-bit integer"}) from error
    if number <= 0:
        raise ApiError(400, f"{name}: {number} must be greater than 0", {name: "must be greater than 0"})
    return number


def _get_handler(sandbox: Sandbox, resource: Resource):
    def handler(request: Request) -> Response:
        caller = sandbox.v1_caller(request)
        check_query(request, set())
        obj = sandbox.store.get_object(caller.workspace_id or "", resource.kind, _path_id(request))
        if obj is None:
            raise ApiError(404, f"{resource.path[1:].rstrip('s')} {request.path_params['id']} not found")
        return JSONResponse(resource.render(sandbox.store, obj))

    return handler


@dataclass(frozen=True)
class Create:
    """One v1 create: its request schema comes from the spec; ``semantics`` adds what the spec says in prose.

    The spec's machine-readable schema says only "string" for these; its prose (and its Datetime
    section) says what the string must hold, and Splose stores it as that.
    """

    resource: Resource
    semantics: dict[str, Schema]
    references: dict[str, str]

    @property
    def body_schema(self) -> Schema:
        schema = request_schema(self.resource.path, "post")
        for path, extra in self.semantics.items():
            node = schema
            for name in path.split("."):
                node = node["properties"][name]
            node.update(extra)
        return schema


DATE_TIME = {"format": "date-time"}
CREATES = [
    Create(
        next(r for r in RESOURCES if r.path == "/patients"),
        {
            "birthdate": {"format": "date"},  # "Patient birthdate in YYYY-MM-DD format"
            "timezone": {"format": "timezone"},  # an IANA name, e.g. "Australia/Adelaide"
            "createdAt": DATE_TIME,
            "updatedAt": DATE_TIME,
            "ndisInfo.startDate": DATE_TIME,
            "ndisInfo.endDate": DATE_TIME,
        },
        {"invoiceRecipientId": "contacts"},  # "The invoice recipient (contact) id of this patient"
    ),
    Create(next(r for r in RESOURCES if r.path == "/contacts"), {}, {}),
]


def _create_handler(sandbox: Sandbox, create: Create):
    """``POST /patients`` / ``POST /contacts``: one create, no external id (v1 has none).

    The body is checked in full and the answer rendered before the row is committed, so a refused
    body writes nothing and a retry cannot duplicate.
    """
    schema = create.body_schema

    async def handler(request: Request) -> Response:
        caller = sandbox.v1_caller(request)
        check_query(request, set())
        body = await json_body(request)
        try:
            data = normalize(schema, body)
        except RecordError as error:
            raise ApiError(400, str(error), {str(error).split(":")[0]: str(error)}) from error
        return await run_in_threadpool(_insert, sandbox.store, caller.workspace_id or "", create, data)

    return handler


def _insert(store: Store, workspace_id: str, create: Create, data: dict[str, Any]) -> Response:
    for name, kind in create.references.items():
        if data.get(name) is not None and store.get_object(workspace_id, kind, data[name]) is None:
            raise ApiError(400, f"{name}: {data[name]} is not one of the workspace's {kind}", {name: "not found"})
    if data.get("createdAt"):
        data["createdAt"] = iso(parse_datetime(data["createdAt"]))
    data.pop("updatedAt", None)  # the server keeps its own update time
    with store.transaction():
        object_id = store.insert_object(workspace_id, create.resource.kind, data, created_at=iso(utc_now()))
        obj = store.get_object(workspace_id, create.resource.kind, object_id)
        assert obj is not None
        return JSONResponse(create.resource.render(store, obj))


def _availability_handler(sandbox: Sandbox):
    def handler(request: Request) -> Response:
        caller = sandbox.v1_caller(request)
        check_query(request, {"startDate", "endDate", "locationId"})
        workspace_id = caller.workspace_id or ""
        practitioner_id = _path_id(request, "practitionerId")
        if sandbox.store.get_object(workspace_id, "practitioners", practitioner_id) is None:
            raise ApiError(404, f"practitioner {practitioner_id} not found")
        start, end = (_date_param(request, name) for name in ("startDate", "endDate"))
        if end < start:
            raise ApiError(400, "endDate is before startDate")
        if (end - start).days > MAX_AVAILABILITY_DAYS:
            raise ApiError(400, f"startDate and endDate must be at most {MAX_AVAILABILITY_DAYS} days apart")
        location_id = _number_param(request, "locationId")
        rows = sandbox.store.objects(workspace_id, "availability", _json_eq("practitionerId"), (practitioner_id,))
        data = [
            row
            for obj in rows
            if location_id is None or obj.data["locationId"] == location_id
            for row in expand_availability(obj.data, start, end)
        ]
        data.sort(key=lambda row: (row["date"], row["startTime"], row["locationId"]))
        return JSONResponse({"data": data})

    return handler


def _number_param(request: Request, name: str) -> float | None:
    """A ``type: number`` query parameter (the spec types ``locationId`` so): any finite number."""
    value = request.query_params.get(name)
    return None if value is None else _convert(name, value, strict_number)


def _date_param(request: Request, name: str) -> date:
    value = request.query_params.get(name)
    if value is None:
        raise ApiError(400, f"{name} is required", {name: "required"})
    return _convert(name, value, lambda text: parse_datetime(text).date())


def expand_availability(weekly: dict[str, Any], start: date, end: date) -> list[dict[str, Any]]:
    """Dated rows for one stored weekly row, from ``start`` to ``end`` inclusive (day ordinals: no overflow)."""
    step = 14 if weekly["repeatInterval"] == "Fortnightly" else 7
    anchor = date.fromisoformat(weekly["startDate"]) if weekly.get("startDate") else start
    first = anchor.toordinal() + (weekly["weekday"] - anchor.isoweekday()) % 7
    if first < start.toordinal():
        first += -((start.toordinal() - first) // -step) * step
    return [
        {
            "date": date.fromordinal(day).isoformat(),
            "locationId": weekly["locationId"],
            "startTime": weekly["startTime"],
            "endTime": weekly["endTime"],
            "repeatInterval": weekly["repeatInterval"],
        }
        for day in range(first, end.toordinal() + 1, step)
    ]


def routes(sandbox: Sandbox) -> list[Route]:
    table: list[Route] = []
    for resource in RESOURCES:
        table.append(
            Route(
                f"/v1{resource.path}",
                endpoint(sandbox, _list_handler(sandbox, resource), v1_template=resource.path),
                methods=["GET"],
            )
        )
        table.append(
            Route(
                f"/v1{resource.path}/{{id}}",
                endpoint(sandbox, _get_handler(sandbox, resource), v1_template=f"{resource.path}/{{id}}"),
                methods=["GET"],
            )
        )
    for create in CREATES:
        path = create.resource.path
        handler = _create_handler(sandbox, create)
        table.append(Route(f"/v1{path}", endpoint(sandbox, handler, v1_template=path), methods=["POST"]))
    table.append(
        Route(
            "/v1/availabilities/{practitionerId}",
            endpoint(sandbox, _availability_handler(sandbox), v1_template="/availabilities/{practitionerId}"),
            methods=["GET"],
        )
    )
    return table
