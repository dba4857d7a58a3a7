"""Deep pages are served from a cached ordered id list: the answers must match a fresh computation,
before and after writes (which must invalidate the cache), whatever order the pages are fetched in."""

from __future__ import annotations

from sandbox.cliniko.accounts import open_account
from sandbox.cliniko.queries import RESOURCES, ListQuery, PageCache, list_page
from tests.sandbox.conftest import count_of

ALL = [("q[]", "archived_at:*"), ("q[]", "cancelled_at:*")]


def _ids_backwards(api, path: str, params: list[tuple[str, str]]) -> tuple[list[str], int]:
    """Every id of a listing, fetching the last page first (so the deep path is taken before page 1)."""
    first = api.get(path, [*params, ("per_page", "7"), ("page", "1")]).json()
    total = count_of(first)
    pages = max(1, -(-total // 7))
    found: dict[int, list[str]] = {}
    for page in range(pages, 0, -1):
        response = api.get(path, [*params, ("per_page", "7"), ("page", str(page))])
        assert response.status_code == 200, response.text
        body = response.json()
        assert count_of(body) == total
        assert ("next" in body["links"]) == (page < pages)
        found[page] = [r["id"] for r in body["individual_appointments"]]
    return [rid for page in sorted(found) for rid in found[page]], total


def _expected(api, sort_key: str, hide: bool) -> list[str]:
    rows = [
        r
        for r in api.export("individual_appointments")
        if not r.get("deleted_at") and not (hide and (r.get("archived_at") or r.get("cancelled_at")))
    ]
    return [r["id"] for r in sorted(rows, key=lambda r: (r[sort_key], int(r["id"])))]


def test_deep_pages_follow_writes(fresh_account):
    api = fresh_account
    path = "/v1/individual_appointments"
    for _ in range(2):
        for params, sort_key, hide in (
            (ALL, "created_at", False),
            ([*ALL, ("sort", "updated_at")], "updated_at", False),
            ([], "created_at", True),
        ):
            ids, total = _ids_backwards(api, path, params)
            assert ids == _expected(api, sort_key, hide)
            assert total == len(ids)
        api.admin_post(
            f"accounts/{api.account}/mutate",
            {
                "seed": 5,
                "updates": 6,
                "creates": 4,
                "archives": 3,
                "deletes": 3,
                "resources": ["individual_appointments"],
            },
        )


def test_cached_and_uncached_pages_are_identical(tmp_path):
    (tmp_path / "data").mkdir()
    account = open_account("pc", 3, "tiny", "au1", tmp_path / "data", tmp_path / "cache")
    db = account.connect()
    cache = PageCache()
    ids = sorted(int(r[0]) for r in db.execute("SELECT id FROM individual_appointments"))
    low, high = str(ids[len(ids) // 4]), str(ids[3 * len(ids) // 4])
    keyset = [("sort", "id"), ("q[]", f"id:>{low}"), ("q[]", f"id:<={high}")]
    for name in ("individual_appointments", "bookings", "appointments", "patients", "treatment_notes"):
        for params in ([], ALL[:1], [("sort", "updated_at:desc,id")], keyset, [*ALL[:1], *keyset]):
            query = ListQuery(RESOURCES[name])
            for page in (3, 1, 2, 1, 40):
                args = [*params, ("per_page", "5"), ("page", str(page))]
                plain = list_page(db, query, args, "http://x/v1", f"http://x/v1/{name}")
                cached = list_page(db, query, args, "http://x/v1", f"http://x/v1/{name}", cache)
                assert cached == plain
    db.close()
