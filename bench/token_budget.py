"""Does `max_tool_tokens` hold on every answer? Every ToolBench query, in every format.

Usage (a throwaway database is created and dropped; the configured one is not touched; the
tool vectors are kept under var/bench-qdrant-toolbench, so a second run does not re-embed):

    DEBUG=1 .venv/bin/python bench/token_budget.py [--budget 1500] [--k 20] [--limit N] [--json OUT]

Imports the ToolBench catalog (../shared/datasets/toolbench, 2,479 tools), builds the index,
and asks for k tools for each query with the budget, in each format. Each answer is
serialized as the API sends it and its definitions are counted again, independently of the
service's own count (o200k_base over the compact JSON of each definition). Prints a table
and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

from django.conf import settings  # noqa: E402
from django.db import connections  # noqa: E402
from django.test.utils import override_settings, setup_databases, teardown_databases  # noqa: E402

FORMATS = ("openai", "openai_responses", "anthropic", "mcp")


def _commit() -> str:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _run(queries: list[str], budget: int, k: int) -> dict[str, Any]:
    from access.services import api_key_create
    from recommender.serving.serializers import RecommendationResponseSerializer
    from recommender.serving.services import recommendation_create
    from recommender.serving.token_budget import definition_tokens
    from recommender.serving.tool_formats import OutputShape

    key, _ = api_key_create(name="bench token budget")
    rows: dict[str, Any] = {}
    for output_format in FORMATS:
        spent, kept, unbudgeted, over, empty = [], [], [], 0, 0
        started = time.perf_counter()
        for text in queries:
            messages = [{"role": "user", "content": text}]
            result = recommendation_create(
                api_key=key, messages=messages, k=k, output=OutputShape(output_format, False, budget), record=False
            )
            body = RecommendationResponseSerializer(result).data
            tokens = sum(definition_tokens(t["definition"]) for t in body["tools"])
            assert tokens == body["tool_tokens"], (tokens, body["tool_tokens"])
            full = recommendation_create(
                api_key=key, messages=messages, k=k, output=OutputShape(output_format), record=False
            )
            spent.append(tokens)
            kept.append(len(body["tools"]))
            unbudgeted.append(full.tool_tokens)
            over += tokens > budget
            empty += not body["tools"]
        rows[output_format] = {
            "answers": len(queries),
            "over_budget": over,
            "max_tokens": max(spent),
            "mean_tokens": sum(spent) / len(spent),
            "mean_tools_kept": sum(kept) / len(kept),
            "empty_answers": empty,
            "mean_tokens_without_budget": sum(unbudgeted) / len(unbudgeted),
            "answers_the_budget_cut": sum(u > budget for u in unbudgeted),
            "seconds": time.perf_counter() - started,
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=1500)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--limit", type=int, default=0, help="only the first N queries (0: all)")
    parser.add_argument("--json", type=Path, default=Path("bench/results/token_budget.json"))
    args = parser.parse_args()

    from catalog.importers import parse_tools
    from catalog.services import tool_import
    from recommender.indexing.embedders import prefill_cache
    from recommender.indexing.snapshots import snapshot_build
    from recommender.learning.learner import learning_publish_stats

    data = Path(settings.BASE_DIR).parent / "shared" / "datasets" / "toolbench"
    queries = [json.loads(line)["query"] for line in (data / "queries.jsonl").read_text().splitlines() if line.strip()]
    queries = queries[: args.limit] if args.limit else queries
    connection = connections["default"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = (
        None if connection.vendor == "sqlite" else f"toolrec_bench_budget_{os.getpid()}"
    )
    old = setup_databases(verbosity=0, interactive=False, aliases={"default"})  # type: ignore[arg-type]
    try:
        with override_settings(
            SNAPSHOT_DIR=Path(settings.VAR_DIR) / "bench-snapshots-toolbench",
            QDRANT_PATH=Path(settings.VAR_DIR) / "bench-qdrant-toolbench",
            LEARNING_AUTO_SCHEDULE=False,
        ):
            tool_import(records=parse_tools((data / "tools.jsonl").read_text(), "jsonl"), schedule_rebuild=False)
            started = time.perf_counter()
            snapshot_build()
            learning_publish_stats()
            prefill_cache(queries)
            setup_seconds = time.perf_counter() - started
            rows = _run(queries, args.budget, args.k)
    finally:
        teardown_databases(old, verbosity=0)

    print(f"max_tool_tokens={args.budget}, k={args.k}, {len(queries)} ToolBench queries per format")
    print(
        f"{'format':<18}{'answers':>8}{'over':>6}{'max tok':>9}{'mean tok':>10}{'tools':>7}{'no budget':>11}{'cut':>6}"
    )
    for name, r in rows.items():
        print(
            f"{name:<18}{r['answers']:>8}{r['over_budget']:>6}{r['max_tokens']:>9}{r['mean_tokens']:>10.0f}"
            f"{r['mean_tools_kept']:>7.1f}{r['mean_tokens_without_budget']:>11.0f}{r['answers_the_budget_cut']:>6}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "benchmark": "token_budget",
                "commit": _commit(),
                "machine": {
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                },
                "config": {"budget": args.budget, "k": args.k, "queries": len(queries), "encoding": "o200k_base"},
                "database": connection.vendor,
                "setup_seconds": setup_seconds,
                "formats": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
