from __future__ import annotations

from django.db import models
from django.db.models import Q


class IndexSnapshot(models.Model):
    """One built index: everything a web process needs to rank, in files under SNAPSHOT_DIR."""

    class Status(models.TextChoices):
        BUILDING = "building"
        READY = "ready"
        FAILED = "failed"

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BUILDING)
    is_active = models.BooleanField(default=False)
    path = models.CharField(max_length=500, blank=True)
    embedding_model = models.CharField(max_length=200)
    tool_count = models.PositiveIntegerField(default=0)
    embedded_count = models.PositiveIntegerField(default=0, help_text="Tools embedded anew in this build.")
    reused_count = models.PositiveIntegerField(default=0, help_text="Tools whose stored vector was reused.")
    index_kind = models.CharField(max_length=50, blank=True)
    # sha256 over (tool id, content hash) of the enabled tools: an unchanged catalog is not rebuilt.
    catalog_fingerprint = models.CharField(max_length=64, blank=True)
    build_seconds = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # At most one active snapshot; web processes poll for it by `is_active` (partial index).
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_snapshot"),
        ]
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"snapshot v{self.pk} ({self.status}{', active' if self.is_active else ''})"


class LearningState(models.Model):
    """One published version of the learned model state (the shared linear bandit).

    Written whole by the learner in one transaction; web processes poll for the latest
    version and swap it in, so none ever reads a half-written state.
    """

    bandit = models.BinaryField(help_text="LinearBanditState.to_bytes()")
    # Per-tool uses, shows and last use (npz) as of publishing: features read these from
    # memory instead of querying ToolStats on every request.
    tool_stats = models.BinaryField(null=True, blank=True)
    recommendations_learned = models.PositiveIntegerField(default=0)
    events_learned = models.PositiveIntegerField(default=0)
    learn_seconds = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"learning state v{self.pk}"


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
