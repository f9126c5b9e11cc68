"""gunicorn settings for the web service: `make serve` runs
`gunicorn -c python:toolrec_site.gunicorn_config toolrec_site.wsgi`.

Prometheus in multiprocess mode: each worker writes its samples to files in
PROMETHEUS_MULTIPROC_DIR and /metrics adds them up, so a scrape reports the whole server
rather than the one worker that answered it. This module is read by the master before any
worker exists, which is why the variable is set here: prometheus_client picks its storage
when it is first imported, in the workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from toolrec_site.env import env_int, env_str

bind = env_str("BIND", "127.0.0.1:8000")
workers = env_int("WEB_WORKERS", 2, minimum=1)
threads = env_int("WEB_THREADS", 4, minimum=1)
# Each worker imports the app after the fork: with preloading the master would create its
# metric files before `on_starting` cleans the folder, and fork one embedder into every worker.
preload_app = False

_var_dir = Path(env_str("TOOLREC_VAR_DIR") or Path(__file__).resolve().parent.parent / "var")
# gunicorn's default control socket is one per user ($HOME/.gunicorn): two servers of one
# user would take each other's. One per var folder instead.
_var_dir.mkdir(parents=True, exist_ok=True)
control_socket = str(_var_dir / "gunicorn.ctl")
MULTIPROC_DIR = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_var_dir / "prometheus")))


def on_starting(server: Any) -> None:
    """Start from an empty folder: the files of a previous server's workers would otherwise
    be added to this one's counts (and its dead workers' live gauges never removed)."""
    MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
    for stale in MULTIPROC_DIR.glob("*.db"):
        stale.unlink()


def post_worker_init(worker: Any) -> None:
    from toolrec_site import metrics

    metrics.WEB_WORKERS.set(1)


def child_exit(server: Any, worker: Any) -> None:
    """A worker died or was replaced: drop its live gauges (its counters stay, the totals
    must not go down)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, str(MULTIPROC_DIR))
