"""Handing work to a later stage: by Celery task name, never by importing it.

The catalog asks for an index rebuild, the feedback log for learning, a finished rebuild
for fresh per-tool counts; each of those lives in a stage above the one asking, and an
import would point the wrong way (it made a five-module cycle once). The asking stage calls
one of the functions below; the task is looked up by name in Celery's registry.

With a broker the task is queued. Without one (the embedded default) Celery would run it
inline, inside the request that asked for it; a daemon thread runs it instead, so a
recommendation or feedback request never waits on learning or an index rebuild. Tests set
BACKGROUND_THREADS off to run it inline and deterministically.

Every function here never raises: work that could not be scheduled is picked up by the
periodic tasks (`PERIODIC_TASKS` below).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import Task, current_app
from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, transaction

log = logging.getLogger(__name__)

REBUILD_INDEX = "recommender.indexing.rebuild_index"
LEARN_FROM_FEEDBACK = "recommender.learning.learn_from_feedback"
PUBLISH_TOOL_STATS = "recommender.learning.publish_tool_stats"
TRAIN_RANKER = "recommender.learning.train_ranker"
WATCH_EXPERIMENTS = "experiments.watch"
SYNC_MCP_SERVERS = "catalog.sync_mcp_servers"
ROLLUP_DASHBOARD = "dashboard.rollup"
ESTIMATE_POLICIES = "dashboard.estimate_policies"
RANK_SHADOWS = "recommender.serving.rank_shadows"

REBUILD_PENDING_KEY = "toolrec:rebuild-pending"
LEARN_PENDING_KEY = "toolrec:learn-pending"
SHADOWS_PENDING_KEY = "toolrec:shadows-pending"
SHADOWS_WORKED_KEY = "toolrec:shadows-worked"  # set while runs found work in SHADOW_ASK_SECONDS


# Periodic tasks: entry name -> (task, every N seconds). `periodic_tasks_sync` writes them
# to django-celery-beat's tables on every migrate; each run expires before the next one is
# due, so a backlog after an outage never piles up duplicate work.
PERIODIC_TASKS: dict[str, tuple[str, int]] = {
    "rebuild-index-if-stale": (REBUILD_INDEX, 15 * 60),
    "learn-from-feedback": (LEARN_FROM_FEEDBACK, 5),
    # Shadow variants' slates a lost publish left pending (requests and runs ask for runs)
    "rank-shadows": (RANK_SHADOWS, 30),
    "train-ranker": (TRAIN_RANKER, 6 * 3600),
    # Looks, guardrails and ramps of running experiments: a guardrail acts within a minute.
    "watch-experiments": (WATCH_EXPERIMENTS, 60),
    # MCP servers not kept connected by `manage.py mcp_listen` (those re-sync on list_changed)
    "sync-mcp-servers": (SYNC_MCP_SERVERS, 5 * 60),
    "dashboard-rollup": (ROLLUP_DASHBOARD, 5 * 60),
    "dashboard-estimate-policies": (ESTIMATE_POLICIES, 6 * 3600),
}


def task_named(name: str) -> Task:
    """The registered task of this name (the app is toolrec_site.celery's, made current
    when Django imports `toolrec_site`)."""
    if name not in current_app.tasks:
        # The task modules listed in the app's `imports`; only once, since each call also
        # runs Django's model checks (80 ms, on every feedback request before).
        current_app.loader.import_default_modules()
    return current_app.tasks[name]


def _run_inline(task: Task, kwargs: dict[str, Any], timer: threading.Timer | None = None) -> None:
    if timer is not None:
        with _pending_lock:
            if _pending.pop(timer, None) is None:
                return  # already run by `background_work_finish`
            _running.add(timer)
    try:
        task.apply(kwargs=kwargs)
    except Exception:  # a background job reports, it cannot fail its caller
        log.exception("background task %s failed", task.name)
    finally:
        close_old_connections()
        if timer is not None:
            _running.discard(timer)


# Background work not started yet (embedded mode): timer -> (task, kwargs). A short-lived
# process, such as `manage.py import_tools` beside `make run`, used to exit before its
# debounced rebuild ran (the timer thread is a daemon), and the imported tools were never
# served; manage.py now calls `background_work_finish` after every command.
_pending: dict[threading.Timer, tuple[Task, dict[str, Any]]] = {}
_running: set[threading.Timer] = set()
_pending_lock = threading.Lock()


def background_work_finish() -> None:
    """Run the background work still waiting for its countdown now, in this thread, and wait
    for what already started, until none is left (work may schedule more: a rebuild asks
    for the counts to be published). Not from an atexit hook: by then Python refuses new
    threads in thread pools, which loading the embedding model uses."""
    while True:
        with _pending_lock:
            pending, running = list(_pending.items()), list(_running)
            _pending.clear()
        if not pending and not running:
            return
        for timer, (task, kwargs) in pending:
            timer.cancel()
            log.info("running %s before exiting", task.name)
            _run_inline(task, kwargs)
        for timer in running:
            timer.join(timeout=600)
            if timer.is_alive():
                log.error("background work still running after 600 s; exiting without it")
                return


class BrokerUnavailable(Exception):
    """The broker failed a publish a moment ago; this one was not attempted."""


# time.monotonic() until which publishes are skipped after one failed (per process).
_broker_down_until = 0.0


def _publish(task: Task, kwargs: dict[str, Any], countdown: float) -> None:
    """Queue the task once, or raise at once: no retry loop (Celery's default retries a
    failed publish for 0.6 s, and feedback requests waited that long on a dead broker),
    the transport's short timeouts, and a backoff after a failure."""
    global _broker_down_until
    if time.monotonic() < _broker_down_until:
        raise BrokerUnavailable(f"broker failed less than {settings.BROKER_BACKOFF_SECONDS} s ago")
    try:
        task.apply_async(kwargs=kwargs, countdown=countdown, retry=False)
    except Exception:
        _broker_down_until = time.monotonic() + settings.BROKER_BACKOFF_SECONDS
        raise
    _broker_down_until = 0.0


