from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from recommender.learning.ranker_training import MIN_GROUPS, ranker_activate, ranker_train


class Command(BaseCommand):
    help = "Train a LambdaMART ranker on the logged recommendations; --activate serves it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--activate", action="store_true")
        parser.add_argument("--limit", type=int, default=20_000)

    def handle(self, *args: Any, **options: Any) -> None:
        ranker = ranker_train(limit=options["limit"])
        if ranker is None:
            self.stdout.write(f"Not enough recommendations that led to a use yet (need {MIN_GROUPS}).")
            return
        metrics = {k: v for k, v in ranker.metrics.items() if k != "feature_importance"}
        self.stdout.write(f"ranker v{ranker.pk} on {ranker.training_groups} recommendations: {json.dumps(metrics)}")
        if options["activate"]:
            ranker_activate(ranker_id=ranker.pk)
            self.stdout.write(f"ranker v{ranker.pk} is active")
