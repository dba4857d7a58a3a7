"""Attachment content: a redirect to a signed URL on another host name that serves the bytes without auth."""

from __future__ import annotations

import hashlib
import time
from urllib.parse import urlsplit

import pytest
import requests

MAGIC = {
    "application/pdf": b"%PDF-",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": b"PK\x03\x04",
}


def content_location(api, attachment: dict) -> str:
    response = api.get(attachment["content"]["links"]["self"], allow_redirects=False)
    assert response.status_code == 302
    return response.headers["Location"]


def test_content_redirects_to_bytes_matching_the_export(api):
    exported = {a["id"]: a for a in api.export("patient_attachments")}
    attachments = api.items("/v1/patient_attachments")
    assert {a["content_type"] for a in attachments} >= set(MAGIC) | {"text/plain"}
    for attachment in attachments:
        location = content_location(api, attachment)
        parts = urlsplit(location)
        assert parts.hostname == "localhost" and parts.port == urlsplit(api.url).port
        data = requests.get(location, timeout=30).content
        assert len(data) == attachment["size"] == exported[attachment["id"]]["_bytes"]
        assert hashlib.sha256(data).hexdigest() == exported[attachment["id"]]["_sha256"]
        assert data.startswith(MAGIC.get(attachment["content_type"], b""))


def test_one_tiny_attachment_is_over_5_mb_and_streams(api):
    big = [a for a in api.export("patient_attachments") if a["size"] > 5 * 1024 * 1024]
    assert len(big) == 1
    response = requests.get(content_location(api, big[0]), stream=True, timeout=30)
    assert int(response.headers["Content-Length"]) == big[0]["size"]
    digest = hashlib.sha256()
    for chunk in response.iter_content(256 * 1024):
        digest.update(chunk)
    assert digest.hexdigest() == big[0]["_sha256"]


def test_file_url_refuses_cliniko_auth_and_forged_tokens(api):
    attachment = api.items("/v1/patient_attachments")[0]
    location = content_location(api, attachment)
    with_auth = requests.get(location, auth=(api.keys["admin"], ""), timeout=30)
    assert with_auth.status_code == 403
    assert with_auth.text.startswith("<?xml") and "<Error>" in with_auth.text
    forged = location[:-3] + ("AAA" if not location.endswith("AAA") else "BBB")
    assert requests.get(forged, timeout=30).status_code == 403
    assert requests.get(location, timeout=30).status_code == 200


def test_content_counts_against_the_budget(api):
    api.admin_post("stats/reset", {})
    attachment = api.items("/v1/patient_attachments")[0]
    requests.get(content_location(api, attachment), timeout=30)
    paths = api.admin_get("stats")["keys"]["main/admin"]["paths"]
    assert paths["/v1/patient_attachments/:id/content"] == 1


@pytest.mark.parametrize("own_server", [["--signed-url-ttl", "1"]], indirect=True)
def test_file_url_expires(own_server):
    attachment = own_server.items("/v1/patient_attachments")[0]
    location = content_location(own_server, attachment)
    assert requests.get(location, timeout=30).status_code == 200
    time.sleep(1.2)
    expired = requests.get(location, timeout=30)
    assert expired.status_code == 403 and "AccessDenied" in expired.text
