"""The index snapshots: what a rebuild produced and which one web processes serve."""

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
