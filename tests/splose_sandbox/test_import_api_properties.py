"""Property-based: whatever a batch of records holds, the import API answers per record and never 500s.

Each example takes valid records of every entity and breaks some of them: a field replaced by any JSON
value (lone surrogates, integers beyond 64 bits, strings past their maximum, nested objects), unknown
fields, repeated external ids. The batch must come back with one answer per record (each written record
in ``results``, each refused one in ``errors``), and every v1 read of what was stored must still answer.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.slow

EXAMPLES = 60
ANY_CHARACTER = st.characters(codec=None, categories=("L", "N", "P", "S", "Zs", "Cc", "Cs"))  # Cs: surrogates
TEXT = st.text(alphabet=ANY_CHARACTER, max_size=12)
LONG = st.builds(lambda char, size: char * size, st.sampled_from("xé"), st.sampled_from([255, 256, 65_535, 65_536]))
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | LONG
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3))
V1_READS = ("/patients", "/contacts", "/services", "/appointments")


def valid_records(workspace) -> dict[str, dict]:
    main, ann = workspace.location("Main Street"), workspace.practitioner("ann@example.com")
    question = {"name": "Pain", "type": "paragraph"}
    return {
        "services": {"name": "Hydro", "duration": 45, "maxPatients": 4, "color": "#00aa00"},
        "contacts": {"firstName": "Greta", "doctorType": "GP", "phoneNumbers": [{"phoneNumber": "1"}]},
        "clients": {"firstname": "Jo", "lastname": "Doe", "birthdate": "1990-01-01", "referringContactExternalId": "c"},
        "appointments": {
            "start": "2024-07-01T00:00:00Z",
            "end": "2024-07-01T01:00:00Z",
            "locationId": main,
            "practitionerId": ann,
            "appointmentPatients": [{"externalId": "ap", "clientExternalId": "p", "status": "Arrived"}],
        },
        "availability": {
            "practitionerId": ann,
            "locationId": main,
            "weekday": 1,
            "startTime": "09:00",
            "endTime": "12:00",
            "timezone": "Australia/Sydney",
        },
        "providerNumbers": {"practitionerId": ann, "type": "Medicare", "number": "123"},
        "progressNoteTemplates": {"name": "SOAP", "sections": [{"name": "S", "questions": [question]}]},
        "progressNotes": {
            "clientExternalId": "p",
            "appointmentExternalId": "a",
            "status": "final",
            "sections": [{"name": "S", "questions": [{**question, "answer": "<p>ok</p>"}]}],
        },
    }


@st.composite
def broken_batch(draw, valid: dict) -> list:
    """A batch of 1-8 records, each valid or broken in one to three ways."""
    records = []
    for index in range(draw(st.integers(min_value=1, max_value=8))):
        record = {"externalId": draw(st.sampled_from(["x1", "x2", f"r{index}"]) | TEXT), **valid}
        for _ in range(draw(st.integers(min_value=0, max_value=3))):
            field = draw(st.sampled_from(sorted(valid)) | TEXT | st.just("externalId"))
            if draw(st.booleans()):
                record[field] = draw(VALUES)
            else:
                record.pop(field, None)
        records.append(record if draw(st.integers(0, 9)) else draw(VALUES))
    return records


def test_any_batch_gets_one_answer_per_record_and_reads_keep_working(splose):
    workspace = splose.seed()
    imp = workspace.start_import()
    workspace.upsert(imp["id"], "contacts", [{"externalId": "c"}])
    workspace.upsert(imp["id"], "clients", [{"externalId": "p", "firstname": "Al", "lastname": "Ive"}])
    base = {
        "start": "2024-07-01T00:00:00Z",
        "end": "2024-07-01T01:00:00Z",
        "locationId": workspace.location("Main Street"),
    }
    workspace.upsert(imp["id"], "appointments", [{"externalId": "a", **base, "appointmentPatients": []}])
    valid = valid_records(workspace)
    sent = {"records": 0, "written": 0, "refused": 0}

    @settings(
        max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(entity=st.sampled_from(sorted(valid)), data=st.data())
    def batch_is_answered_per_record(entity: str, data) -> None:
        records = data.draw(broken_batch(valid[entity]))
        answer = workspace.platform.put(
            f"{splose.url}/v1/imports/{imp['id']}/records/{entity}",
            data=json.dumps({"records": records}).encode(),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["results"]) + len(body["errors"]) == len(records)
        written = [row["externalId"] for row in body["results"]]
        assert len(written) == len(set(written))
        for path in V1_READS:
            assert workspace.v1.get(f"{splose.url}/v1{path}", params={"include_archived": "true"}).status_code == 200
        sent["records"] += len(records)
        sent["written"] += len(written)
        sent["refused"] += len(body["errors"])

    batch_is_answered_per_record()
    assert sent["records"] >= EXAMPLES
    assert sent["written"] > 0 and sent["refused"] > 0, sent


@given(
    fields=st.dictionaries(
        st.sampled_from(["externalId", "clientExternalId", "filename", "description", "createdAt", "sha256", "x"]),
        st.binary(max_size=40) | st.sampled_from([b"p", b"", b"2024-07-01", "\ud800".encode("utf-8", "surrogatepass")]),
        max_size=6,
    )
)
@settings(
    max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)
def test_any_upload_form_is_answered_without_a_server_error(splose_upload_target, fields):
    workspace, import_id = splose_upload_target
    answer = workspace.platform.post(
        f"{workspace.splose.url}/v1/imports/{import_id}/files",
        data=fields,
        files={"file": ("a.pdf", b"%PDF", "application/pdf")},
        timeout=10,
    )
    assert answer.status_code in (200, 400, 422), answer.text


@pytest.fixture(scope="module")
def splose_upload_target(splose):
    workspace = splose.seed()
    imp = workspace.start_import()
    workspace.upsert(imp["id"], "clients", [{"externalId": "p", "firstname": "Al", "lastname": "Ive"}])
    return workspace, imp["id"]
