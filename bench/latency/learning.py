"""Learning while latency is measured (``--learning``): the seeding before the measured phases,
the learned state's status (read in a Django subprocess, ``django_probe``) and the versions
published during each phase (read straight from the database)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import pathlib
import subprocess
import time
import urllib.parse
from typing import Any

import numpy as np

from . import ROOT
from .conversations import SessionSource
from .processes import PY, database_kind
from .report import feedback_line
from .traffic import FeedbackPoster, run_concurrent


def django_probe(env: dict[str, str], command: str) -> dict[str, Any] | None:
    """Run `django_probe <command>` with the bench's environment and read the JSON it prints
    last; None (and a note) on failure: the learning report is a bonus, latency comes first."""
    argv = [str(PY), "-m", "bench.latency.django_probe", command]
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        lines = done.stdout.strip().splitlines()
        if done.returncode == 0 and lines:
            return dict(json.loads(lines[-1]))
        print(f"NOTE: django_probe {command} failed ({done.returncode}): {done.stderr.strip()[-600:]}")
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        print(f"NOTE: django_probe {command} failed: {type(exc).__name__}: {exc}")
    return None


def status_line(status: dict[str, Any] | None) -> str:
    """`django_probe status` in one line."""
    if status is None:
        return "learned state: unknown"
    state, ev, recs = status["latest_state"], status["usage_events"], status["recommendations"]
    published = (
        f"learned state v{state['pk']} ({state['recommendations_learned']} recommendations, "
        f"{state['events_learned']} events learned, by the state's counters)"
        if state
        else "no learned state published"
    )
    return (
        f"{published}; log: {recs['total']} recommendations ({recs['unlearned']} not learned yet), "
        f"{ev['total']} usage events ({ev['explicit']} explicit, {ev['implicit']} implicit, {ev['unlearned']} "
        f"not learned yet); {status['memory_entries']} context memory entries, {status['user_tool_stats']} "
        f"user-tool rows, {status['co_use_pairs']} co-use pairs"
    )


class LearningProbe:
    """Reads the published learned states straight from the database at a phase's edges.

    A Django subprocess (`django_probe`) takes seconds, in which the learner (several versions a
    second under load, keeping only about the last 20) would already have deleted the version to
    count from.
    """

    def __init__(self, database_url: str, work_dir: pathlib.Path) -> None:
        kind = database_kind(database_url)
        if kind.startswith("postgres"):
            import psycopg  # only with a PostgreSQL database

            url = urllib.parse.urlunsplit(urllib.parse.urlsplit(database_url)._replace(scheme="postgresql"))
            self.db: Any = psycopg.connect(url, autocommit=True)
            self.mark = "%s"
        elif kind == "sqlite":
            import sqlite3

            path = urllib.parse.urlsplit(database_url).path if database_url else str(work_dir / "toolrec.sqlite3")
            self.db, self.mark = sqlite3.connect(path, isolation_level=None), "?"
        else:
            raise ValueError(f"no probe for {kind} databases")
        self.sqlite = self.mark == "?"

    def _rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.sqlite:  # Django keeps aware datetimes in SQLite as naive UTC text
            params = tuple(
                p.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(p, dt.datetime) else p
                for p in params
            )
        return list(self.db.execute(sql.replace("%s", self.mark), params).fetchall())

    def latest(self) -> int:
        return int(self._rows("SELECT COALESCE(MAX(id), 0) FROM recommender_learningstate")[0][0])

    def phase(self, first: int, t0: float, t1: float) -> dict[str, Any]:
        """What was learned and published between t0 and t1 (epoch seconds); `first` was the
        newest version at t0. Call at once after t1: later versions would count too."""
        last = self.latest()
        since, until = dt.datetime.fromtimestamp(t0, dt.UTC), dt.datetime.fromtimestamp(t1, dt.UTC)
        kept = self._rows(
            "SELECT created_at, learn_seconds FROM recommender_learningstate WHERE id > %s AND id <= %s ORDER BY id",
            first,
            last,
        )
        learned = {
            table: self._rows(f"SELECT COUNT(*) FROM {table} WHERE learned_at >= %s AND learned_at <= %s", since, until)
            for table in ("feedback_recommendation", "feedback_usageevent")
        }
        at = [_aware(created_at) for created_at, _ in kept]
        return {
            "versions_published": last - first,
            "from_version": first,
            "to_version": last,
            "recommendations_learned": learned["feedback_recommendation"][0][0],
            "events_learned": learned["feedback_usageevent"][0][0],
            # of the versions the learner still keeps: when each was published, how long it took to learn
            "published_at_seconds": [round(a.timestamp() - t0, 2) for a in at],
            "learn_ms": [round(secs * 1000, 1) for _, secs in kept],
        }

    def close(self) -> None:
        self.db.close()


def _aware(created_at: dt.datetime | str) -> dt.datetime:
    """PostgreSQL gives an aware datetime; SQLite the naive UTC text Django wrote."""
    if isinstance(created_at, dt.datetime):
        return created_at
    return dt.datetime.fromisoformat(created_at).replace(tzinfo=dt.UTC)


def print_phase_learning(learning: dict[str, Any]) -> None:
    """One line: the versions published during the phase, and what was learned."""
    learn_ms, at = learning["learn_ms"], learning["published_at_seconds"]
    kept = (
        f"; of the {len(at)} the server still keeps: published {at[0]:.1f} to {at[-1]:.1f} s into the "
        f"phase, learning took p50 {np.median(learn_ms):.0f} max {max(learn_ms):.0f} ms a batch"
        if at
        else ""
    )
    print(
        f"learning: {learning['versions_published']} learned-state versions published during the phase "
        f"(v{learning['from_version']} -> v{learning['to_version']}), {learning['recommendations_learned']} "
        f"recommendations and {learning['events_learned']} usage events learned{kept}"
    )


def wait_learning_quiet(probe: LearningProbe, quiet: float = 3.0, limit: float = 60.0) -> float:
    """Seconds until no new learned state was published for `quiet` seconds (or `limit`)."""
    started = last_change = time.monotonic()
    version = probe.latest()
    while time.monotonic() - last_change < quiet and time.monotonic() - started < limit:
        time.sleep(0.25)
        if (now := probe.latest()) != version:
            version, last_change = now, time.monotonic()
    return last_change - started


def seed_learning(
    args: argparse.Namespace,
    env: dict[str, str],
    base_url: str,
    key: str,
    source: SessionSource,
    feedback: FeedbackPoster,
    probe: LearningProbe | None,
) -> dict[str, Any]:
    """Fill the learned state before measuring: recommendations with explicit feedback, then
    learn all that is pending and give the web processes time to swap the new state in."""
    report: dict[str, Any] = {}
    if args.seed_feedback:
        report.update(_seed(args, base_url, key, source, feedback))
    if probe is not None:  # let the server's own learners finish first: two at once can lose an update
        report["quiet_after_seconds"] = wait_learning_quiet(probe)
        print(
            f"the server's learners published their last state {report['quiet_after_seconds']:.1f} s after the seeding"
        )
    learned = django_probe(env, "learn-pending")
    report["learn_pending"] = learned
    if learned is not None:
        recs, events = sum(b[1] for b in learned["batches"]), sum(b[2] for b in learned["batches"])
        print(
            f"learned what was pending: {len(learned['batches'])} batches, {recs} recommendations, "
            f"{events} events in {learned['seconds']:.1f} s"
        )
    time.sleep(3)  # web processes look for a newer state every LEARNING_CHECK_SECONDS (1 s) and swap it in
    return report


def _seed(
    args: argparse.Namespace, base_url: str, key: str, source: SessionSource, feedback: FeedbackPoster
) -> dict[str, Any]:
    clients = max(2, args.workers * 2)
    print(f"seeding: {args.seed_feedback} recommendations with feedback over {clients} connections ...", flush=True)
    started = time.perf_counter()
    rows = run_concurrent(base_url, key, source, clients, 0, args.seed_feedback, "seed", feedback)
    seeded = {
        "seconds": time.perf_counter() - started,
        "requests": len(rows),
        "errors": sum(r["status"] != 200 for r in rows),
        "feedback": feedback.summary("seed", rows),
    }
    print(
        f"seeding: {len(rows)} recommendations in {seeded['seconds']:.1f} s, {seeded['errors']} errors; "
        + feedback_line(seeded["feedback"])
    )
    return seeded