def run_task(name: str, *, countdown: float = 0, **kwargs: Any) -> None:
    """Run the named task soon: queued with a broker, else in a thread (or inline in tests)."""
    task = task_named(name)
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        _publish(task, kwargs, countdown)
    elif settings.BACKGROUND_THREADS:
        timer = threading.Timer(countdown, _run_inline, args=(task, kwargs))
        timer.args = (task, kwargs, timer)
        timer.daemon = True
        with _pending_lock:
            _pending[timer] = (task, kwargs)
        timer.start()
    else:
        task.apply(kwargs=kwargs)


def _schedule(name: str, *, countdown: float, pending_key: str, pending_seconds: float) -> None:
    """Run the task once `countdown` from now; requests within the window join that run
    (the pending flag), unless the cache is down, when each request schedules its own."""
    try:
        if countdown and not cache.add(pending_key, 1, timeout=pending_seconds):
            return  # a run is already scheduled and will see this change
    except Exception:
        log.warning("cache unavailable; scheduling %s without debounce", name, exc_info=True)
    try:
        run_task(name, countdown=countdown)
    except Exception:
        log.exception("could not schedule %s; the periodic task will catch up", name)


def index_rebuild_schedule(countdown: int | None = None) -> None:
    """Ask for one index rebuild soon (called on commit of catalog changes)."""
    delay = settings.REBUILD_DEBOUNCE_SECONDS if countdown is None else countdown
    _schedule(REBUILD_INDEX, countdown=delay, pending_key=REBUILD_PENDING_KEY, pending_seconds=delay + 60)


def learning_schedule() -> None:
    """Ask for a learning batch soon (called on commit of new feedback).

    The pending flag lives exactly as long as the countdown and the task leaves it to
    expire: deleting it in the task removed the flag of the *next* window and let a second
    task through per window (up to 3 learning runs a second under steady feedback)."""
    if not settings.LEARNING_AUTO_SCHEDULE:
        return
    delay = settings.LEARN_DEBOUNCE_SECONDS
    _schedule(LEARN_FROM_FEEDBACK, countdown=delay, pending_key=LEARN_PENDING_KEY, pending_seconds=delay)


