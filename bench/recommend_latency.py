"""End-to-end latency of POST /api/v1/recommendations, served by gunicorn as in production.

What it does, in order:

1. Builds a catalog of N tools (default 10,000): the shared ToolBench (2,479) and MetaTool
   (199) tools plus seeded variants of them (renamed endpoints and toolkits, reworded
   descriptions), written as JSONL in the shared datasets' format to the work dir.
2. Prepares an isolated environment in the work dir (``TOOLREC_VAR_DIR``): migrate,
   ``import_tools --no-rebuild``, ``rebuild_index`` (vectors are kept in Qdrant local mode
   under the work dir, so keep it between runs: only the first run embeds), an API key.
3. Starts gunicorn on 127.0.0.1, waits for /healthz, warms up.
4. Sends realistic OpenAI-style conversations built from the shared queries (system
   prompt, user request, sometimes an assistant tool call with its result and a
   follow-up; k 5 or 10; some with user/conversation ids, some with a category filter):
   (a) one client, ``--requests`` requests; (b) ``--clients`` concurrent clients for
   ``--duration`` seconds (or ``--concurrent-requests``). Each query text is used once per
   run and the embedding cache gets a fresh key prefix, so the cache does not flatter the
   numbers; ``--repeat-queries`` cycles a small pool instead (the warm-cache case).
5. Reports p50/p95/p99/max of the end-to-end time and of each ``Server-Timing`` part,
   throughput, errors and where the time goes; writes JSON with machine info and raw rows.

``--learning`` measures with learning on (issue 4: the latency goals must still hold). The
server runs with ``LEARN_DELAY_SECONDS=--learn-delay`` (default 2 s instead of 60 s), so
learning batches run and new states are published and swapped in while latency is measured.
Before measuring, ``--seed-feedback`` recommendations (default 2000) from queries kept out of
the measured phases are sent, with explicit feedback (``POST /api/v1/feedback``) marking as
used the shown tools that are relevant to the query; then everything pending is learned (a
``learning_batch`` loop in a subprocess: ``python -m bench.latency.django_probe learn-pending``)
and the learned state printed.
In every phase each client also posts such feedback after each recommendation, on the same
connection, untimed (its latency is reported on its own line); the report says how many
learned-state versions were published during each phase.
``--broker-url`` sets ``CELERY_BROKER_URL`` and starts a Celery worker with beat (as in
production) for the run; without it background work (learning) runs in the web processes.

Usage (from the project root)::

    .venv/bin/python bench/recommend_latency.py \\
        --database-url postgres://postgres@127.0.0.1:5432/toolrec_bench \\
        --redis-url redis://127.0.0.1:6379/3
    # later runs: same database and work dir, no import or embedding (migrate still runs)
    .venv/bin/python bench/recommend_latency.py --skip-setup --database-url ... --redis-url ... --clients 4
    .venv/bin/python bench/recommend_latency.py --skip-setup --database-url ... --redis-url ... --repeat-queries
    # learning on, background work in a Celery worker with beat
    .venv/bin/python bench/recommend_latency.py --skip-setup --database-url ... --redis-url ... \\
        --learning --broker-url redis://127.0.0.1:6379/4

Without ``--database-url`` it uses ``DATABASE_URL`` if set, else SQLite in the work dir.
``--repeat-queries`` is exact only with ``--redis-url``: the local-memory cache is per
worker and a keep-alive connection sticks to one worker. Without ``--broker-url`` no broker
is configured, so background tasks run in the process, as in the embedded default.
The caller's REDIS_URL, CELERY_BROKER_URL, QDRANT_*, EMBEDDING_MODEL are not passed on.
A benchmark, not a test: it asserts nothing about timings. Traffic goes to 127.0.0.1 only.
The code is the package ``bench/latency/`` (its modules are listed in bench/README.md).
"""

from __future__ import annotations

import pathlib
import sys

# Run as a script, only bench/ is on the path: the project root is needed for the package
# and for the engine it imports (to count the texts a request embeds).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.latency.cli import run

if __name__ == "__main__":
    run(__doc__ or "")
