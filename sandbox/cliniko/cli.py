"""``cliniko-sandbox`` / ``python -m sandbox.cliniko``: generate (or reuse) clinics and serve them."""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from sandbox.cliniko.accounts import parse_account_spec
from sandbox.cliniko.app import Config, Sandbox, build_app
from sandbox.cliniko.envelopes import MODES
from sandbox.serving import serve

log = logging.getLogger("cliniko-sandbox")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="cliniko-sandbox", description=__doc__)
    p.add_argument("--port", type=int, default=0, help="0 lets the OS pick a free port")
    p.add_argument("--ready-file", help='written with {"url": ...} once the server accepts connections')
    p.add_argument("--data-dir", help="where the live SQLite databases go (default: a fresh temp dir)")
    p.add_argument(
        "--cache-dir",
        default=str(Path.home() / ".cache" / "cliniko-sandbox"),
        help="pristine generated clinics, reused across restarts",
    )
    p.add_argument(
        "--account", action="append", metavar="NAME:SEED:SCALE[:SHARD]", help="repeatable; default demo:1:small:au1"
    )
    p.add_argument("--shard", default="au1", help="the shard served at /v1")
    p.add_argument(
        "--legacy-filters",
        action="append",
        default=[],
        metavar="NAME",
        help="repeatable: this account ignores the archived_at/cancelled_at filters that older routes stand in for",
    )
    p.add_argument(
        "--documented-filters",
        action="append",
        default=[],
        metavar="NAME",
        help="repeatable: this account answers 400 to a filter on a field its resource's docs do not list",
    )
    p.add_argument(
        "--no-older-routes",
        action="append",
        default=[],
        metavar="NAME",
        help="repeatable: this account's /archived, /cancelled and /deleted routes answer 404; "
        "q[]=deleted_at:? on the main lists lists deleted rows instead",
    )
    p.add_argument(
        "--nested-reference-numbers",
        action="append",
        default=[],
        metavar="NAME",
        help="repeatable: this account's /practitioner_reference_numbers answers 404; each practitioner's are "
        "listed at /practitioners/:id/practitioner_reference_numbers (Cliniko's older docs)",
    )
    p.add_argument(
        "--group-attendees-only",
        action="append",
        default=[],
        metavar="NAME",
        help="repeatable: this account's /attendees holds group appointments' attendees only, not also one "
        "per individual appointment as real accounts' (and by default the sandbox's) do",
    )
    p.add_argument(
        "--envelopes",
        choices=MODES,
        default="realistic",
        help="list envelope quirks of every account: per-route mix (default), on every route, or none",
    )
    p.add_argument("--latency-ms", type=float, default=150.0)
    p.add_argument("--jitter-ms", type=float, default=50.0)
    p.add_argument("--rate-limit", type=int, default=200, help="requests per window per API key")
    p.add_argument("--rate-window", type=float, default=60.0, help="seconds; shorten for time-scaled benchmarks")
    p.add_argument("--retry-after", action="store_true", help="also send Retry-After on 429")
    p.add_argument("--signed-url-ttl", type=float, default=60.0, help="seconds a file URL stays valid")
    p.add_argument("--no-require-user-agent", action="store_true")
    p.add_argument("--fault-seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    config = Config(
        shard=args.shard,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        rate_limit=args.rate_limit,
        rate_window=args.rate_window,
        retry_after=args.retry_after,
        signed_url_ttl=args.signed_url_ttl,
        require_user_agent=not args.no_require_user_agent,
        fault_seed=args.fault_seed,
    )
    if args.data_dir:
        data_dir = Path(args.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        run(args, config, data_dir)
        return
    # A large clinic's copy is gigabytes: the default data dir goes away when the server stops.
    with tempfile.TemporaryDirectory(prefix="cliniko-sandbox-") as tmp:
        run(args, config, Path(tmp))


def run(args: argparse.Namespace, config: Config, data_dir: Path) -> None:
    sandbox = Sandbox(config, data_dir, Path(args.cache_dir))
    for spec in args.account or [f"demo:1:small:{args.shard}"]:
        name, seed, scale, shard = parse_account_spec(spec, args.shard)
        started = time.monotonic()
        sandbox.add_account(
            name,
            seed,
            scale,
            shard,
            name in args.legacy_filters,
            args.envelopes,
            documented_filters=name in args.documented_filters,
            no_older_routes=name in args.no_older_routes,
            nested_reference_numbers=name in args.nested_reference_numbers,
            individual_attendees=name not in args.group_attendees_only,
        )
        log.info("account %s (seed %s, %s, %s) ready in %.1fs", name, seed, scale, shard, time.monotonic() - started)
    serve(build_app(sandbox), port=args.port, ready_file=args.ready_file)
