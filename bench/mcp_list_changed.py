"""How long an MCP server's tool change takes to be served: a full sync of N tools in pages,
then rounds of "change one tool, remove one, send notifications/tools/list_changed" with
`mcp_listen`'s loop running, each timed until a recommendation shows both (the issue's goal:
within 10 s).

Usage (a throwaway database is created and dropped; the configured one is not touched):

    DEBUG=1 .venv/bin/python bench/mcp_list_changed.py [--tools 1200] [--page-size 400] [--rounds 5] [--json OUT]

The MCP server is tests/catalog/mcp_fixture_server.py (the official SDK) on port 8173. Index
rebuilds run as in the embedded default (a background thread per rebuild, countdown 0 after a
sync) and the recommendation path notices a new snapshot as a web process does
(SNAPSHOT_CHECK_SECONDS). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "toolrec_site.settings")
os.environ.setdefault("DEBUG", "true")

import django

django.setup()

import anyio  # noqa: E402
import anyio.from_thread  # noqa: E402
import httpx  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import OperationalError, connections  # noqa: E402
from django.test.utils import override_settings, setup_databases, teardown_databases  # noqa: E402

from toolrec_site.errors import Unavailable  # noqa: E402

PORT = 8173
# A new description per round, each about something no other tool mentions.
NEW_TEXTS = [
    "Forecast volcanic ash clouds drifting over airports for pilots.",
    "Count the penguins in a colony from a drone photograph.",
    "Tune a church organ pipe by measuring its resonance frequency.",
    "Translate whale song recordings into migration route estimates.",
    "Grade the ripeness of avocados from a photo of their skin.",
]
FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "catalog" / "mcp_fixture_server.py"


def _served(api_key: Any, text: str, expected: str, removed_query: str, removed: str) -> bool:
    from recommender.engine.types import ToolFilter
    from recommender.serving.services import recommendation_create

    only_fx = ToolFilter(namespaces=frozenset({"fx"}))
    try:
        first = recommendation_create(
            api_key=api_key, messages=[{"role": "user", "content": text}], k=3, tool_filter=only_fx, record=False
        )
        other = recommendation_create(
            api_key=api_key,
            messages=[{"role": "user", "content": removed_query}],
            k=5,
            tool_filter=only_fx,
            record=False,
        )
    except (OperationalError, Unavailable):  # SQLite locks tables across threads; no snapshot yet
        return False
    return bool(first.tools) and first.tools[0].name == expected and removed not in [t.name for t in other.tools]


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from access.services import api_key_create
    from catalog.mcp_listener import listen_all
    from catalog.mcp_sync import mcp_servers_sync
    from catalog.models import McpServer
    from catalog.sealed import seal

    server = McpServer.objects.create(
        name="fixture",
        namespace="fx",
        url=f"http://127.0.0.1:{PORT}/mcp",
        stay_connected=True,
        secrets_sealed=seal({"headers": {"X-Fixture-Token": "fixture-s3cret-token"}}),
    )
    api_key, _ = api_key_create(name="bench")
    started = time.monotonic()
    report = mcp_servers_sync(names=["fixture"])[0]
    listed_s = time.monotonic() - started
    assert report.ok, report.error
    while not _served(api_key, "Manage the invoice records of account 0", "fx_invoice_0000", "x", "-"):
        time.sleep(0.2)
    first_served_s = time.monotonic() - started
    rounds = []
    with anyio.from_thread.start_blocking_portal() as portal:
        stop = portal.call(anyio.Event)
        future = portal.start_task_soon(lambda: listen_all(stop=stop))
        time.sleep(3)  # the listener connects and lists once
        for r in range(args.rounds):
            changed, removed = f"fx_recipe_{10 * r + 3:04d}", f"fx_chess_{10 * r + 9:04d}"
            text = NEW_TEXTS[r % len(NEW_TEXTS)]
            t0 = time.monotonic()
            httpx.post(
                f"http://127.0.0.1:{PORT}/control",
                json={"change": {"name": changed, "description": text}, "remove": [removed]},
            )
            while not _served(api_key, text, changed, f"chess records of account {10 * r + 9}", removed):
                if time.monotonic() - t0 > 120:
                    raise SystemExit(f"round {r}: not served after 120 s")
                time.sleep(0.1)
            rounds.append(time.monotonic() - t0)
        portal.call(stop.set)
        future.result(timeout=30)
    server.refresh_from_db()
    return {
        "first_sync_s": round(listed_s, 2),
        "first_served_s": round(first_served_s, 2),
        "list_changed_to_served_s": [round(x, 2) for x in rounds],
        "p50_s": round(statistics.median(rounds), 2),
        "max_s": round(max(rounds), 2),
        "tool_count_after": server.tool_count,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=1200)
    parser.add_argument("--page-size", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5, choices=range(1, len(NEW_TEXTS) + 1))
    parser.add_argument("--json", type=Path, default=Path("bench/results/mcp_list_changed.json"))
    args = parser.parse_args()
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", PORT)) == 0:
            raise SystemExit(f"port {PORT} is taken (a fixture server left over?)")
    fixture = subprocess.Popen(
        [
            sys.executable,
            str(FIXTURE),
            "--port",
            str(PORT),
            "--tools",
            str(args.tools),
            "--page-size",
            str(args.page_size),
        ]
    )
    connection = connections["default"]
    connection.settings_dict["CONN_MAX_AGE"] = 0  # threads close their connections: the database can be dropped
    connection.settings_dict.setdefault("TEST", {})["NAME"] = (
        None if connection.vendor == "sqlite" else f"toolrec_bench_mcp_{os.getpid()}"
    )
    old = setup_databases(verbosity=0, interactive=False, aliases={"default"})  # type: ignore[arg-type]
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", PORT)) == 0:
                    break
            time.sleep(0.1)
        with override_settings(
            SNAPSHOT_DIR=Path(settings.VAR_DIR) / "bench-mcp-snapshots",
            QDRANT_PATH=Path(settings.VAR_DIR) / "bench-mcp-qdrant",
            LEARNING_AUTO_SCHEDULE=False,
        ):
            result = _run(args)
    finally:
        fixture.terminate()  # first: a failing teardown must not leave it serving on the port
        fixture.wait(timeout=10)
        teardown_databases(old, verbosity=0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    out = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "commit": commit,
        "config": {
            "tools": args.tools,
            "page_size": args.page_size,
            "rounds": args.rounds,
            "database": connection.vendor,
            "broker": bool(settings.CELERY_BROKER_URL),
            "snapshot_check_seconds": settings.SNAPSHOT_CHECK_SECONDS,
        },
        "result": result,
    }
    header = ("tools", "pages", "first sync s", "first served s", "changed->served p50 s", "max s")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (6, 5, 12, 14, 21, 6))))
    pages = -(-args.tools // args.page_size)
    print(
        f"{args.tools:>6} {pages:>5} {result['first_sync_s']:>12} {result['first_served_s']:>14} "
        f"{result['p50_s']:>21} {result['max_s']:>6}"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
