"""A per-process holder of a published, versioned thing (the index snapshot, the learned
state) that requests read without ever waiting for it to be checked or reloaded.

Checking for a newer version is a database query, and loading one can take from a few to a
few hundred milliseconds; done on the request path (as this project first did) that landed
on whichever request came due, and made up much of the tail latency. Here a daemon thread
per process re-checks every ``interval`` seconds and swaps a fully built new value in with
one reference assignment, so readers see the old or the new value, whole.

Only the first load (nothing to serve yet) is synchronous. An interval of 0 turns the
thread off and checks on every read instead (the tests: a new version is seen at once).
The thread is started lazily and again after a fork (gunicorn ``--preload``), since threads
do not survive one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Generic, TypeVar

from django.conf import settings
from django.db import close_old_connections, connection

from recommender.indexing.snapshots import LoadedSnapshot, active_snapshot_load
from recommender.learning.isolated import IsolatedStates, isolated_learned_state, isolated_states_load
from recommender.learning.state import LearnedState, RankingState, learned_state_load, ranking_state_load
from toolrec_site import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


class RefreshingHolder(Generic[T]):
    name = "holder"

    def __init__(self) -> None:
        self._current: T | None = None
        self._lock = threading.Lock()  # one refresh at a time
        self._thread_pid: int | None = None
        self._thread: threading.Thread | None = None
        self._found_nothing_at = -1e9  # when a synchronous check last found nothing to serve

    def interval(self) -> float:
        raise NotImplementedError

    def refresh(self, current: T | None) -> T | None:
        """The newest published value (or `current` if nothing newer); may raise."""
        raise NotImplementedError

    def get(self) -> T | None:
        current, interval = self._current, self.interval()
        if current is None and interval > 0 and time.monotonic() - self._found_nothing_at < interval:
            return None  # nothing published yet: look again after the interval, not on every read
        if current is None or interval <= 0:
            with self._lock:
                current = self._current = self.refresh(self._current)
                if current is None:
                    self._found_nothing_at = time.monotonic()
        if current is not None and interval > 0 and self._thread_pid != os.getpid():
            self._start_thread()
        return current

    def peek(self) -> T | None:
        """What this process serves now, without checking or loading anything."""
        return self._current

    def reset(self) -> None:
        with self._lock:
            self._current, self._found_nothing_at = None, -1e9

    def stop(self) -> None:
        """End this process's refresh thread and close its database connection (before
        dropping a database, e.g. in a benchmark); a later `get` starts a new one."""
        with self._lock:
            thread, self._thread, self._thread_pid = self._thread, None, None
        if thread is not None:
            thread.join(timeout=max(self.interval(), 0.05) + 5)

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread_pid == os.getpid():
                return
            self._thread_pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name=f"toolrec-{self.name}-refresh", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        pid = os.getpid()
        try:
            while self._thread_pid == pid:
                time.sleep(max(self.interval(), 0.05))
                if self._thread_pid != pid:
                    break
                close_old_connections()  # a dropped or expired connection is replaced, not reused
                try:
                    with self._lock:
                        fresh = self.refresh(self._current)
                        if fresh is not None:
                            self._current = fresh
                except Exception:
                    log.exception("refreshing the %s failed; serving the one loaded", self.name)
                    connection.close()
        finally:
            connection.close()  # this thread's own connection


class SnapshotHolder(RefreshingHolder[LoadedSnapshot]):
    """The index snapshot this process serves, refreshed when a newer one becomes active."""

    name = "snapshot"

    def interval(self) -> float:
        return float(settings.SNAPSHOT_CHECK_SECONDS)

    def refresh(self, current: LoadedSnapshot | None) -> LoadedSnapshot | None:
        return active_snapshot_load(current)


class LearningHolder(RefreshingHolder[LearnedState]):
    """The learned state this process serves, refreshed when a newer one is published."""

    name = "learned-state"

    def interval(self) -> float:
        return float(settings.LEARNING_CHECK_SECONDS)

    def refresh(self, current: LearnedState | None) -> LearnedState | None:
        return learned_state_load(current)


class RankingHolder(RefreshingHolder[RankingState]):
    """The bandit and ranker shadow variants rank with (recommender.serving.shadow), in the
    worker that ranks them. Checked on every read, without a thread: a read is one per
    shadow batch, and the check is two index lookups."""

    name = "ranking-state"

    def interval(self) -> float:
        return 0.0

    def refresh(self, current: RankingState | None) -> RankingState | None:
        return ranking_state_load(current)


class IsolatedHolder(RefreshingHolder[IsolatedStates]):
    """The isolated variants' own learned states (recommender.learning.isolated), refreshed
    like the shared one, so that a request of an isolated variant reads a dict, never the
    database. The first such request starts it: a process that serves none never polls."""

    name = "isolated-states"

    def __init__(self) -> None:
        super().__init__()
        self._missed_at = -1e9
        # The served combination per variant, rebuilt only when either state changes: a
        # request then costs two identity checks, not a new LearnedState.
        self._combined: dict[tuple[str, str], tuple[LearnedState | None, object, LearnedState]] = {}

    def interval(self) -> float:
        return float(settings.LEARNING_CHECK_SECONDS)

    def refresh(self, current: IsolatedStates | None) -> IsolatedStates | None:
        return isolated_states_load(current)

    def served(self, shared: LearnedState | None, experiment_key: str, variant: str) -> LearnedState | None:
        """The variant's own state (with the shared memory and ranker), else the shared one."""
        scope = (experiment_key, variant)
        own = (self.get() or {}).get(scope)
        if own is None and time.monotonic() - self._missed_at > self.interval():
            # Started a moment ago, before the refresh thread looked: load now, but at most
            # once per interval (a variant with no state must not query on every request).
            self._missed_at = time.monotonic()
            with self._lock:
                self._current = self.refresh(self._current)
                own = (self._current or {}).get(scope)
            if own is None:
                log.warning("isolated variant %s/%s has no state of its own; serving the shared one", *scope)
        if own is None:
            metrics.FALLBACKS.labels(reason="isolated_state").inc()
            return shared
        cached = self._combined.get(scope)
        if cached is not None and cached[0] is shared and cached[1] is own:
            return cached[2]
        combined = isolated_learned_state(shared, own)
        # A new dict in one assignment (readers see the old or the new one), without the
        # variants no longer served: their entries would keep an old shared state alive.
        serving = self._current or {}
        kept = {s: c for s, c in self._combined.items() if s in serving and s != scope}
        self._combined = {**kept, scope: (shared, own, combined)}
        return combined

    def reset(self) -> None:
        super().reset()
        self._combined = {}


snapshots = SnapshotHolder()
learned = LearningHolder()
ranking = RankingHolder()
isolated = IsolatedHolder()
