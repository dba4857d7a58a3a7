import math
import multiprocessing
import time
from array import array
from contextlib import contextmanager
from pathlib import Path

from splose_resources.ratelimit import FixedWindowLimiter

LIMIT = 15
WINDOW = 0.6


def _take(state_dir: str, count: int, queue) -> None:
    limiter = FixedWindowLimiter(
        scope="test", secret="shared-key", limit=LIMIT, window_seconds=WINDOW, state_dir=Path(state_dir)
    )
    stamps = []
    for _ in range(count):
        limiter.acquire()
        stamps.append(time.time())
    queue.put(stamps)


def test_budget_holds_across_processes_sharing_a_key(tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_take, args=(str(tmp_path), 20, queue)) for _ in range(3)]
    for worker in workers:
        worker.start()
    stamps = sorted(t for _ in workers for t in queue.get(timeout=60))
    for worker in workers:
        worker.join(timeout=10)

    assert len(stamps) == 60
    per_window: dict[int, int] = {}
    for stamp in stamps:
        per_window[math.floor(stamp / WINDOW)] = per_window.get(math.floor(stamp / WINDOW), 0) + 1
    # The server's windows (aligned to the epoch) never get more than the budget, and the full ones get all of it.
    counts = [per_window[k] for k in sorted(per_window)]
    assert max(counts) == LIMIT
    assert counts[1:-1] == [LIMIT] * (len(counts) - 2)


def test_keys_have_separate_budgets_and_files_do_not_name_the_key(tmp_path):
    first = FixedWindowLimiter(scope="cliniko", secret="key-one", limit=2, window_seconds=60, state_dir=tmp_path)
    second = FixedWindowLimiter(scope="cliniko", secret="key-two", limit=2, window_seconds=60, state_dir=tmp_path)
    for limiter in (first, second):
        limiter.acquire()
        limiter.acquire()
    assert first.path != second.path
    assert all("key-" not in p.name for p in tmp_path.iterdir())
    # A third request on a spent key waits for the next window.
    assert 0 < first._try_take() <= 60.3


def test_a_reset_from_the_server_aligns_the_windows_and_spends_the_current_one(tmp_path):
    limiter = FixedWindowLimiter(scope="cliniko", secret="key", limit=5, window_seconds=60, state_dir=tmp_path)
    reset = math.floor(time.time()) + 17
    limiter.observe_reset(reset)
    wait = limiter._try_take()
    assert abs(time.time() + wait - (reset + limiter.margin)) < 0.5


class FakeClock:
    """time.time and time.sleep for the limiter: sleeping moves the clock, nothing waits."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_a_sliding_window_never_lets_more_than_the_limit_into_any_span(tmp_path, monkeypatch):
    from splose_resources import ratelimit

    clock = FakeClock(1_000_000.37)  # mid-way through an epoch-aligned window
    monkeypatch.setattr(ratelimit, "time", clock)
    # Three clients of one token on one host (one state file), taking turns.
    limiters = [
        ratelimit.SlidingWindowLimiter(scope="splose", secret="token", limit=10, window_seconds=60, state_dir=tmp_path)
        for _ in range(3)
    ]
    sends = []
    for n in range(45):
        limiters[n % 3].acquire()
        sends.append(clock.now)
        clock.now += 0.5  # the request itself

    # Any 60 s span, wherever it starts (here: at every send), holds at most 10 sends.
    assert max(sum(start <= t < start + 60 for t in sends) for start in sends) == 10
    # A fixed window would let 20 through between two sends 60 s apart across a boundary; this one waits
    # just long enough: each send is one window (plus the margin) after the one ten before it.
    gaps = {round(later - earlier, 2) for earlier, later in zip(sends, sends[10:], strict=False)}
    assert gaps == {round(60 + limiters[0].margin, 2)}
    assert all(path.stat().st_mode & 0o777 == 0o600 for path in tmp_path.iterdir())


def test_threads_of_one_process_take_their_slots_in_fewer_file_writes(tmp_path):
    """Eight threads waiting as a window opens share one locked write; the budget is still exact."""
    import threading

    taken: list[int] = []  # slots each write of the state file took

    class Counting(FixedWindowLimiter):
        @contextmanager
        def _state(self):
            with super()._state() as values:
                before = list(values)
                yield values
                if values != before:
                    taken.append(int(values[2] - (before[2] if values[1] == before[1] else 0)))

    limiter = Counting(scope="cliniko", secret="key", limit=40, window_seconds=2.0, state_dir=tmp_path)
    while time.time() % 2.0 > 0.5:  # early in a window, so that every thread is waiting when the next opens
        time.sleep(0.05)
    for _ in range(40):  # this window's budget spent
        limiter.acquire()
    spent = len(taken)
    barrier = threading.Barrier(8)
    stamps: list[float] = []

    def take() -> None:
        barrier.wait()
        for _ in range(5):
            limiter.acquire()
            stamps.append(time.time())

    threads = [threading.Thread(target=take) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    windows = {math.floor(stamp / 2.0) for stamp in stamps}
    assert len(stamps) == 40 and len(windows) == 1  # the next window's budget, exactly
    # The eight threads, all waiting when the window opened, took their first slots in the first write: one write
    # per slot would take one each (whatever the host's load does to the threads' later slots).
    assert taken[spent] == 8
    assert sum(taken[spent:]) == 40 and len(taken) - spent <= 33
    with limiter._state() as state:
        assert state[2] == 40  # the file counts every slot taken


def test_a_shared_state_file_rewritten_in_place_is_cut_when_its_sends_expire(tmp_path, monkeypatch):
    from splose_resources import ratelimit

    clock = FakeClock(2_000_000.0)
    monkeypatch.setattr(ratelimit, "time", clock)
    limiter = ratelimit.SlidingWindowLimiter(
        scope="splose", secret="token", limit=5, window_seconds=60, state_dir=tmp_path
    )
    for _ in range(5):
        limiter.acquire()
        clock.now += 1
    (state,) = tmp_path.iterdir()
    assert state.stat().st_size == 5 * 8  # one double per send in the window

    clock.now += 120  # every send has left the window: the next one is alone in it
    assert limiter.acquire() == 0.0
    assert state.read_bytes() == array("d", [clock.now]).tobytes()  # no stale send left after it
