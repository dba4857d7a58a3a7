"""Nothing a client sends makes the sandbox answer 500: bad values are per-record errors, bad bodies a 400."""

from __future__ import annotations

import json

import requests

BIG = 2**64 + 1
HUGE_LITERAL = "9" * 400


def client(external_id: str, **fields) -> dict:
    return {"externalId": external_id, "firstname": "Jo", "lastname": f"Client{external_id}", **fields}


def put_raw(workspace, import_id: int, entity: str, text: str | bytes) -> requests.Response:
    return workspace.platform.put(
        f"{workspace.splose.url}/v1/imports/{import_id}/records/{entity}",
        data=text.encode() if isinstance(text, str) else text,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )


def batch(*records: dict | str) -> str:
    """A records body; a str is spliced in as raw JSON (what ``json.dumps`` would never write)."""
    return '{"records": [' + ", ".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "]}"


def test_a_lone_surrogate_is_one_records_error_and_every_read_still_answers(splose, workspace):
    imp = workspace.start_import()
    answer = put_raw(
        workspace,
        imp["id"],
        "clients",
        batch(
            client("ok-1"),
            '{"externalId": "bad-name", "firstname": "Jo", "lastname": "\\ud800"}',
            '{"externalId": "bad-\\udfff", "firstname": "Jo", "lastname": "Doe"}',
            '{"externalId": "bad-key", "firstname": "Jo", "lastname": "Doe", "\\ud83d": 1}',
            client("ok-2", alert="caf\u00e9 \U0001f600"),  # real non-ASCII text is fine
        ),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [row["externalId"] for row in body["results"]] == ["ok-1", "ok-2"]
    messages = {row["externalId"]: row["message"] for row in body["errors"]}
    assert set(messages) == {"bad-name", "bad-\\udfff", "bad-key"}
    assert "lastname" in messages["bad-name"] and "surrogate" in messages["bad-name"]
    assert "surrogate" in messages["bad-\\udfff"]
    assert "unknown field" in messages["bad-key"]
    patients = workspace.v1.get(f"{splose.url}/v1/patients", timeout=5)
    assert patients.status_code == 200
    assert {row["alert"] for row in patients.json()["data"]} == {None, "caf\u00e9 \U0001f600"}


def test_numbers_no_column_holds_are_per_record_errors(workspace):
    imp = workspace.start_import()
    main = workspace.location("Main Street")
    answer = put_raw(
        workspace,
        imp["id"],
        "services",
        batch(
            {"externalId": "s-ok", "name": "Consult", "duration": 30},
            {"externalId": "s-big", "name": "Consult", "duration": BIG},
            f'{{"externalId": "s-huge", "name": "Consult", "duration": {HUGE_LITERAL}}}',
            '{"externalId": "s-inf", "name": "Consult", "duration": 1e400}',
            {"externalId": "s-float", "name": "Consult", "duration": 30.5},
        ),
    )
    assert answer.status_code == 200, answer.text
    assert [row["externalId"] for row in answer.json()["results"]] == ["s-ok"]
    messages = {row["externalId"]: row["message"] for row in answer.json()["errors"]}
    assert "out of range" in messages["s-big"]
    assert "400 characters" in messages["s-huge"]
    assert set(messages) == {"s-big", "s-huge", "s-inf", "s-float"}
    workspace.upsert(imp["id"], "clients", [client("1")])
    appointment = {
        "externalId": "a-big",
        "start": "2024-07-01T00:00:00Z",
        "end": "2024-07-01T01:00:00Z",
        "locationId": BIG,
        "practitionerId": -(2**70),
        "appointmentPatients": [{"externalId": "x", "clientExternalId": "1"}],
    }
    fine = {**appointment, "externalId": "a-ok", "locationId": main, "practitionerId": None}
    refused = workspace.upsert(imp["id"], "appointments", [appointment, fine])
    assert [row["externalId"] for row in refused["results"]] == ["a-ok"]
    assert "locationId" in refused["errors"][0]["message"]


def test_strings_over_their_maximum_and_wrong_types_are_per_record_errors(workspace):
    imp = workspace.start_import()
    result = workspace.upsert(
        imp["id"],
        "clients",
        [
            client("long-name", lastname="x" * 256),
            client("long-alert", alert="x" * 65_536),
            client("fits", lastname="x" * 255, alert="x" * 65_535),
            client("wrong-type", birthdate=19900101),
            client("wrong-list", phoneNumbers={"phoneNumber": "1"}),
            "not a record",
            {"externalId": ["a"], "firstname": "Jo", "lastname": "Doe"},
        ],
    )
    assert [row["externalId"] for row in result["results"]] == ["fits"]
    messages = {str(row["externalId"]): row["message"] for row in result["errors"]}
    assert messages["long-name"] == "lastname: 256 characters is over the maximum of 255"
    assert messages["long-alert"] == "alert: 65536 characters is over the maximum of 65535"
    assert "birthdate" in messages["wrong-type"] and "phoneNumbers" in messages["wrong-list"]
    assert messages["None"].startswith("record: expected object")
    assert "externalId" in messages["['a']"]


def test_the_same_external_id_twice_in_one_batch_refuses_the_second(workspace):
    imp = workspace.start_import()
    result = workspace.upsert(
        imp["id"], "clients", [client("1", email="first@example.com"), client("2"), client("1", email="second@x.y")]
    )
    assert [(row["externalId"], row["action"]) for row in result["results"]] == [("1", "created"), ("2", "created")]
    assert result["errors"] == [
        {
            "externalId": "1",
            "message": "externalId: '1' appears more than once in this batch (first at records[0], this is"
            " records[2]); send each record once per request",
        }
    ]
    assert [row["data"]["email"] for row in workspace.dump("clients") if row["externalId"] == "1"] == [
        "first@example.com"
    ]


def test_bodies_that_are_not_acceptable_json_are_400_with_a_reason(workspace):
    imp = workspace.start_import()
    cases = {
        "nested": ("[" * 100_000 + "]" * 100_000, "nested more than 32 levels"),
        "deep record": (batch({"externalId": "d", "name": "T", "sections": [], "printSettings": _deep(40)}), "nested"),
        "not json": ('{"records": [', "not valid JSON"),
        "nan": ('{"records": [{"externalId": "n", "duration": NaN}]}', "NaN"),
        "latin-1": ('{"records": [{"externalId": "caf\xe9"}]}'.encode("latin-1"), "not UTF-8"),
        "not an object": ("[1, 2]", "must be a JSON object"),
    }
    for name, (body, reason) in cases.items():
        answer = put_raw(workspace, imp["id"], "progressNoteTemplates", body)
        assert answer.status_code == 400, name
        assert reason in answer.json()["message"], name
    assert workspace.dump("progressNoteTemplates") == []


def _deep(levels: int) -> dict:
    node: dict = {}
    for _ in range(levels):
        node = {"a": node}
    return node


def test_a_file_upload_with_a_field_that_is_not_utf8_is_400_and_stores_nothing(workspace):
    imp = workspace.start_import()
    workspace.upsert(imp["id"], "clients", [client("1")])
    boundary = "b0undary"
    parts = [
        ("externalId", b"f1"),
        ("clientExternalId", b"1"),
        ("description", "caf\xe9".encode("latin-1")),
    ]
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
        for name, value in parts
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
        f"Content-Type: application/pdf\r\n\r\n%PDF\r\n--{boundary}--\r\n"
    ).encode()
    answer = workspace.platform.post(
        f"{workspace.splose.url}/v1/imports/{imp['id']}/files",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=10,
    )
    assert answer.status_code == 400
    assert "'description' is not UTF-8" in answer.json()["message"]
    surrogate = workspace.platform.post(
        f"{workspace.splose.url}/v1/imports/{imp['id']}/files",
        data={"externalId": "f2", "clientExternalId": "1", "description": "\ud800".encode("utf-8", "surrogatepass")},
        files={"file": ("a.pdf", b"%PDF", "application/pdf")},
        timeout=10,
    )
    assert surrogate.status_code == 400
    assert workspace.dump("files") == []


