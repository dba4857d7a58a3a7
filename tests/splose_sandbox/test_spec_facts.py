"""The published spec's facts are in the repository, without prose, with their source, and still OpenAPI 3.0."""

from __future__ import annotations

import re

from sandbox.splose.spec_facts import FACTS_PATH, load_facts, strip_prose
from sandbox.splose.v1 import RESOURCES


def test_the_facts_name_their_source_and_keep_no_prose():
    facts = load_facts()
    source = facts["info"]["x-source"]
    assert source["url"] == "https://api.splose.com"
    assert source["servers"] == ["https://api.splose.com/v1"] == [server["url"] for server in facts["servers"]]
    assert (source["title"], source["version"], facts["openapi"]) == ("splose public API", "1.0.0", "3.0.0")
    assert re.fullmatch(r"[0-9a-f]{64}", source["sha256"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", source["copiedOn"])
    text = FACTS_PATH.read_text()
    assert "summary:" not in text
    assert "Welcome to the splose API" not in text
    assert "Get a paged array" not in text


def test_the_facts_keep_every_machine_readable_part_the_sandbox_serves():
    paths = load_facts()["paths"]
    for resource in RESOURCES:
        assert "get" in paths[resource.path] and "get" in paths[f"{resource.path}/{{id}}"]
    patients = paths["/patients"]
    assert [p["name"] for p in patients["get"]["parameters"]][:5] == [
        "id_gt",
        "id_lt",
        "update_gt",
        "update_lt",
        "include_archived",
    ]
    body = patients["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert (body["required"], body["additionalProperties"]) == (["firstname", "lastname"], False)
    assert {"invoiceRecipientId", "ndisNumber", "ndisInfo"} <= set(body["properties"])
    assert body["properties"]["communicationPreference"]["enum"] == ["NONE", "SMS", "SMS_EMAIL", "EMAIL"]
    contact = paths["/contacts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert contact["required"] == ["type", "name", "email"]
    assert contact["properties"]["email"]["format"] == "email"
    service = paths["/services/{id}"]["get"]["responses"]["200"]
    assert service["description"] == ""  # required by OpenAPI, emptied
    assert "description" in service["content"]["application/json"]["schema"]["properties"]  # a field, kept


def test_stripping_keeps_fields_named_like_keywords_and_values_as_they_are():
    spec = {
        "info": {"title": "t", "description": "prose", "x-logo": "l"},
        "paths": {
            "/a": {
                "get": {
                    "summary": "prose",
                    "x-mint": {"metadata": {"tag": "NEW"}},
                    "responses": {"200": {"description": "prose", "content": {}}},
                    "parameters": [{"name": "q", "description": "prose", "schema": {"enum": ["a"], "example": "a"}}],
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "properties": {
                                        "description": {"type": "string", "description": "prose"},
                                        "summary": {"type": "string", "default": {"description": "kept"}},
                                    }
                                }
                            }
                        }
                    },
                }
            }
        },
    }
    stripped = strip_prose(spec)
    operation = stripped["paths"]["/a"]["get"]
    assert stripped["info"] == {"title": "t"}
    assert set(operation) == {"responses", "parameters", "requestBody"}
    assert operation["responses"]["200"] == {"description": "", "content": {}}
    assert operation["parameters"] == [{"name": "q", "schema": {"enum": ["a"], "example": "a"}}]
    properties = operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert properties == {
        "description": {"type": "string"},
        "summary": {"type": "string", "default": {"description": "kept"}},
    }


def test_the_import_api_additions_stay_out_of_the_public_v1_spec():
    """Content hashes, counts and file batches are the import API's (tests/splose_sandbox/test_import_api.py):
    the published v1 spec, which the sandbox's v1 layer follows, has none of them."""
    facts = load_facts()
    text = FACTS_PATH.read_text()
    assert "contentHash" not in text and "/counts" not in text and "/files/batch" not in text
    assert not any(path.startswith("/imports") for path in facts["paths"])
    assert {resource.path for resource in RESOURCES} <= set(facts["paths"])
