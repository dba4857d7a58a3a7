"""Validate recorded v1 responses against the published Splose OpenAPI spec.

The spec (``../shared/reference/splose-openapi-v1.yml``, an exact copy) spells "string or null" as
``anyOf: [{type: string}, {type: string}, {nullable: true}]``. In OpenAPI 3.0 ``nullable`` only
qualifies a ``type``, so a branch that is nothing but ``{nullable: true}`` would accept any value and
make the whole ``anyOf`` vacuous. The author's intent is "null", so such a branch is read as
``{enum: [null]}``: a number where the spec says string-or-null is still caught.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

SPEC_PATH = Path(__file__).resolve().parents[2].parent / "shared/reference/splose-openapi-v1.yml"
SCHEMA_KEYWORDS = {"type", "enum", "anyOf", "oneOf", "allOf", "not", "properties", "items", "$ref", "format"}


def null_only_branches_as_null(schema: Any) -> Any:
    """A copy of ``schema`` with every type-less ``{nullable: true}`` schema meaning exactly null."""
    if isinstance(schema, list):
        return [null_only_branches_as_null(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    copied = {key: null_only_branches_as_null(value) for key, value in schema.items()}
    if copied.get("nullable") is True and not SCHEMA_KEYWORDS & copied.keys():
        copied["enum"] = [None]
    return copied


@functools.cache
def load_spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC_PATH.read_text())


def response_schema(method: str, path_template: str, status: int = 200) -> dict[str, Any]:
    operation = load_spec()["paths"][path_template][method.lower()]
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    return null_only_branches_as_null(schema)


def violations(record: dict[str, Any]) -> list[str]:
    """Every way one recorded response (``{method, path_template, status, body}``) breaks the spec."""
    if record["status"] != 200:
        return []
    schema = response_schema(record["method"], record["path_template"])
    validator = OAS30Validator(schema, format_checker=oas30_format_checker)
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
