from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from recommender.offline.retrieval_evaluation import (
    SYSTEMS,
    EvaluationError,
    catalog_drop,
    catalog_load,
    evaluate,
    load_queries,
    namespace_for,
)


def _require_migrated() -> None:
    """The catalog is loaded into a throwaway namespace of the configured database, so its
    tables must exist: say so plainly instead of failing on a missing table."""
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise CommandError(
            "The database has unapplied migrations: run `manage.py migrate` first "
            "(`make run` does it for the embedded default)."
        )


class Command(BaseCommand):
    help = (
        "Evaluate retrieval on catalog and query files (shared/datasets format): Recall@5, Recall@10, "
        "nDCG@k, C@k for BM25 alone, dense alone and toolrec's hybrid, with engine latency."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tools", type=Path, action="append", required=True, help="tools.jsonl (repeatable)")
        parser.add_argument("--queries", type=Path, action="append", required=True, help="queries.jsonl (repeatable)")
        parser.add_argument("--k", type=int, default=10)
        parser.add_argument("--sample", type=int, default=None, help="at most N queries per queries file")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", type=Path, default=None, help="write the results here")
        parser.add_argument(
            "--keep",
            action="store_true",
            help="keep the evaluation namespace (and its vectors) so a rerun embeds nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for path in [*options["tools"], *options["queries"]]:
            if not path.is_file():
                raise CommandError(f"no such file: {path}")
        if not 1 <= options["k"] <= 50:
            raise CommandError("--k must be between 1 and 50")
        _require_migrated()
        namespace = namespace_for(options["tools"])
        try:
            catalog = catalog_load(options["tools"], namespace)
            known = set(catalog.snapshot.keys)
            query_sets = []
            for path in options["queries"]:
                queries, skipped = load_queries(path, namespace, known, options["sample"], options["seed"])
                query_sets.append((path.parent.name + "/" + path.name, queries, skipped))
            report = evaluate(catalog, query_sets, options["k"])
        except EvaluationError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if not options["keep"]:
                catalog_drop(namespace)
        report["machine"] = {"python": platform.python_version(), "platform": platform.platform()}
        self._print(report)
        if options["json"]:
            options["json"].parent.mkdir(parents=True, exist_ok=True)
            options["json"].write_text(json.dumps(report, indent=2))
            self.stdout.write(f"wrote {options['json']}")

    def _print(self, report: dict[str, Any]) -> None:
        k = report["k"]
        self.stdout.write(
            f"{report['tools']} tools ({report['index_kind']}), catalog ready in {report['catalog_seconds']}s "
            f"({report['embedded']} embedded, {report['reused']} reused)\n"
        )
        names = ["recall@5", "recall@10", f"ndcg@{k}", f"c@{k}"]
        header = f"{'queries':<28} {'n':>6} {'system':<8} " + " ".join(f"{n:>9}" for n in names)
        self.stdout.write(header)
        self.stdout.write("-" * len(header))
        for result in report["results"]:
            for system in SYSTEMS:
                row = result["metrics"].get(system, {})
                self.stdout.write(
                    f"{result['name']:<28} {result['queries']:>6} {system:<8} "
                    + " ".join(f"{row.get(n, 0.0):>9.1f}" for n in names)
                )
            if result["skipped"]:
                self.stdout.write(f"  ({result['skipped']} queries skipped: no relevant tool in the catalog)")
        engine, embed = report["engine_latency_ms"], report["query_embedding_ms"]
        self.stdout.write(
            "\nlatency per query, ms: engine (after embedding) "
            + " ".join(f"{p} {v:.2f}" for p, v in engine.items())
            + " | embedding one query "
            + " ".join(f"{p} {v:.1f}" for p, v in embed.items())
        )
