import multiprocessing
import time
from pathlib import Path

from splose_resources.ratelimit import SlidingWindowLimiter

LIMIT = 15
WINDOW = 0.6


def _take(state_dir: str, count: int, queue) -> None:
    limiter = SlidingWindowLimiter(
        scope="test", secret="shared-key", limit=LIMIT, window_seconds=WINDOW, state_dir=Path(state_dir)
    )
    stamps = []
    for _ in range(count):
        limiter.acquire()
        stamps.append(time.time())
    queue.put(stamps)


def test_budget_holds_across_processes_sharing_a_key(tmp_path):
    queue = multiprocessing.get_context("fork").Queue()
    workers = [
        multiprocessing.get_context("fork").Process(target=_take, args=(str(tmp_path), 20, queue)) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    stamps = sorted(t for _ in workers for t in queue.get(timeout=60))
    for worker in workers:
        worker.join(timeout=10)

    assert len(stamps) == 60
    # However the window is placed, it never holds more sends than the budget.
    busiest = max(sum(1 for t in stamps if start <= t < start + WINDOW) for start in stamps)
    assert busiest == LIMIT


def test_keys_have_separate_budgets_and_files_do_not_name_the_key(tmp_path):
    first = SlidingWindowLimiter(scope="cliniko", secret="key-one", limit=2, window_seconds=60, state_dir=tmp_path)
    second = SlidingWindowLimiter(scope="cliniko", secret="key-two", limit=2, window_seconds=60, state_dir=tmp_path)
    for limiter in (first, second):
        assert limiter.acquire() == 0
        assert limiter.acquire() == 0
    assert first.path != second.path
    assert all("key-" not in p.name for p in tmp_path.iterdir())
    # A third request on a spent key would wait for the window to slide.
    assert first._try_take() > 59
