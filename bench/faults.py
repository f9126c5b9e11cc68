"""Fault run (issue 11, "Done when"): four clients against gunicorn, a Celery worker and
beat, on a redis-server and a PostgreSQL database of the benchmark's own, through these
faults in turn: Redis killed (-9) for --redis-down seconds, the Celery worker killed (-9,
restarted at once as a supervisor would), one gunicorn worker killed (-9; gunicorn starts
another), then PostgreSQL refusing connections, blackholed (a proxy that takes the bytes and
never answers) and unreachable (its packets dropped), for --pg-down seconds each, between the
services and the shared PostgreSQL, which itself is never touched (bench/fault_net.py: the
services reach it through a network namespace of the run's own; --no-netns skips the packet
drop and needs no root).

Counts: feedback events acknowledged (201) against events stored (0 lost), the learned
state's event count against the learned rows (0 learned twice), the learner's catch-up
time after each recovery (every event acknowledged before it learned), the longest
request, and every failure that was not JSON. Prints a table and writes
bench/results/faults.json.

    .venv/bin/python bench/faults.py            # ~6 minutes; --quick halves the outages

Ports (this machine's convention for the run): redis 6412, the PostgreSQL proxy 6413 (and
its relay 6414), gunicorn 8112. The database `toolrec_faults` is dropped and made again on each run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.fault_net import database_path

HttpResponse = requests.Response  # the class body below has a field named `requests`

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
DATASETS = ROOT.parent / "shared" / "datasets"
EVENTS_JOIN = "feedback_usageevent e JOIN feedback_recommendation r ON r.id = e.recommendation_id"
QUERIES = [
    "what is the weather in Paris tomorrow?",
    "send an email to Bob about the meeting",
    "create a calendar event for Friday at 3pm",
    "convert 100 dollars to euros",
    "get the latest stock price of Apple",
    "translate this text into Spanish",
    "directions from the airport to the hotel",
    "search my inbox for invoices from last month",
    "open an issue in the repository about the crash",
    "run a SQL query on the sales table",
]


@dataclass
class Traffic:
    """What the clients saw."""

    acked: set[str] = field(default_factory=set)
    statuses: dict[str, int] = field(default_factory=dict)
    by_phase: dict[str, dict[str, Any]] = field(default_factory=dict)  # phase -> statuses and longest wait
    non_json_failures: list[str] = field(default_factory=list)
    connection_errors: int = 0
    max_wait: float = 0.0
    max_wait_at: str = ""
    requests: int = 0
    slow: list[dict[str, Any]] = field(default_factory=list)  # every request over 2 s, for the why
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, what: str, response: HttpResponse | None, seconds: float, phase: str) -> None:
        with self.lock:
            self.requests += 1
            if seconds > 2:
                self.slow.append(
                    {
                        "what": what,
                        "phase": phase,
                        "seconds": round(seconds, 2),
                        "ended_at": round(time.time(), 2),
                        "status": None if response is None else response.status_code,
                        "body": None if response is None or response.status_code < 400 else response.text[:160],
                    }
                )
            if seconds > self.max_wait:
                self.max_wait, self.max_wait_at = seconds, f"{what} started during {phase}"
            during = self.by_phase.setdefault(phase, {"longest_seconds": 0.0})
            during["longest_seconds"] = round(max(during["longest_seconds"], seconds), 2)
            if response is None:
                self.connection_errors += 1
                during["connection errors"] = during.get("connection errors", 0) + 1
                return
            key = f"{what} {response.status_code}"
            if response.status_code >= 400:  # which error: the code of the JSON error shape
                try:
                    key += f" {response.json()['error']['code']}"
                except (ValueError, KeyError, TypeError):
                    key += " (not the error shape)"
            self.statuses[key] = self.statuses.get(key, 0) + 1
            during[key] = during.get(key, 0) + 1
            if response.status_code >= 400 and not response.headers.get("Content-Type", "").startswith(
                "application/json"
            ):
                self.non_json_failures.append(f"{key} during {phase}: {response.text[:120]!r}")


def _dataset_queries(path: str, limit: int) -> list[str]:
    """Real agents' requests, so the learner sees varied slates over the whole catalog."""
    if not path:
        return []
    with open(path) as lines:
        return [json.loads(line)["query"] for line, _ in zip(lines, range(limit), strict=False)]