# time.monotonic() of this process's last request for a shadow-ranking run.
_shadows_asked_at = -1e9


def shadows_rank_schedule() -> None:
    """Ask for a shadow-ranking run (recommender.serving.shadow) once the recommendation just
    logged is committed, SHADOW_DELAY_SECONDS from now. Inline when background threads are
    off (tests), broker or not.

    With a broker each web process asks at most once per SHADOW_ASK_SECONDS (30 s): the runs
    keep the work going themselves (`shadows_rank_after`), so a process's ask only has to
    wake runs that stopped. Asking is a cache look and a broker publish, about 2 ms of Python
    on a thread of its own (with its own Redis connections); asked once a second per process,
    it held the GIL beside the request threads and slowed the request it landed on, about 1
    in 50, which is the slowest percent: most of a shadow's cost on the served p99 with one
    client (bench/results/recommend_latency_shadow_open_*.json). Without a broker (embedded)
    a process asks at most once per SHADOW_DELAY_SECONDS, as the runs do not go on without
    work there."""
    global _shadows_asked_at
    if not settings.BACKGROUND_THREADS:
        task_named(RANK_SHADOWS).apply()
        return
    now = time.monotonic()
    window = settings.SHADOW_DELAY_SECONDS if settings.CELERY_TASK_ALWAYS_EAGER else settings.SHADOW_ASK_SECONDS
    if now - _shadows_asked_at < window:
        return
    _shadows_asked_at = now
    ask = threading.Thread(target=shadows_rank_again, name="toolrec-shadow-ask", daemon=True)
    transaction.on_commit(ask.start)


def forget_shadow_asks() -> None:
    """This process has asked for no shadow run yet (a new process; tests)."""
    global _shadows_asked_at
    _shadows_asked_at = -1e9


def shadows_rank_again() -> None:
    """One more run after the window, unless one is already due: asked by the requests, and
    by the runs themselves (`shadows_rank_after`)."""
    delay = settings.SHADOW_DELAY_SECONDS
    _schedule(RANK_SHADOWS, countdown=delay, pending_key=SHADOWS_PENDING_KEY, pending_seconds=delay)


def shadows_rank_after(found_work: bool) -> None:
    """After a run that was not applied inline: ask for the next one while runs found work in
    the last SHADOW_ASK_SECONDS (with a broker), or if this one found work (without).

    With a broker a process that asked less than SHADOW_ASK_SECONDS ago does not ask again,
    so the runs must outlive its ask: its request was found by a run after the ask, and from
    that run on the runs go on for SHADOW_ASK_SECONDS more, finding the requests it did not
    ask for; only after that long without work do they stop, and by then every process may
    ask again. A run that finds nothing costs the worker one query on an empty queue. With
    the cache down the runs go on only while they find work, and the beat entry catches up."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        if found_work:  # requests committed while this ran, after their process asked
            shadows_rank_again()
        return
    try:
        if found_work:
            cache.set(SHADOWS_WORKED_KEY, 1, timeout=settings.SHADOW_ASK_SECONDS)
        elif not cache.get(SHADOWS_WORKED_KEY):
            return
    except Exception:
        log.warning("cache unavailable; shadow runs go on only while they find work", exc_info=True)
        if not found_work:
            return
    shadows_rank_again()


def tool_stats_publish_schedule() -> None:
    """Ask the learner to publish the per-tool counts again (after a new snapshot, so that
    new tools and their zero counts are served from memory)."""
    try:
        run_task(PUBLISH_TOOL_STATS)
    except Exception:
        log.exception("could not schedule publishing the tool counts; the next learning batch will")


def periodic_tasks_sync() -> list[str]:
    """Create the database entries of `PERIODIC_TASKS` that are missing (returns their
    names). Existing entries keep what operators set in the admin (interval, paused);
    only the task they run follows the code."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    created = []
    for name, (task, every) in PERIODIC_TASKS.items():
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
        entry, was_created = PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "interval": interval, "expire_seconds": max(1, int(every * 0.9))}
        )
        if was_created:
            created.append(name)
        elif entry.task != task:
            entry.task = task
            entry.save(update_fields=["task"])
    return created
