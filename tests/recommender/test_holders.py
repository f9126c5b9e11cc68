"""The refreshing holder behind the snapshot and learned-state holders: readers never wait
for a check or a reload once something is loaded."""

import threading
import time

from recommender.serving.holders import RefreshingHolder


class Published(RefreshingHolder[int]):
    name = "test"

    def __init__(self, interval: float) -> None:
        super().__init__()
        self._interval = interval
        self.version: int | None = 1
        self.checks = 0
        self.gate: threading.Event | None = None  # when set, a refresh waits on it
        self.fail = False

    def interval(self) -> float:
        return self._interval

    def refresh(self, current: int | None) -> int | None:
        self.checks += 1
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail:
            raise RuntimeError("database down")
        return self.version


def _wait_for(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_a_new_version_is_served_after_a_background_check():
    holder = Published(interval=0.05)
    assert holder.get() == 1
    holder.version = 2
    assert _wait_for(lambda: holder.get() == 2)


def test_readers_get_the_loaded_value_while_a_refresh_is_stuck():
    holder = Published(interval=0.05)
    assert holder.get() == 1
    holder.gate = threading.Event()
    holder.version = 2
    checks = holder.checks
    assert _wait_for(lambda: holder.checks > checks)  # the background refresh is now waiting
    assert [holder.get() for _ in range(100)] == [1] * 100
    holder.gate.set()
    assert _wait_for(lambda: holder.get() == 2)


def test_a_failing_refresh_keeps_serving_what_was_loaded():
    holder = Published(interval=0.05)
    assert holder.get() == 1
    holder.fail, holder.version = True, 2
    checks = holder.checks
    assert _wait_for(lambda: holder.checks >= checks + 2)  # failed at least twice, still running
    assert holder.get() == 1
    holder.fail = False
    assert _wait_for(lambda: holder.get() == 2)


def test_with_interval_zero_every_read_checks():
    holder = Published(interval=0)
    assert [holder.get() for _ in range(3)] == [1, 1, 1]
    assert holder.checks == 3
    holder.version = 2
    assert holder.get() == 2


def test_nothing_published_is_looked_up_again_only_after_the_interval():
    holder = Published(interval=60)
    holder.version = None
    assert holder.get() is None
    assert holder.get() is None
    assert holder.checks == 1
    holder.reset()
    holder.version = 3
    assert holder.get() == 3


def test_stop_ends_the_refresh_thread_and_a_later_read_starts_one():
    holder = Published(interval=0.05)
    assert holder.get() == 1
    thread = holder._thread
    assert thread is not None and thread.is_alive()
    holder.stop()
    assert not thread.is_alive()
    holder.version = 2
    assert holder.get() == 1  # loaded value still served; a new thread picks up version 2
    assert _wait_for(lambda: holder.get() == 2)