def _catalog_size(paths: list[str]) -> int:
    return sum(1 for path in paths for line in Path(path).read_text().splitlines() if line.strip())


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.var = Path(args.var_dir)
        self.base = f"http://127.0.0.1:{args.web_port}"
        self.direct_db = f"postgres://postgres@127.0.0.1:5432/{args.database}"
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in {"DEBUG", "DJANGO_SETTINGS_MODULE"}},
            "DATABASE_URL": f"postgres://postgres@{{db_host}}:{args.proxy_port}/{args.database}",
            "REDIS_URL": f"redis://127.0.0.1:{args.redis_port}/1",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{args.redis_port}/0",
            "CELERY_QUEUE": "toolrec-faults",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "SECURE_SSL_REDIRECT": "false",  # plain HTTP on 127.0.0.1 (DEBUG is off)
            "TOOLREC_VAR_DIR": str(self.var),
            "LEARN_DELAY_SECONDS": "2",
            "DB_CONN_MAX_AGE": str(args.db_conn_max_age),
            "TOOLREC_WARMUP": "true",
            "HF_HUB_OFFLINE": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        self.db_path = database_path(args.proxy_port, netns=not args.no_netns)
        self.redis: subprocess.Popen[bytes] | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.phase = "baseline"
        self.traffic = Traffic()
        self.stop = threading.Event()
        self.phases: list[dict[str, Any]] = []
        self.marks: list[dict[str, Any]] = []  # wall-clock times of each fault, to place slow requests
        self.queries = QUERIES + _dataset_queries(args.queries, 500)

    # --- the services ------------------------------------------------------------------
    def start_redis(self) -> None:
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.args.redis_port), "--bind", "127.0.0.1", "--save", "", "--dir", "."],
            cwd=self.var,
            stdout=subprocess.DEVNULL,
        )
        time.sleep(0.5)

    def spawn(self, name: str, command: list[str]) -> None:
        log = (self.var / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_worker(self) -> None:
        self.spawn("worker", [PY, "-m", "celery", "-A", "toolrec_site", "worker", "-Q", "toolrec-faults", "-c", "2"])

    def manage(self, *command: str) -> str:
        done = subprocess.run([PY, "manage.py", *command], cwd=ROOT, env=self.env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"manage.py {' '.join(command)} failed:\n{done.stderr[-3000:]}")
        return done.stdout

    def setup(self) -> str:
        self.var.mkdir(parents=True, exist_ok=True)
        with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self.args.database} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {self.args.database}")
        self.start_redis()
        self.db_path.start()
        self.env["DATABASE_URL"] = self.env["DATABASE_URL"].replace("{db_host}", self.db_path.host)
        self.manage("migrate", "-v0")
        for catalog in self.args.catalog:
            print(self.manage("import_tools", str(catalog), "--no-rebuild").strip())
        print(self.manage("rebuild_index").strip())
        key = self.manage("create_api_key", "fault-bench").strip().splitlines()[-1]
        bind = f"127.0.0.1:{self.args.web_port}"
        gunicorn = [str(ROOT / ".venv" / "bin" / "gunicorn"), "toolrec_site.wsgi", "--bind", bind]
        self.spawn("web", [*gunicorn, "--workers", "2", "--threads", "4", "--timeout", "60"])
        self.start_worker()
        self.spawn("beat", [PY, "-m", "celery", "-A", "toolrec_site", "beat", "-s", str(self.var / "beat-schedule")])
        deadline, ready = time.monotonic() + 120, 0
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"{self.base}/healthz", timeout=5)
                # 200 (not "starting") with a snapshot, several times over: both workers warm
                ready = ready + 1 if health.status_code == 200 and health.json().get("snapshot") else 0
                if ready >= 6:
                    return key
            except (requests.RequestException, ValueError):
                ready = 0
            time.sleep(0.5)
        raise SystemExit("the web server did not come up")

    def teardown(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
        self.db_path.stop()

    # --- the clients -------------------------------------------------------------------
    def client(self, number: int, key: str) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        rng, n = random.Random(number), 0
        while not self.stop.is_set():
            n += 1
            question = {"messages": [{"role": "user", "content": rng.choice(self.queries)}], "k": 3}
            body = self.timed(session, "recommend", "/api/v1/recommendations", question)
            if not body or "tools" not in body:
                time.sleep(0.2)
                continue
            events = [
                {"tool": tool["name"], "used": i == 0, "event_id": f"c{number}-{n}-{i}"}
                for i, tool in enumerate(body["tools"][:2])
            ]
            answer = self.timed(
                session,
                "feedback",
                "/api/v1/feedback",
                {"recommendation_id": body["recommendation_id"], "events": events},
            )
            if answer is not None and "recorded" in answer:
                with self.traffic.lock:
                    self.traffic.acked.update(e["event_id"] for e in events)

    def timed(self, session: requests.Session, what: str, path: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        started, phase = time.monotonic(), self.phase
        try:
            response = session.post(self.base + path, json=payload, timeout=60)
        except requests.RequestException:
            self.traffic.saw(what, None, time.monotonic() - started, phase)
            time.sleep(0.2)
            return None
        self.traffic.saw(what, response, time.monotonic() - started, phase)
        ok = response.status_code in (200, 201)
        return response.json() if ok else None

    # --- the faults --------------------------------------------------------------------
    def unlearned_before(self, moment: float) -> int:
        with psycopg.connect(self.direct_db, connect_timeout=5) as db:
            # What the learner will learn: a "not used" reported after its recommendation was
            # learned (as a miss, feedback delayed by a fault) adds nothing and stays unlearned.
            row = db.execute(
                f"SELECT count(*) FROM {EVENTS_JOIN} "
                "WHERE e.learned_at IS NULL AND (e.used OR r.learned_at IS NULL) AND e.created_at <= to_timestamp(%s)",
                [moment],
            ).fetchone()
        return int(row[0]) if row else 0

    def catch_up(self, name: str, fault_seconds: float) -> None:
        """Seconds from the recovery until every event stored before it is learned."""
        recovered = time.time()
        deadline = time.monotonic() + self.args.catch_up_limit
        while time.monotonic() < deadline:
            left = self.unlearned_before(recovered)
            if left == 0:
                break
            time.sleep(0.5)
        else:
            left = self.unlearned_before(recovered)
        seconds = time.time() - recovered
        self.phases.append(
            {
                "fault": name,
                "fault_seconds": round(fault_seconds, 1),
                "catch_up_seconds": round(seconds, 1) if left == 0 else None,
                "unlearned_left": left,
            }
        )
        print(f"  {name}: caught up in {seconds:.1f} s" if left == 0 else f"  {name}: {left} events still unlearned")

    def fault(self, name: str, act: Any, recover: Any, seconds: float) -> None:
        self.phase = name
        started = time.monotonic()
        act()
        time.sleep(seconds)
        recover()
        self.marks.append({"fault": name, "began": round(time.time() - (time.monotonic() - started), 2),
                           "recovered": round(time.time(), 2)})  # fmt: skip
        self.phase = f"after {name}"
        self.catch_up(name, time.monotonic() - started)

    def kill_redis(self) -> None:
        assert self.redis is not None
        self.redis.send_signal(signal.SIGKILL)
        self.redis.wait()

    def kill_worker(self) -> None:
        os.killpg(self.processes["worker"].pid, signal.SIGKILL)
        self.processes["worker"].wait()

    def kill_web_worker(self) -> None:
        children = subprocess.run(["pgrep", "-P", str(self.processes["web"].pid)], capture_output=True, text=True)
        os.kill(int(children.stdout.split()[0]), signal.SIGKILL)

    def faults(self) -> None:
        down, pg = self.args.redis_down, self.args.pg_down
        self.fault("redis killed", self.kill_redis, self.start_redis, down)
        self.fault("worker killed", self.kill_worker, self.start_worker, 2)
        self.fault("gunicorn worker killed", self.kill_web_worker, lambda: None, 5)
        names = {"refuse": "postgres refused", "blackhole": "postgres blackholed", "drop": "postgres packets dropped"}
        for kind in self.db_path.faults:
            self.fault(names[kind], lambda kind=kind: self.db_path.set(kind), lambda: self.db_path.set("pass"), pg)

    # --- the count ---------------------------------------------------------------------
    def count(self) -> dict[str, Any]:
        acked = sorted(self.traffic.acked)
        with psycopg.connect(self.direct_db) as db:
            stored = db.execute("SELECT count(*) FROM feedback_usageevent WHERE event_id = ANY(%s)", [acked]).fetchone()
            rows = db.execute("SELECT count(*), count(learned_at) FROM feedback_usageevent").fetchone()
            late_misses = db.execute(
                f"SELECT count(*) FROM {EVENTS_JOIN} "
                "WHERE e.learned_at IS NULL AND NOT e.used AND r.learned_at IS NOT NULL"
            ).fetchone()
            state = db.execute(
                "SELECT events_learned FROM recommender_learningstate ORDER BY id DESC LIMIT 1"
            ).fetchone()
        assert stored and rows
        return {
            "acknowledged_events": len(acked),
            "stored_of_acknowledged": stored[0],
            "lost": len(acked) - stored[0],
            "events_stored": rows[0],
            "events_learned_rows": rows[1],
            "late_misses_not_learned": late_misses[0] if late_misses else 0,
            "events_learned_by_state": state[0] if state else 0,
            "learned_twice": (state[0] if state else 0) - rows[1],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="toolrec_faults")
    parser.add_argument("--redis-port", type=int, default=6412)
    parser.add_argument("--proxy-port", type=int, default=6413)
    parser.add_argument("--web-port", type=int, default=8112)
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "faults"))
    parser.add_argument("--redis-down", type=float, default=30)
    parser.add_argument("--pg-down", type=float, default=20)
    parser.add_argument("--baseline", type=float, default=20)
    parser.add_argument("--catch-up-limit", type=float, default=120)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--out", default="faults.json", help="file name under bench/results/")
    parser.add_argument(
        "--catalog",
        nargs="+",
        default=[str(ROOT / "catalog" / "data" / "example_tools.jsonl"), str(DATASETS / "toolbench" / "tools.jsonl")],
        help="tool files to import (default: the example catalog and ToolBench's, 2,724 tools as in the issue)",
    )
    parser.add_argument(
        "--queries", default=str(DATASETS / "toolbench" / "queries.jsonl"), help="JSONL of {query: ...}; '' for none"
    )
    parser.add_argument(
        "--db-conn-max-age", type=int, default=60, help="DB_CONN_MAX_AGE of the services (0: a connection per request)"
    )
    parser.add_argument("--quick", action="store_true", help="halve the outages and the baseline")
    parser.add_argument(
        "--no-netns", action="store_true", help="reach the database on 127.0.0.1 (no packet-drop fault; no root needed)"
    )
    args = parser.parse_args()
    if args.quick:
        args.redis_down, args.pg_down, args.baseline = args.redis_down / 2, args.pg_down / 2, args.baseline / 2
    run = Run(args)
    try:
        key = run.setup()
        clients = [threading.Thread(target=run.client, args=(i, key), daemon=True) for i in range(args.clients)]
        for thread in clients:
            thread.start()
        time.sleep(args.baseline)
        run.faults()
        run.phase = "cool-down"
        time.sleep(10)
        run.stop.set()
        for thread in clients:
            thread.join(timeout=90)
        run.catch_up("final", 0)
        counts = run.count()
    finally:
        run.teardown()
    report(args, run, counts)


