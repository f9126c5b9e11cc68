"""The latency benchmark's command line and main flow: prepare, start the processes, seed
learning if asked, warm up, measure the two phases, report, stop everything, write the JSON."""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from . import ROOT
from .alternate import alternate_shadow
from .catalog import catalog_categories, catalog_path
from .conversations import SessionSource, build_sessions, load_queries, read_conversation
from .cpu import CpuMeter
from .learning import LearningProbe, django_probe, print_phase_learning, seed_learning, status_line
from .prepare import api_key, prepare
from .processes import (
    Processes,
    bench_env,
    start_server,
    start_shadow_worker,
    start_worker,
    wait_healthy,
    wait_worker,
)
from .report import feedback_line, log_problems, machine_info, print_phase, summarise
from .traffic import STOP, FeedbackPoster, run_concurrent, run_open_loop, run_sequential

LOGS = ("gunicorn.log", "celery.log")  # in the work dir; what they got during the run is reported
HIDDEN = ("slate", "names", "recommendation_id")  # kept out of the JSON's raw rows: the client's own use


def parse_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tools", type=int, default=10_000, help="catalog size (default 10000)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work-dir", type=pathlib.Path, default=ROOT / "var" / "bench")
    p.add_argument("--database-url", default="", help="default: $DATABASE_URL, else SQLite in the work dir")
    p.add_argument("--redis-url", default="", help="default: no Redis (local-memory cache per worker)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=4)
    p.add_argument("--requests", type=int, default=300, help="phase (a): sequential requests, one client")
    p.add_argument("--clients", type=int, default=8, help="phase (b): concurrent clients")
    p.add_argument("--duration", type=float, default=30.0, help="phase (b): seconds")
    p.add_argument("--concurrent-requests", type=int, default=0, help="phase (b): a request count instead")
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        metavar="SESSIONS",
        help="phase (b) as an open loop: sessions (one or two requests each) arriving at random at SESSIONS a "
        "second for --duration s, whatever the server's pace, instead of --clients clients each waiting for "
        "its answer (traffic.run_open_loop)",
    )
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--repeat-queries", action="store_true", help="cycle a small pool: the warm-cache case")
    p.add_argument("--repeat-pool", type=int, default=64)
    p.add_argument("--skip-setup", action="store_true", help="reuse a prepared work dir (only migrate runs)")
    p.add_argument(
        "--learning", action="store_true", help="seed feedback, then post feedback and learn while measuring"
    )
    p.add_argument("--seed-feedback", type=int, default=2000, help="--learning: recommendations with feedback first")
    p.add_argument("--learn-delay", type=float, default=2.0, help="--learning: the server's LEARN_DELAY_SECONDS")
    p.add_argument("--broker-url", default="", help="CELERY_BROKER_URL; starts a Celery worker with beat for the run")
    p.add_argument(
        "--shadow",
        default="",
        help="a policy (preset or JSON) ranked as a shadow variant on every request (issue 12); default none",
    )
    p.add_argument(
        "--shadow-worker-nice",
        type=int,
        default=None,
        metavar="N",
        help="with --broker-url: rank shadows on a worker of their own (SHADOW_QUEUE) at nice N, as "
        "deploy/systemd/toolrec-shadow-worker.service; default: the main worker ranks them",
    )
    p.add_argument(
        "--shadow-worker-idle",
        action="store_true",
        help="with --shadow-worker-nice: run that worker under SCHED_IDLE (CPUSchedulingPolicy=idle in systemd)",
    )
    p.add_argument(
        "--alternate-shadow",
        type=int,
        default=0,
        metavar="PAIRS",
        help="instead of the two phases: PAIRS pairs of blocks without and with the --shadow variant, alternated "
        "on one server (see bench/latency/alternate.py)",
    )
    p.add_argument("--json", type=pathlib.Path, default=ROOT / "bench" / "results" / "recommend_latency.json")
    args = p.parse_args(argv)
    if args.rate < 0:
        p.error("--rate must be >= 0")
    if args.duration <= 0 and (args.rate or not args.concurrent_requests):
        p.error("--duration must be > 0 (unless --concurrent-requests sets a count)")
    return args


