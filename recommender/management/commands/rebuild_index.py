from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from recommender.indexing.snapshots import snapshot_build
from recommender.learning.learner import learning_publish_stats


class Command(BaseCommand):
    help = "Build and activate a new index snapshot (re-embedding only tools whose text changed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--force", action="store_true", help="Rebuild even if the catalog is unchanged.")

    def handle(self, *args: Any, **options: Any) -> None:
        snapshot = snapshot_build(force=options["force"])
        if snapshot is None:
            self.stdout.write("The catalog is unchanged since the active snapshot; nothing to do (use --force).")
            return
        learning_publish_stats()  # what the rebuild task hands on: the new catalog's counts
        self.stdout.write(
            f"snapshot v{snapshot.pk}: {snapshot.tool_count} tools, {snapshot.embedded_count} embedded, "
            f"{snapshot.reused_count} reused, {snapshot.index_kind}, {snapshot.build_seconds:.1f}s"
        )
