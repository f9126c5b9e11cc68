from __future__ import annotations

from django.db import models
from django.db.models import Q


class Experiment(models.Model):
    class Unit(models.TextChoices):
        USER = "user"
        CONVERSATION = "conversation"

    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        STOPPED = "stopped"

    key = models.SlugField(max_length=100, unique=True, help_text="Hashed with the unit to assign variants.")
    name = models.CharField(max_length=200)
    unit = models.CharField(max_length=20, choices=Unit.choices, default=Unit.USER)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Assignment reads "the running experiment": at most one at a time.
            models.UniqueConstraint(fields=["status"], condition=Q(status="running"), name="one_running_experiment"),
        ]

    def __str__(self) -> str:
        return self.name


class Variant(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.SlugField(max_length=100)
    policy = models.JSONField(default=dict, help_text='A policy configuration, e.g. {"name": "semantic"}.')
    weight = models.PositiveIntegerField(default=1, help_text="Relative share of traffic.")
    is_control = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "name"], name="variant_unique_name")]
        ordering = ["experiment", "id"]

    def __str__(self) -> str:
        return f"{self.experiment.key}/{self.name}"
