"""Content hashes: the same record always hashes the same, whatever its key order; any change shows."""

from __future__ import annotations

from pathlib import Path

from cliniko_assets.changes import content_hash, file_fingerprint
from splose_resources.splose import FileUpload


def test_a_record_hashes_the_same_whatever_its_key_order_and_its_own_hash():
    record = {"externalId": "7", "firstname": "Jo", "phoneNumbers": [{"code": "+61", "phoneNumber": "412"}]}
    reordered = {"phoneNumbers": [{"phoneNumber": "412", "code": "+61"}], "firstname": "Jo", "externalId": "7"}
    assert content_hash(record) == content_hash(reordered) == content_hash({**record, "contentHash": "old"})
    assert content_hash(record) != content_hash({**record, "firstname": "Joe"})
    assert content_hash(record) != content_hash({**record, "middleName": None})
    assert content_hash({"note": "bad \ud800 text"}) != content_hash({"note": "bad  text"})  # no encoding error


def test_a_file_hashes_its_fields_and_bytes_not_where_they_are_staged():
    upload = FileUpload("a1", "c1", Path("/staging/one"), filename="scan.pdf", sha256="0" * 64)
    moved = FileUpload("a1", "c1", Path("/elsewhere/two"), filename="scan.pdf", sha256="0" * 64, content_hash="x")
    assert file_fingerprint(upload) == file_fingerprint(moved)
    assert file_fingerprint(upload) != file_fingerprint(FileUpload("a1", "c1", Path("/s"), filename="scan.pdf"))
    renamed = FileUpload("a1", "c1", Path("/staging/one"), filename="other.pdf", sha256="0" * 64)
    assert file_fingerprint(upload) != file_fingerprint(renamed)
