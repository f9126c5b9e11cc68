"""The processes under test and their environment: ``manage.py`` commands, gunicorn (as in
production) and, with ``--broker-url``, a Celery worker with beat; all run in an environment
isolated in the work dir, started in their own session and stopped by the run."""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import signal
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx

from . import ROOT

PY = ROOT / ".venv" / "bin" / "python"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
CELERY = ROOT / ".venv" / "bin" / "celery"
# Nothing of the caller's integrations leaks in; each is set by bench_env or left to its default.
CALLER_VARIABLES = (
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "QDRANT_URL",
    "QDRANT_PATH",
    "SNAPSHOT_DIR",
    "STATIC_ROOT",
    "CACHE_KEY_PREFIX",
    "EMBEDDING_MODEL",
    "DJANGO_SETTINGS_MODULE",
)


def bench_env(args: argparse.Namespace, work_dir: pathlib.Path, run_id: str) -> tuple[dict[str, str], str]:
    """The environment of every process the run starts, and the database's kind ("sqlite", "postgres")."""
    env = {name: value for name, value in os.environ.items() if name not in CALLER_VARIABLES}
    database_url = args.database_url or os.environ.get("DATABASE_URL", "")
    env.update(
        TOOLREC_VAR_DIR=str(work_dir),
        SECRET_KEY="bench-only-secret-key-" + "x" * 40,  # DEBUG off needs 50+ characters
        SECURE_SSL_REDIRECT="false",  # plain HTTP on 127.0.0.1
        DEBUG="false",
        ALLOWED_HOSTS="127.0.0.1",
        HF_HUB_OFFLINE="1",
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LOG_LEVEL="WARNING",
        # One bench key sends far more than an agent would: with the per-key limits on, the
        # block after a busy one was answered 429 (and measured nothing).
        RATE_LIMIT_RECOMMEND="off",
        RATE_LIMIT_FEEDBACK="off",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    else:
        env.pop("DATABASE_URL", None)
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
        # A fresh key prefix per run keeps earlier runs' embeddings out (unless measuring warm-cache),
        # and a short TTL keeps them from piling up in Redis.
        env["CACHE_KEY_PREFIX"] = "toolrec-bench-warm" if args.repeat_queries else f"toolrec-bench-{run_id}"
        env["EMBEDDING_CACHE_SECONDS"] = "21600"
    if args.broker_url:
        env["CELERY_BROKER_URL"] = args.broker_url
        env["CELERY_QUEUE"] = f"toolrec-bench-{run_id}"
        if args.shadow_worker_nice is not None:
            env["SHADOW_QUEUE"] = f"toolrec-bench-shadows-{run_id}"
    if args.learning:  # learned within seconds, so new states are published while latency is measured
        env["LEARN_DELAY_SECONDS"] = str(args.learn_delay)
    return env, database_kind(database_url)


def database_kind(database_url: str) -> str:
    return urllib.parse.urlsplit(database_url).scheme.split("+")[0] if database_url else "sqlite"


def manage(env: dict[str, str], *argv: str, timeout: float = 3600) -> tuple[str, float]:
    """Run a management command; (its output, seconds). A failure ends the run with its output."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(PY), "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"manage.py {' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    return done.stdout.strip(), seconds


@dataclass
class Processes:
    """What the run started, and must stop whatever happens."""

    server: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes] | None = None
    worker_name: str = ""
    shadow_worker: subprocess.Popen[bytes] | None = None  # --shadow-worker-nice: SHADOW_QUEUE's own

    def stop(self, work_dir: pathlib.Path, run_id: str) -> None:
        stop_server(self.server)
        for worker in (self.worker, self.shadow_worker):
            if worker is not None:
                stop_worker(worker, work_dir, run_id)


def start_server(args: argparse.Namespace, env: dict[str, str], work_dir: pathlib.Path) -> subprocess.Popen[bytes]:
    """gunicorn on 127.0.0.1:--port with the production WSGI app and warm-up; its errors go to gunicorn.log."""
    try:
        httpx.get(f"http://127.0.0.1:{args.port}/healthz", timeout=1.0)
        sys.exit(f"port {args.port} is already in use; pass --port")
    except httpx.HTTPError:
        pass
    log = open(work_dir / "gunicorn.log", "ab")  # noqa: SIM115 - lives as long as the server
    argv = [str(GUNICORN), "toolrec_site.wsgi", "--bind", f"127.0.0.1:{args.port}", "--access-logfile", "-"]
    argv += ["--workers", str(args.workers), "--threads", str(args.threads)]
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**env, "TOOLREC_WARMUP": "true"},
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,  # Ctrl-C reaches us only; we stop it in `finally`
    )


def wait_healthy(base_url: str, server: subprocess.Popen[bytes], work_dir: pathlib.Path) -> dict[str, Any]:
    """/healthz's answer once it serves a snapshot; the run ends if gunicorn exits or 180 s pass."""
    deadline = time.monotonic() + 180
    last = ""
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = (work_dir / "gunicorn.log").read_text(errors="replace")[-3000:]
            sys.exit(f"gunicorn exited with {server.returncode}:\n{tail}")
        try:
            response = httpx.get(f"{base_url}/healthz", timeout=5.0)
            body = response.json()
            if response.status_code == 200 and body.get("snapshot"):
                return body
            last = response.text[:300]
        except (httpx.HTTPError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.5)
    sys.exit(f"/healthz not ready after 180 s: {last}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def start_worker(env: dict[str, str], work_dir: pathlib.Path, run_id: str) -> tuple[subprocess.Popen[bytes], str]:
    """A Celery worker with beat, as production runs it; a fresh beat schedule per run, so no
    periodic task (an index rebuild, a ranker training) comes due merely because the last run was long ago."""
    name = f"bench-{run_id}@{platform.node()}"
    schedule = work_dir / f"celerybeat-schedule-{run_id}"
    argv = ["worker", "--beat", "-Q", env["CELERY_QUEUE"], "--hostname", name, "--schedule", str(schedule)]
    return _celery(env, work_dir, argv), name


def start_shadow_worker(
    env: dict[str, str], work_dir: pathlib.Path, run_id: str, nice: int, idle: bool = False
) -> subprocess.Popen[bytes]:
    """The shadow variants' own worker (SHADOW_QUEUE), at a lower CPU priority than the web
    processes (nice, or with `idle` the SCHED_IDLE policy: CPU only when nothing else wants
    it), as deploy/systemd/toolrec-shadow-worker.service runs it."""
    argv = ["worker", "-Q", env["SHADOW_QUEUE"], "--hostname", f"bench-shadows-{run_id}@{platform.node()}"]
    return _celery(env, work_dir, argv, nice=nice, idle=idle)


def _celery(
    env: dict[str, str], work_dir: pathlib.Path, argv: list[str], nice: int = 0, idle: bool = False
) -> subprocess.Popen[bytes]:
    log = open(work_dir / "celery.log", "ab")  # noqa: SIM115 - lives as long as the worker
    return subprocess.Popen(
        [
            *(["chrt", "--idle", "0"] if idle else []),
            *(["nice", "-n", str(nice)] if nice else []),
            *(str(CELERY), "-A", "toolrec_site", *argv, "-l", "warning", "--concurrency", "1"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


def wait_worker(broker_url: str, name: str, worker: subprocess.Popen[bytes], work_dir: pathlib.Path) -> float:
    from celery import Celery

    started = time.perf_counter()
    control = Celery(broker=broker_url).control
    while time.perf_counter() - started < 180:
        if worker.poll() is not None:
            tail = (work_dir / "celery.log").read_text(errors="replace")[-3000:]
            sys.exit(f"the celery worker exited with {worker.returncode}:\n{tail}")
        try:
            if control.ping(destination=[name], timeout=1.0):
                return time.perf_counter() - started
        except Exception as exc:  # a broker not up yet: try again until the deadline
            print(f"waiting for the celery worker: {type(exc).__name__}: {exc}")
            time.sleep(1.0)
    sys.exit(f"the celery worker {name} did not answer a ping in 180 s; see {work_dir / 'celery.log'}")


def stop_worker(worker: subprocess.Popen[bytes], work_dir: pathlib.Path, run_id: str) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)  # warm shutdown: the running task finishes
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)  # its own session (start_new_session): pool and beat too
            worker.wait(timeout=10)
    for path in work_dir.glob(f"celerybeat-schedule-{run_id}*"):
        path.unlink(missing_ok=True)
