from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from recommender.learning.learner import learning_state_rebuild


class Command(BaseCommand):
    help = "Forget the learned state and learn the whole feedback log again (the log is the source of truth)."

    def handle(self, *args: Any, **options: Any) -> None:
        outcome = learning_state_rebuild()
        if outcome is None:
            self.stdout.write("The feedback log is empty: the learned state is reset.")
        else:
            self.stdout.write(f"learned the log again: state v{outcome.version}")
