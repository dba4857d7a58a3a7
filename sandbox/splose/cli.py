"""``splose-sandbox`` / ``python -m sandbox.splose``: run the Splose sandbox on 127.0.0.1."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from sandbox.serving import serve
from sandbox.splose.app import DEV_PLATFORM_TOKEN, Settings, build_app


def load_seeds(paths: list[str]) -> list[dict[str, Any]]:
    """Seed documents from JSON or YAML files; a file holds one document or a list of them."""
    seeds: list[dict[str, Any]] = []
    for path in paths:
        text = Path(path).read_text()
        loaded = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
        seeds.extend(loaded if isinstance(loaded, list) else [loaded])
    return seeds


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="splose-sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="0 lets the OS pick a free port")
    parser.add_argument("--ready-file", help="written with {url, pid} once the server accepts connections")
    parser.add_argument("--db", default=str(Path(tempfile.gettempdir()) / "splose.db"), help="SQLite file (durable)")
    parser.add_argument(
        "--platform-token",
        default=os.environ.get("SPLOSE_PLATFORM_TOKEN", DEV_PLATFORM_TOKEN),
        help="the import API's platform token (default: $SPLOSE_PLATFORM_TOKEN, else a fixed dev value)",
    )
    parser.add_argument("--seed-workspace", action="append", default=[], help="JSON/YAML seed file (repeatable)")
    parser.add_argument("--v1-rate-limit", type=int, default=60, help="v1 calls per window per workspace key")
    parser.add_argument("--import-rate-limit", type=int, default=600, help="calls per window for the platform token")
    parser.add_argument(
        "--rate-window", type=float, default=60.0, help="rate-limit window in seconds (a sliding window per key)"
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every response")
    parser.add_argument("--file-size-cap-mb", type=float, default=100.0, help="per-file upload cap")
    parser.add_argument(
        "--record-v1",
        help="append one NDJSON line per v1 response to this file (default: a file of its own in "
        "$SPLOSE_SANDBOX_RECORD_V1_DIR when that is set, so a test session can check every response it got)",
    )
    parser.add_argument("--delete-window-hours", type=float, default=48.0, help="DELETE /imports/{id} allowed until")
    return parser.parse_args(argv)


def _record_path(explicit: str | None) -> Path | None:
    if explicit:
        return Path(explicit)
    directory = os.environ.get("SPLOSE_SANDBOX_RECORD_V1_DIR")
    return Path(directory) / f"v1-{os.getpid()}.ndjson" if directory else None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    db_path = Path(args.db)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        db_path=db_path,
        platform_token=args.platform_token,
        v1_rate_limit=args.v1_rate_limit,
        import_rate_limit=args.import_rate_limit,
        rate_window=args.rate_window,
        latency_ms=args.latency_ms,
        file_size_cap_mb=args.file_size_cap_mb,
        record_v1=_record_path(args.record_v1),
        delete_window_hours=args.delete_window_hours,
    )
    app = build_app(settings, load_seeds(args.seed_workspace))
    serve(app, port=args.port, ready_file=args.ready_file)
