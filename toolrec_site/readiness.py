"""Whether this process has warmed up (toolrec_site/wsgi.py loads the snapshot, the
embedder, the learned state and the task modules in a thread at start). Until it has,
/healthz answers 503 "starting", so a load balancer holds traffic back: the first requests
otherwise waited seconds on that loading (4-5 s in bench/faults.py) and could pass their
database deadline while it held the interpreter."""

from __future__ import annotations

import threading

_warm = threading.Event()
_warm.set()  # a process that does not warm up (tests, commands, workers) is ready as it is


def mark_warming() -> None:
    _warm.clear()


def mark_warm() -> None:
    _warm.set()


def is_warm() -> bool:
    return _warm.is_set()