def test_single_object_bodies_refuse_what_cannot_be_stored_and_write_nothing(splose, workspace):
    url = f"{splose.url}/v1"
    for body in (
        '{"firstname": "Jo", "lastname": "\\ud800"}',
        f'{{"firstname": "Jo", "lastname": "Doe", "invoiceRecipientId": {BIG}}}',
        '{"firstname": "Jo", "lastname": "Doe", "ndisInfo": {"diagnosis": "\\udc00"}}',
    ):
        answer = workspace.v1.post(f"{url}/patients", data=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400, body
    assert workspace.v1.get(f"{url}/patients", timeout=5).json()["data"] == []

    imp = workspace.start_import()
    patch = f"{url}/imports/{imp['id']}"
    for body in ('{"counts": {"\\ud800": 1}}', f'{{"counts": {{"clients": {HUGE_LITERAL}}}}}', '{"message": 5}'):
        answer = workspace.platform.patch(patch, data=body, headers={"Content-Type": "application/json"})
        assert answer.status_code in (400, 422), body
    assert workspace.patch(imp["id"], message="x" * 65_536).status_code == 422
    mapping = '{"source": "cliniko", "clinikoApiKey": "' + "k" * 30 + '", "mapping": {"locations": {"\\ud800": 1}}}'
    other = splose.seed()
    answer = other.platform.post(f"{url}/imports", data=mapping, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert other.dump("imports") == []


def test_parameters_out_of_range_are_client_errors(splose, workspace):
    url = f"{splose.url}/v1"
    ann = workspace.practitioner("ann@example.com")
    queries = [
        ("/patients", {"id_gt": str(BIG)}),
        ("/patients", {"id_lt": "1_000"}),
        ("/appointments", {"patientId": str(BIG)}),
        ("/appointments", {"start_gt": "9999-12-31T23:59:59Z", "start_lt": "0000-01-01"}),
        (f"/patients/{BIG}", {}),
        (f"/availabilities/{ann}", {"startDate": "9999-12-01", "endDate": "9999-12-31", "locationId": "1e400"}),
    ]
    for path, params in queries:
        answer = workspace.v1.get(f"{url}{path}", params=params, timeout=5)
        assert answer.status_code == 400, (path, params)
    imports = workspace.platform.get(f"{url}/imports/{BIG}", timeout=5)
    assert imports.status_code == 404
    far = workspace.v1.get(
        f"{url}/availabilities/{ann}", params={"startDate": "9999-12-01", "endDate": "9999-12-31"}, timeout=5
    )
    assert far.status_code == 200


def post_manifest(workspace, import_id: int, manifest: str, contents: dict[str, bytes]) -> requests.Response:
    """A file batch whose manifest field is ``manifest`` exactly as given (raw text, not ``json.dumps``)."""
    return workspace.platform.post(
        f"{workspace.splose.url}/v1/imports/{import_id}/files/batch",
        data={"manifest": manifest},
        files={part: (f"{part}.pdf", content, "application/pdf") for part, content in contents.items()},
        timeout=30,
    )


def test_a_file_batch_manifest_that_is_not_acceptable_json_is_400_with_a_reason(workspace):
    imp = workspace.start_import()
    workspace.upsert(imp["id"], "clients", [client("1")])
    cases = {
        "nested": ("[" * 5000 + "]" * 5000, "nested more than 32 levels"),
        "not json": ('[{"externalId": "f1"', "not valid JSON"),
        "nan": ('[{"externalId": "f1", "clientExternalId": "1", "part": "a", "description": NaN}]', "NaN"),
    }
    for name, (manifest, reason) in cases.items():
        answer = post_manifest(workspace, imp["id"], manifest, {"a": b"%PDF"})
        assert answer.status_code == 400, (name, answer.text)
        assert answer.json()["message"].startswith("The manifest is refused:"), name
        assert reason in answer.json()["message"], name
    assert workspace.dump("files") == []


def test_a_file_batch_manifest_entry_with_a_value_that_cannot_be_stored_is_refused_on_its_own(workspace):
    imp = workspace.start_import()
    workspace.upsert(imp["id"], "clients", [client("1")])
    entry = '{"externalId": "%s", "clientExternalId": "1", "part": "a"%s}'
    manifest = (
        "["
        + ", ".join(
            [
                entry % ("ok", ""),
                entry % ("inf", ', "description": 1e400'),
                entry % ("huge", f', "description": {HUGE_LITERAL}'),
                entry % ("big", f', "description": {BIG}'),
                entry % ("surrogate", ', "description": "\\ud800"'),
            ]
        )
        + "]"
    )
    answer = post_manifest(workspace, imp["id"], manifest, {"a": b"%PDF"})
    assert answer.status_code == 200, answer.text
    assert [row["externalId"] for row in answer.json()["results"]] == ["ok"]
    messages = {row["externalId"]: row["message"] for row in answer.json()["errors"]}
    assert set(messages) == {"inf", "huge", "big", "surrogate"}
    assert all(message.startswith("description: ") for message in messages.values()), messages
    assert "out of range" in messages["inf"] and "out of range" in messages["big"]
    assert "surrogate" in messages["surrogate"]
    assert [(row["externalId"], row["data"]["description"]) for row in workspace.dump("files")] == [("ok", None)]


def test_two_manifest_entries_naming_one_file_part_store_it_once(workspace):
    imp = workspace.start_import()
    workspace.upsert(imp["id"], "clients", [client("1")])
    entries = [{"externalId": name, "clientExternalId": "1", "part": "a"} for name in ("first", "second")]
    answer = post_manifest(workspace, imp["id"], json.dumps(entries), {"a": b"%PDF"})
    assert answer.status_code == 200, answer.text
    assert [row["externalId"] for row in answer.json()["results"]] == ["first"]
    assert answer.json()["errors"] == [
        {
            "externalId": "second",
            "message": "part: 'a' is already the file of manifest[0] (this is manifest[1]); send each file in a"
            " part of its own",
        }
    ]
    assert [row["externalId"] for row in workspace.dump("files")] == ["first"]


def test_a_trailing_newline_never_satisfies_a_pattern_or_a_format(splose, workspace):
    """Python's ``$`` matches before a final newline; the spec's patterns are ECMA-262, where it is the end."""
    imp = workspace.start_import()
    ann, main = workspace.practitioner("ann@example.com"), workspace.location("Main Street")
    weekly = {"practitionerId": ann, "locationId": main, "weekday": 1, "endTime": "12:00", "timezone": "UTC"}
    hours = workspace.upsert(
        imp["id"],
        "availability",
        [
            {**weekly, "externalId": "ok", "startTime": "09:00"},
            {**weekly, "externalId": "newline", "startTime": "09:00\n"},
            {**weekly, "externalId": "short", "startTime": "9:00"},
        ],
    )
    assert [row["externalId"] for row in hours["results"]] == ["ok"]
    messages = {row["externalId"]: row["message"] for row in hours["errors"]}
    assert messages["newline"].startswith("startTime: '09:00\\n' does not match")
    assert messages["short"].startswith("startTime: '9:00' does not match")

    services = workspace.upsert(
        imp["id"],
        "services",
        [
            {"externalId": "ok", "name": "Consult", "duration": 30, "color": "#abcdef"},
            {"externalId": "newline", "name": "Consult", "duration": 30, "color": "#abcdef\n"},
        ],
    )
    assert [row["externalId"] for row in services["results"]] == ["ok"]
    assert services["errors"][0]["message"].startswith("color: '#abcdef\\n' does not match")

    clients = workspace.upsert(
        imp["id"], "clients", [client("ok", email="a@b.co"), client("newline", email="a@b.co\n")]
    )
    assert [row["externalId"] for row in clients["results"]] == ["ok"]
    assert clients["errors"][0]["message"] == "email: 'a@b.co\\n' is not a valid email"

    url = f"{splose.url}/v1"  # POST /contacts's email is format email (POST /patients's is any string)
    contact = {"type": "Doctor", "name": "Dr Hall", "email": "a@b.co\n"}
    answer = workspace.v1.post(f"{url}/contacts", json=contact, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["message"] == "email: 'a@b.co\\n' is not a valid email"
    for path in ("/patients", "/contacts"):  # the spec gives these two email parameters format email
        answer = workspace.v1.get(f"{url}{path}", params={"email": "a@b.co\n"}, timeout=5)
        assert answer.status_code == 400, path
        assert answer.json()["message"] == "email: must be an email address", path
    seeded = requests.post(f"{splose.url}/_sandbox/workspaces", json={"id": "clinic-newline\n"}, timeout=5)
    assert seeded.status_code == 400
    assert "is not a slug" in seeded.json()["message"]
