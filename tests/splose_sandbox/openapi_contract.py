"""Validate recorded v1 responses against the published Splose OpenAPI spec.

The spec's facts live in the repository (``sandbox/splose/reference/splose-openapi-v1-facts.yml``, the
published ``openapi: 3.0.0`` document without its prose; see ``sandbox.splose.spec_facts``). It has two
spellings that a 3.0.3-style validator misreads, so the response schemas are read with 3.0.0's
meaning of ``nullable`` ("allows sending a null value for the defined schema") before validating:

- "string or null" is ``anyOf: [{type: string}, {type: string}, {nullable: true}]``. A branch that is
  nothing but ``{nullable: true}`` constrains nothing, so taken literally it accepts any value and
  makes the whole ``anyOf`` vacuous. It is read as ``{enum: [null]}``: a number where the spec says
  string-or-null is still caught.
- ``{type: string, nullable: true, enum: [...]}`` without null in the enum (appointment status,
  privacy policy, phone type, unit): under 3.0.3's clarification the enum would forbid null, which
  would make ``nullable`` pointless; under 3.0.0 null is allowed, so null is added to the enum.

A ``pattern`` is read as ECMA-262 reads it, where ``$`` is the end of the string; jsonschema hands it to
Python's ``re.search``, whose ``$`` also matches before a final newline (an availability ``startTime`` of
09:00 and a newline would pass). The ``email`` format is one address with nothing around it; the stock
check only looks for an ``@``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jsonschema import FormatChecker, ValidationError, validators
from jsonschema.protocols import Validator
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from sandbox.splose.spec_facts import load_facts

SCHEMA_KEYWORDS = {"type", "enum", "anyOf", "oneOf", "allOf", "not", "properties", "items", "$ref", "format"}
EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


@functools.cache
def ecma_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled so that ``$`` (outside a character class) matches at the end of the string only."""
    translated: list[str] = []
    escaped = in_class = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = r"\Z"
        translated.append(char)
    return re.compile("".join(translated))


def _ecma_pattern(
    validator: Validator, pattern: str, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


SpecValidator = validators.extend(OAS30Validator, {"pattern": _ecma_pattern})
FORMATS = FormatChecker(formats=())
FORMATS.checkers.update(oas30_format_checker.checkers)
FORMATS.checks("email")(lambda instance: not isinstance(instance, str) or bool(EMAIL.fullmatch(instance)))


def response_validator(method: str, path_template: str, status: int = 200) -> Validator:
    """A validator of one operation's response, as the spec means it (see the module docstring)."""
    return SpecValidator(response_schema(method, path_template, status), format_checker=FORMATS)


def nullable_as_in_oas_3_0_0(schema: Any) -> Any:
    """A copy of ``schema`` where ``nullable: true`` means "null is allowed", and only that, as in 3.0.0."""
    if isinstance(schema, list):
        return [nullable_as_in_oas_3_0_0(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    copied = {key: nullable_as_in_oas_3_0_0(value) for key, value in schema.items()}
    if copied.get("nullable") is True:
        if not SCHEMA_KEYWORDS & copied.keys():
            copied["enum"] = [None]
        elif "enum" in copied and None not in copied["enum"]:
            copied["enum"] = [*copied["enum"], None]
    return copied


def response_schema(method: str, path_template: str, status: int = 200) -> dict[str, Any]:
    operation = load_facts()["paths"][path_template][method.lower()]
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    return nullable_as_in_oas_3_0_0(schema)


def violations(record: dict[str, Any]) -> list[str]:
    """Every way one recorded response (``{method, path_template, status, body}``) breaks the spec."""
    if record["status"] != 200:
        return []
    validator = response_validator(record["method"], record["path_template"])
    where = f"{record['method']} {record['path_template']}"
    return [
        f"{where}: {'/'.join(str(part) for part in error.absolute_path) or '<body>'}: {error.message}"
        for error in validator.iter_errors(record["body"])
    ]


def read_records(directory: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted(directory.glob("*.ndjson")):
        records.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return records


def rule_breaches(records: list[dict[str, Any]]) -> list[str]:
    """Each distinct way the 200 responses among ``records`` break the published spec, by field path and rule
    only (the offending value may be patient data)."""
    problems = set()
    for record in records:
        if record["status"] != 200:
            continue
        for error in response_validator(record["method"], record["path_template"]).iter_errors(record["body"]):
            where = "/".join(str(part) for part in error.absolute_path) or "<body>"
            problems.add(f"{record['method']} {record['path_template']}: {where}: violates '{error.validator}'")
    return sorted(problems)
