"""The ``examples`` account: a clinic whose data is exactly the example records of Cliniko's API docs.

``examples/cliniko_api_examples.json`` holds every JSON example response of the docs' resource sections
(and of ``sections/settings.md``), verbatim, as extracted from https://github.com/redguava/cliniko-api
(the commit is in the file) by ``python -m sandbox.cliniko.examples <git dir of a cliniko-api clone>``.
They are kept as documented, quirks and all: ids as JSON integers and as strings, links to hosts such as
``http://api.cliniko.dev:3000``, a duplicated ``patient_phone_numbers`` key (a JSON reader keeps the last),
a trailing comma and a stray string that make two examples invalid JSON, and records whose links point at
ids no example has (appointment type 2, patient 82, business 3, ...), as real accounts' links do.

The account holds one record per resource and id: the examples of a resource in document order, the first
example of an id winning (so the "Get <resources>" list's record, not the update or delete variants of the
same id). A record of the "Get Inactive Practitioners" example is an inactive practitioner. Examples that
are not valid JSON even after dropping trailing commas are left out (their ids appear in other examples).
The account's settings are the ``GET /settings`` example; its users' keys are the administrator's (the only
user the docs show).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from sandbox.cliniko.schema import COLUMNS, INSERT_SQL, RESOURCES, create_indexes, create_tables, row_for
from sandbox.cliniko.settings import store_settings

EXAMPLES_FILE = Path(__file__).parent / "examples" / "cliniko_api_examples.json"
SECTIONS = (*RESOURCES, "settings")
INACTIVE_HEADING = "Get Inactive Practitioners"
TRAILING_COMMA = re.compile(r",(\s*[}\]])")
BLOCK = re.compile(r"```json\s*\n(.*?)\n```", re.S)
HEADING = re.compile(r"^(?:#+\s*(.+)|(.+)\n[-=]{3,})\s*$", re.M)


def load_examples() -> dict[str, Any]:
    return json.loads(EXAMPLES_FILE.read_text())


def parse(text: str) -> Any | None:
    """The example as a client reads it; a trailing comma is forgiven, anything else invalid is None."""
    for candidate in (text, TRAILING_COMMA.sub(r"\1", text)):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def records_of(section: str, body: Any) -> list[dict]:
    """The records an example response shows: a list envelope's records, or a single record."""
    if isinstance(body, dict) and isinstance(body.get(section), list):
        return [r for r in body[section] if isinstance(r, dict) and ("id" in r or "links" in r)]
    if isinstance(body, dict) and "id" in body:
        return [body]
    return []


def account_records(examples: list[dict]) -> dict[str, dict[str, tuple[dict, str]]]:
    """resource -> id -> (record, heading of the example it came from); the first example of an id wins."""
    found: dict[str, dict[str, tuple[dict, str]]] = {resource: {} for resource in RESOURCES}
    for example in examples:
        section = example["section"]
        if section not in found:
            continue
        for record in records_of(section, parse(example["json"])):
            found[section].setdefault(_id(record), (record, example["heading"]))
    return found


def _id(record: dict) -> str:
    """The record's id; a deletion stub (``/patients/deleted``) has it only in its link."""
    if record.get("id") is not None:
        return str(record["id"])
    return str(record["links"]["self"]).split("?")[0].rstrip("/").rsplit("/", 1)[-1]


def settings_example(examples: list[dict]) -> dict:
    first = next(e for e in examples if e["section"] == "settings" and e["heading"] == "Get Settings")
    return parse(first["json"])


def build_examples_database(path: Path) -> None:
    examples = load_examples()["examples"]
    tmp = path.with_suffix(f".tmp-examples{os.getpid()}")  # processes building it at once never share one
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    create_tables(db)
    for resource, records in account_records(examples).items():
        db.executemany(INSERT_SQL[resource], [_row(resource, r, heading) for r, heading in records.values()])
    store_settings(db, settings_example(examples))
    create_indexes(db)
    db.commit()
    db.close()
    tmp.replace(path)


def _row(resource: str, record: dict, heading: str) -> tuple:
    row = list(row_for(resource, record))
    for column in ("created_at", "updated_at"):  # NOT NULL columns; the body is left exactly as documented
        index = COLUMNS.index(column)
        row[index] = row[index] or "2013-01-01T00:00:00Z"
    if resource == "practitioners":  # the examples carry no "active" field: the route they came from says
        row[COLUMNS.index("state")] = "inactive" if heading == INACTIVE_HEADING else "active"
    return tuple(row)


# -- extraction from the docs (run by hand when the docs change) ---------------------------------------------


def extract(markdown: str, section: str) -> list[dict]:
    """Every ``json`` block after an "Example Response" marker, with the heading it belongs to."""
    examples = []
    headings = [(m.start(), (m.group(1) or m.group(2)).strip()) for m in HEADING.finditer(markdown)]
    for block in BLOCK.finditer(markdown):
        before = markdown[: block.start()]
        if "Example Response" not in before[before.rfind("```shell") if "```shell" in before else 0 :]:
            continue
        heading = next((text for start, text in reversed(headings) if start < block.start()), "")
        examples.append({"section": section, "heading": heading, "json": block.group(1)})
    return examples


def main(argv: list[str] | None = None) -> int:
    (git_dir,) = argv if argv is not None else sys.argv[1:]

    def show(name: str) -> str:
        return subprocess.run(
            ["git", "-C", git_dir, "show", f"HEAD:{name}"], check=True, capture_output=True, text=True
        ).stdout

    commit = subprocess.run(
        ["git", "-C", git_dir, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    examples = [e for section in SECTIONS for e in extract(show(f"sections/{section}.md"), section)]
    fixture = {
        "source": "https://github.com/redguava/cliniko-api",
        "commit": commit,
        "extracted_by": "python -m sandbox.cliniko.examples <git dir>",
        "note": "Every JSON example response of sections/<resource>.md and sections/settings.md, verbatim.",
        "examples": examples,
    }
    EXAMPLES_FILE.parent.mkdir(exist_ok=True)
    EXAMPLES_FILE.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(examples)} examples from {len(SECTIONS)} sections written to {EXAMPLES_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
