"""The small JSON-schema subset the sandbox validates bodies with, and the storage rules on top of it.

Schemas are dicts: ``type`` (a name or a list of names, ``"null"`` for nullable), ``enum``,
``minimum``/``maximum``, ``minLength``/``maxLength``, ``pattern``, ``format`` (``date``, ``date-time``,
``timezone``, ``email``), ``properties``/``required``/``default`` and ``items``. Unknown keys of an
object are an error, never silently dropped.

A ``pattern`` or a format must hold for the whole string (``re.fullmatch``): JSON Schema patterns are
ECMA-262, where ``$`` is the end of the string, while Python's ``$`` also matches before a final newline,
so under ``re.match`` an availability ``startTime`` of 09:00 and a newline would pass ``schemas.HHMM``.

Whatever a schema says, what Splose stores obeys its columns (a realistic service is never kinder):
a string holds valid Unicode (no lone surrogate) and at most :data:`SHORT_TEXT` characters, or
:data:`LONG_TEXT` for free-text fields (:data:`LONG_TEXT_FIELDS`); an integer fits 64 bits; an
object without declared properties holds only storable values (``jsonvalues.plain_problem``).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.splose.jsonvalues import INT64_MAX, INT64_MIN, encodable, plain_problem, printable, shown

Schema = dict[str, Any]

SHORT_TEXT = 255
LONG_TEXT = 65_535
LONG_TEXT_FIELDS = frozenset(
    {
        "alert",
        "answer",
        "cancellationNote",
        "defaultAnswer",
        "description",
        "diagnosis",
        "extraBillingInfo",
        "extraInfo",
        "message",
        "note",
        "notes",
    }
)
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}
# Matched with ``fullmatch`` only (see the module docstring).
DATETIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{3})?Z)?")  # the three forms, no other
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class RecordError(ValueError):
    """A record breaks its schema; the message names the field and the offending value."""


def normalize(schema: Schema, value: Any, path: str = "") -> Any:
    """Validate ``value`` against ``schema`` and return it with every absent field set to its default."""
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    where = path or "record"
    if not any(_is_type(value, name) for name in types):
        raise RecordError(f"{where}: expected {' or '.join(types)}, got {shown(value)}")
    if value is None:
        return None
    if "enum" in schema and value not in schema["enum"]:
        raise RecordError(f"{where}: {shown(value)} is not one of {schema['enum']}")
    if isinstance(value, str):
        _check_string(schema, value, where)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _check_number(schema, value, where)
    elif isinstance(value, list) and "items" in schema:
        return [normalize(schema["items"], item, f"{path}[{index}]") for index, item in enumerate(value)]
    elif isinstance(value, dict) and "properties" in schema:
        return _normalize_object(schema, value, path)
    elif isinstance(value, dict | list):
        problem = plain_problem(value, where)
        if problem:
            raise RecordError(problem)
    return value


def _normalize_object(schema: Schema, value: dict[str, Any], path: str) -> dict[str, Any]:
    properties: dict[str, Schema] = schema["properties"]
    unknown = sorted(set(value) - set(properties))
    if unknown:
        raise RecordError(f"{path + '.' if path else ''}{printable(unknown[0])}: unknown field")
    result: dict[str, Any] = {}
    for name, field in properties.items():
        field_path = f"{path}.{name}" if path else name
        if name not in value:
            if name in schema.get("required", []):
                raise RecordError(f"{field_path}: required")
            result[name] = field.get("default")
            continue
        result[name] = normalize(field, value[name], field_path)
    return result


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, JSON_TYPES[name])


def _check_number(schema: Schema, value: float, where: str) -> None:
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise RecordError(f"{where}: {shown(value)} is out of range (64-bit integers only)")
    if "minimum" in schema and value < schema["minimum"]:
        raise RecordError(f"{where}: {value!r} is less than {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        raise RecordError(f"{where}: {value!r} is greater than {schema['maximum']}")


def max_length(schema: Schema, where: str) -> int:
    field = re.sub(r"\[\d+\]$", "", where).rsplit(".", 1)[-1]
    return schema.get("maxLength", LONG_TEXT if field in LONG_TEXT_FIELDS else SHORT_TEXT)


def _check_string(schema: Schema, value: str, where: str) -> None:
    if not encodable(value):
        raise RecordError(f"{where}: {shown(value)} is not valid Unicode (it holds a lone surrogate)")
    if len(value) < schema.get("minLength", 0):
        raise RecordError(f"{where}: must not be empty")
    limit = max_length(schema, where)
    if len(value) > limit:
        raise RecordError(f"{where}: {len(value)} characters is over the maximum of {limit}")
    if "pattern" in schema and not re.fullmatch(schema["pattern"], value):
        raise RecordError(f"{where}: {shown(value)} does not match {schema['pattern']}")
    fmt = schema.get("format")
    if fmt and not format_ok(fmt, value):
        raise RecordError(f"{where}: {shown(value)} is not a valid {fmt}")


def format_ok(fmt: str, value: str) -> bool:
    try:
        if fmt == "date":
            return bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)) and bool(date.fromisoformat(value))
        if fmt == "date-time":
            return bool(parse_datetime(value))
        if fmt == "timezone":
            return bool(ZoneInfo(value))
        if fmt == "email":
            return bool(EMAIL_PATTERN.fullmatch(value))
    except (ValueError, OSError, ZoneInfoNotFoundError):
        return False
    return True


def parse_datetime(text: str) -> datetime:
    """A UTC datetime in one of the forms v1 accepts (``2023-07-01``, ``...T00:00:00Z``, ``...T00:00:00.000Z``)."""
    if not DATETIME_PATTERN.fullmatch(text):
        raise ValueError(f"{shown(text)} is not a UTC datetime")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))