@dataclass
class Bench:
    """One run: its options, environment and traffic, and the results it collects."""

    args: argparse.Namespace
    env: dict[str, str]
    work_dir: pathlib.Path
    run_id: str
    key: str
    source: SessionSource  # the measured phases' sessions (and the warm-up's)
    seed_source: SessionSource  # the seeding's, from queries kept out of the measured phases
    feedback: FeedbackPoster | None  # set with --learning: every client posts feedback
    results: dict[str, Any]
    probe: LearningProbe | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.args.port}"


def run(description: str, argv: list[str] | None = None) -> None:
    try:
        main(description, argv)
    except KeyboardInterrupt:
        sys.exit("interrupted (the server and worker were stopped)")


def main(description: str, argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _terminate)
    args = parse_args(description, argv)
    work_dir = args.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    run_id = uuid.uuid4().hex[:12]
    env, db_kind = bench_env(args, work_dir, run_id)
    info = machine_info()
    _print_header(args, info, db_kind)
    setup_report = prepare(args, env, db_kind, work_dir)
    key = api_key(env, work_dir)
    shadow = django_probe({**env, "BENCH_SHADOW_POLICY": args.shadow}, "shadow-set")
    print(f"shadow variant: {shadow}")
    source, seed_source = _sources(args, work_dir)
    feedback = FeedbackPoster() if args.learning else None
    results = _results_header(args, run_id, info, db_kind, setup_report)
    results["shadow"] = shadow
    bench = Bench(args, env, work_dir, run_id, key, source, seed_source, feedback, results)
    logs = {name: (work_dir / name, _size(work_dir / name)) for name in LOGS}
    processes = Processes(start_server(args, env, work_dir))
    try:
        _serve(bench, processes)
    finally:
        STOP.set()
        if bench.probe is not None:
            bench.probe.close()
        processes.stop(work_dir, run_id)
    _report_logs(results, logs)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1, default=str))
    print(f"wrote {args.json}")


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the run like Ctrl-C: through `finally`, server stopped


def _print_header(args: argparse.Namespace, info: dict[str, Any], db_kind: str) -> None:
    learning = f"on (delay {args.learn_delay:g} s, {args.seed_feedback} seeded)" if args.learning else "off"
    background = "a Celery worker with beat" if args.broker_url else "the web processes"
    if args.broker_url and args.shadow_worker_nice is not None:
        background += f", shadows on their own worker at nice {args.shadow_worker_nice}"
        background += " under SCHED_IDLE" if args.shadow_worker_idle else ""
    print(
        f"toolrec recommend latency, commit {info['git_commit']}, {info['nproc']} CPUs ({info['cpu_model']}), "
        f"{info['ram_gb']} GB, load {info['load_average_at_start'][0]:.2f}, db {db_kind}, "
        f"redis {'yes' if args.redis_url else 'no'}, {args.workers} workers x {args.threads} threads, "
        f"learning {learning}, background work in {background}"
    )