def report(args: argparse.Namespace, run: Run, counts: dict[str, Any]) -> None:
    t = run.traffic
    result = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip(),
        "config": {k: v for k, v in vars(args).items() if k not in {"var_dir", "out"}},
        "catalog_tools": _catalog_size(args.catalog),
        "database_path": type(run.db_path).__name__,
        "requests": t.requests,
        "statuses": dict(sorted(t.statuses.items())),
        "connection_errors": t.connection_errors,
        "non_json_failures": t.non_json_failures[:50],
        "non_json_failure_count": len(t.non_json_failures),
        "max_request_seconds": round(t.max_wait, 2),
        "max_request_during": t.max_wait_at,
        "by_phase": t.by_phase,
        "slow_requests": t.slow[:200],
        "phases": run.phases,
        "fault_times": run.marks,
        **counts,
    }
    print(f"\n{'fault':28} {'lasted s':>9} {'catch-up s':>11} {'unlearned':>10}")
    for p in run.phases:
        catch = "-" if p["catch_up_seconds"] is None else f"{p['catch_up_seconds']:.1f}"
        print(f"{p['fault']:28} {p['fault_seconds']:9.1f} {catch:>11} {p['unlearned_left']:10d}")
    print(
        f"\nrequests {t.requests}, longest {t.max_wait:.2f} s ({t.max_wait_at}), "
        f"connection errors {t.connection_errors}"
    )
    print("statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(t.statuses.items())))
    print(f"failures not JSON: {len(t.non_json_failures)}")
    print("\nby phase (requests are counted in the phase they started in):")
    for phase, seen in t.by_phase.items():
        seen_statuses = ", ".join(f"{k}: {v}" for k, v in sorted(seen.items()) if k != "longest_seconds")
        print(f"  {phase:30} longest {seen['longest_seconds']:6.2f} s  {seen_statuses}")
    print(
        f"events acknowledged {counts['acknowledged_events']}, lost {counts['lost']}, "
        f"learned twice {counts['learned_twice']} (state {counts['events_learned_by_state']}, "
        f"rows {counts['events_learned_rows']})"
    )
    out = ROOT / "bench" / "results" / args.out
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
