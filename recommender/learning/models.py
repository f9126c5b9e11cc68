"""What is learned from the feedback log: the published learned states, the memory of
past requests, the trained rankers and the running counts per tool, per user and per pair
of tools. All of it can be rebuilt from the log (`manage.py rebuild_learning_state`)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class LearningState(models.Model):
    """One published version of the learned model state (the shared linear bandit).

    Written whole by the learner in one transaction; web processes poll for the latest
    version and swap it in, so none ever reads a half-written state.
    """

    bandit = models.BinaryField(help_text="LinearBanditState.to_bytes()")
    # Per-tool uses, shows and last use (npz) as of publishing: features read these from
    # memory instead of querying ToolStats on every request.
    tool_stats = models.BinaryField(null=True, blank=True)
    # The calibrated match model (recommender.engine.match.MatchModel.to_json), refitted by
    # the learner every MATCH_REFIT_EVERY recommendations and carried over in between.
    match_model = models.JSONField(null=True, blank=True)
    recommendations_learned = models.PositiveIntegerField(default=0)
    events_learned = models.PositiveIntegerField(default=0)
    learn_seconds = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"learning state v{self.pk}"


class IsolatedLearningState(models.Model):
    """The learned state of one experiment variant that learns alone (the variant's
    `learning` is "isolated"): its bandit and its per-tool counts (features of the bandit),
    learned only from the feedback on the recommendations that variant served, starting
    from a copy of the shared state taken when the experiment started.

    One row per variant, rewritten whole by the learner (under its lock, in its batch's
    transaction) with a new `version` that web processes poll. The seed is kept so that
    `rebuild_learning_state` can relearn the variant from it. Keyed by the experiment's key
    and the variant's name, as the log names them (feedback.Recommendation), not by foreign
    keys: learning sits below experiments and reads no experiment table."""

    experiment_key = models.CharField(max_length=100)
    variant = models.CharField(max_length=100)
    version = models.PositiveIntegerField(default=1)
    bandit = models.BinaryField(help_text="LinearBanditState.to_bytes()")
    tool_stats = models.BinaryField(null=True, blank=True, help_text="ToolStatsTable.to_bytes()")
    seed_bandit = models.BinaryField()
    seed_tool_stats = models.BinaryField(null=True, blank=True)
    seeded_from = models.PositiveIntegerField(null=True, blank=True, help_text="The shared state version copied.")
    # Web processes load the serving rows only; a stopped experiment's row stops serving but
    # still learns the feedback still arriving on what it served, and stays for inspection.
    serving = models.BooleanField(default=True)
    recommendations_learned = models.PositiveIntegerField(default=0)
    events_learned = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # The learner reads the rows of the experiments a batch holds (experiment_key IN ...):
            # this is also its index. The table holds a few rows per experiment ever run.
            models.UniqueConstraint(fields=["experiment_key", "variant"], name="isolated_state_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment_key}/{self.variant} v{self.version}"


class MemoryEntry(models.Model):
    """A past context that led to a use: its query vector and the tool used.

    Append-only: web processes copy the entries newer than the last id they have.
    """

    tool = models.ForeignKey("catalog.Tool", on_delete=models.CASCADE, related_name="+")
    vector = models.BinaryField()
    # The model that embedded `vector`: contexts of another model are never compared with a
    # request's vector, even when the dimensions agree ("" for entries of unknown origin).
    embedding_model = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "memory entries"


class RankerModel(models.Model):
    """A trained LambdaMART ranker: one version, its offline metrics, activatable."""

    model_text = models.TextField()
    feature_names = models.JSONField(default=list)
    metrics = models.JSONField(default=dict)
    training_groups = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Serving reads the active ranker.
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_ranker"),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"ranker v{self.pk}{' (active)' if self.is_active else ''}"


class ToolStats(models.Model):
    """Running counts per tool, kept current by the services; rebuildable from the log."""

    tool = models.OneToOneField("catalog.Tool", on_delete=models.CASCADE, primary_key=True, related_name="stats")
    times_recommended = models.PositiveIntegerField(default=0)
    times_used = models.PositiveIntegerField(default=0)
    last_recommended_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "tool stats"


class UserToolStats(models.Model):
    """One user's history with one tool, kept by the learner; features read it per request."""

    user_id = models.CharField(max_length=200)
    tool = models.ForeignKey("catalog.Tool", on_delete=models.CASCADE, related_name="+")
    times_recommended = models.PositiveIntegerField(default=0)
    times_used = models.PositiveIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # Features read (user_id, tool_id IN candidates): this is also its index.
            models.UniqueConstraint(fields=["user_id", "tool"], name="user_tool_stats_unique"),
        ]
        verbose_name_plural = "user tool stats"


class CoUse(models.Model):
    """How often `tool` was used in a conversation that had already called `after`."""

    after = models.ForeignKey("catalog.Tool", on_delete=models.CASCADE, related_name="+")
    tool = models.ForeignKey("catalog.Tool", on_delete=models.CASCADE, related_name="+")
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            # Features read (after IN called tools): this is also its index.
            models.UniqueConstraint(fields=["after", "tool"], name="co_use_unique"),
        ]