def _sources(args: argparse.Namespace, work_dir: pathlib.Path) -> tuple[SessionSource, SessionSource]:
    """The measured phases' sessions and the seeding's: with --learning, the seeding's queries
    are never sent in a measured phase."""
    categories = catalog_categories(catalog_path(work_dir, args.tools, args.seed))
    queries, seed_queries = load_queries(args.seed), []
    if args.learning and args.seed_feedback:
        n_seed = min(args.seed_feedback, len(queries) // 2)
        queries, seed_queries = queries[:-n_seed], queries[-n_seed:]
    sessions = build_sessions(queries, categories, args.seed)
    source = SessionSource(sessions, pool=args.repeat_pool if args.repeat_queries else 0)
    seed_sessions = build_sessions(seed_queries, categories, args.seed + 100)
    return source, SessionSource(seed_sessions) if seed_sessions else source


def _results_header(
    args: argparse.Namespace, run_id: str, info: dict[str, Any], db_kind: str, setup_report: dict[str, Any]
) -> dict[str, Any]:
    return {
        "benchmark": "recommend_latency",
        "run_id": run_id,
        "machine": info,
        "config": {  # without the URLs: they may carry credentials
            k: str(v) if isinstance(v, pathlib.Path) else v
            for k, v in vars(args).items()
            if k not in ("database_url", "redis_url", "broker_url")
        },
        "db_kind": db_kind,
        "redis": bool(args.redis_url),
        "learning": args.learning,
        "background": "celery worker with beat" if args.broker_url else "in the web processes",
        "setup": setup_report,
    }


def _serve(bench: Bench, processes: Processes) -> None:
    """Everything that needs the server up; the caller stops the processes, whatever happens."""
    args, results = bench.args, bench.results
    if args.broker_url:  # started with the server, so the two load their code at the same time
        processes.worker, processes.worker_name = start_worker(bench.env, bench.work_dir, bench.run_id)
        if args.shadow_worker_nice is not None:
            processes.shadow_worker = start_shadow_worker(
                bench.env, bench.work_dir, bench.run_id, args.shadow_worker_nice, args.shadow_worker_idle
            )
    _wait_ready(bench, processes)
    if bench.feedback is not None:
        bench.probe = _open_probe(bench)
        results["seeding"] = seed_learning(
            args, bench.env, bench.base_url, bench.key, bench.seed_source, bench.feedback, bench.probe
        )
    _warm_up(bench)
    if args.alternate_shadow:
        worker, shadows = processes.worker, processes.shadow_worker

        def meter() -> CpuMeter:
            extra = {"shadow_worker": shadows.pid} if shadows else {}
            return CpuMeter(processes.server.pid, worker.pid if worker else None, extra, postgres=True)

        results["alternate_shadow"] = alternate_shadow(args, bench.env, bench.base_url, bench.key, bench.source, meter)
        return
    if args.learning:
        results["learning_before"] = django_probe(bench.env, "status")
        print(f"before measuring: {status_line(results['learning_before'])}")
    phases, raw = _measure(bench, processes)
    if args.learning:
        results["learning_after"] = django_probe(bench.env, "status")
        print(f"\nafter measuring: {status_line(results['learning_after'])}")
    texts_note = _texts_note(bench, phases)
    counter = "read_conversation" if read_conversation else "nothing (engine import failed)"
    print(f"\n{texts_note}; texts counted with {counter}")
    results.update(
        phases=phases,
        texts=texts_note,
        raw=[{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items() if k not in HIDDEN} for r in raw],
    )


def _wait_ready(bench: Bench, processes: Processes) -> None:
    args, results = bench.args, bench.results
    started = time.perf_counter()
    health = wait_healthy(bench.base_url, processes.server, bench.work_dir)
    results["server_start_seconds"] = time.perf_counter() - started
    results["health"] = health
    served = health["snapshot"]["tools"]
    print(
        f"server up in {results['server_start_seconds']:.1f} s, snapshot v{health['snapshot']['version']} "
        f"with {served} tools, checks {health['checks']}"
    )
    if served != args.tools:
        print(f"NOTE: the served snapshot has {served} tools, not --tools {args.tools} (a reused database?)")
    if processes.worker is not None:
        ready = wait_worker(args.broker_url, processes.worker_name, processes.worker, bench.work_dir)
        print(f"celery worker {processes.worker_name} answered a ping after {ready:.1f} s")


def _open_probe(bench: Bench) -> LearningProbe | None:
    try:
        return LearningProbe(bench.env.get("DATABASE_URL", ""), bench.work_dir)
    except Exception as exc:  # a benchmark of latency first: the count of versions is a bonus
        print(f"NOTE: learned versions per phase not counted: {type(exc).__name__}: {exc}")
        return None


def _warm_up(bench: Bench) -> None:
    args = bench.args
    # Warm-cache mode: every pool text through every worker (a local-memory cache is per process).
    warm = args.warmup if not args.repeat_queries else 2 * len(bench.source) * max(1, args.workers)
    clients = max(2, args.workers * 2)
    rows = run_concurrent(bench.base_url, bench.key, bench.source, clients, 0, warm, "warmup", bench.feedback)
    print(f"warm-up: {len(rows)} requests over {clients} connections, {sum(r['status'] != 200 for r in rows)} errors")
    if rows and all(r["status"] != 200 for r in rows):
        sys.exit(f"every warm-up request failed, e.g. {rows[0]['error']}; see {bench.work_dir / 'gunicorn.log'}")


def _measure(bench: Bench, processes: Processes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Phase (a), one client, then (b), concurrent clients: their summaries and all their rows."""
    args = bench.args
    amount = f"{args.concurrent_requests} requests" if args.concurrent_requests else f"{args.duration:.0f} s"
    with_feedback = ", each posting feedback" if args.learning else ""
    load = f"sessions arriving at {args.rate:g}/s for {args.duration:.0f} s" if args.rate else f"{args.clients} clients"
    plan = [
        ("sequential", f"(a) 1 client, {args.requests} requests{with_feedback}"),
        ("concurrent", f"(b) {load}, {amount}{with_feedback}" if not args.rate else f"(b) {load}{with_feedback}"),
    ]
    phases: dict[str, Any] = {}
    raw: list[dict[str, Any]] = []
    for phase, title in plan:
        phases[phase], rows = _measure_phase(bench, processes, phase, title)
        raw += rows
    return phases, raw


def _measure_phase(
    bench: Bench, processes: Processes, phase: str, title: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    probe, worker = bench.probe, processes.worker
    first_version = probe.latest() if probe else 0
    with CpuMeter(processes.server.pid, worker.pid if worker else None) as meter:
        t0, epoch0 = time.perf_counter(), time.time()
        rows = _send_phase(bench, phase)
        wall, epoch1 = time.perf_counter() - t0, time.time()
    learned = probe.phase(first_version, epoch0, epoch1) if probe else None  # at once: later versions would count
    summary = summarise(rows, wall, meter.cores)
    summary["load_average_after"] = os.getloadavg()
    print_phase(title, summary)
    if bench.feedback is not None:
        summary["feedback"] = bench.feedback.summary(phase, rows)
        print(feedback_line(summary["feedback"]))
    if learned is not None:
        summary["learning"] = learned
        print_phase_learning(learned)
    return summary, rows


def _send_phase(bench: Bench, phase: str) -> list[dict[str, Any]]:
    args = bench.args
    if phase == "sequential":
        return run_sequential(bench.base_url, bench.key, bench.source, args.requests, phase, bench.feedback)
    if args.rate:
        return run_open_loop(
            bench.base_url, bench.key, bench.source, args.rate, args.duration, phase, bench.feedback, seed=args.seed
        )
    return run_concurrent(
        bench.base_url,
        bench.key,
        bench.source,
        args.clients,
        args.duration,
        args.concurrent_requests,
        phase,
        bench.feedback,
    )


def _texts_note(bench: Bench, phases: dict[str, Any]) -> str:
    """Whether the embedding cache could flatter the numbers: texts sent more than once."""
    if bench.args.repeat_queries:
        return f"query texts cycled from a pool of {len(bench.source)} sessions (warm embedding cache)"
    repeated = sum(p["repeated_texts"] for p in phases.values())
    wrapped = " (queries ran out and wrapped)" if bench.source.wrapped else ""
    return f"each query text sent once per run; {repeated} embedded texts repeated an earlier request's{wrapped}"


def _report_logs(results: dict[str, Any], logs: dict[str, tuple[pathlib.Path, int]]) -> None:
    results["log_problems"] = {name: log_problems(path, offset) for name, (path, offset) in logs.items()}
    for name, found in results["log_problems"].items():
        if found["tracebacks"] or found["error_lines"]:
            print(f"{name}: {found['tracebacks']} tracebacks during the run, e.g. {found['error_lines'][:2]}")


def _size(path: pathlib.Path) -> int:
    return path.stat().st_size if path.exists() else 0
