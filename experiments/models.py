from __future__ import annotations

from django.db import models


class Experiment(models.Model):
    class Unit(models.TextChoices):
        USER = "user"
        CONVERSATION = "conversation"

    class Allocation(models.TextChoices):
        FIXED = "fixed"  # the variants' weights (or the ramp) split the units
        THOMPSON = "thompson"  # shares follow Thompson sampling on the variants' hit rates

    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        STOPPED = "stopped"

    key = models.SlugField(max_length=100, unique=True, help_text="Hashed with the unit to assign variants.")
    name = models.CharField(max_length=200)
    unit = models.CharField(max_length=20, choices=Unit.choices, default=Unit.USER)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    # The experiment's slice of all units, by a hash that ignores the experiment key
    # (experiments.hashing.traffic_bucket): running experiments own disjoint slices, so a
    # unit is in at most one of them.
    traffic_start = models.FloatField(default=0.0, help_text="Start of the share of units it owns, in [0, 1).")
    traffic_end = models.FloatField(default=1.0, help_text="End of the share of units it owns, in (0, 1].")
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=300, blank=True)
    # Guardrails (experiments.analysis.Guardrails): tau, alpha, max_p99_ms, min_units, metrics;
    # the keys left out take the defaults.
    guardrails = models.JSONField(default=dict, blank=True)
    allocation = models.CharField(max_length=10, choices=Allocation.choices, default=Allocation.FIXED)
    min_share = models.FloatField(default=0.1, help_text="Thompson allocation: the least share of any live variant.")
    # Ramp: the treatment's share of the experiment's units, step by step, e.g.
    # [{"share": 0.01, "min_minutes": 60, "min_units": 200}, {"share": 0.1, ...}, {"share": 0.5, ...}].
    # Empty: the variants' weights hold. Celery beat advances it (experiments.tasks).
    ramp = models.JSONField(default=list, blank=True)
    ramp_step = models.PositiveSmallIntegerField(default=0)
    # Results cover the current step only: units seen before it were split by other weights.
    step_started_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # Assignment reads the running experiments every few seconds per process.
            models.Index(fields=["status"], name="experiment_status"),
        ]

    def __str__(self) -> str:
        return self.name


class Variant(models.Model):
    class Role(models.TextChoices):
        LIVE = "live"  # serves its share of the units
        SHADOW = "shadow"  # ranks the same requests off the response's path, logged, never served

    class Learning(models.TextChoices):
        SHARED = "shared"  # served from the one learned state that learns from all traffic
        ISOLATED = "isolated"  # its own state, learned only from what it served (recommender.learning.isolated)

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    name = models.SlugField(max_length=100)
    policy = models.JSONField(default=dict, help_text='A policy configuration, e.g. {"name": "semantic"}.')
    weight = models.PositiveIntegerField(default=1, help_text="Relative share of traffic.")
    is_control = models.BooleanField(default=False)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.LIVE)
    learning = models.CharField(
        max_length=10,
        choices=Learning.choices,
        default=Learning.SHARED,
        help_text="isolated: learns in a state of its own from its own traffic (fair between two learners).",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["experiment", "name"], name="variant_unique_name")]
        ordering = ["experiment", "id"]

    def __str__(self) -> str:
        return f"{self.experiment.key}/{self.name}"


class ExperimentEvent(models.Model):
    """What happened to an experiment, by whom and why: the audit log the admin shows
    (people's actions and the automatic ones of ramps and guardrails)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=30)  # created, started, stopped, promoted, ramped, guardrail
    actor = models.CharField(max_length=150)  # a username, "api", or "automatic"
    reason = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.experiment.key}: {self.action}"


class PolicyVersion(models.Model):
    """The default policy (what serves traffic outside experiments), one row per change.
    The highest version serves; a rollback is a new version, so history is never rewritten."""

    version = models.PositiveIntegerField(unique=True)
    policy = models.JSONField()
    source = models.CharField(max_length=200, help_text="Where it came from: the setting, the admin, a promotion.")
    created_by = models.CharField(max_length=150, blank=True)
    # The version this one replaced: what "roll back" returns to.
    replaces = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-version"]

    def __str__(self) -> str:
        return f"v{self.version} {self.policy.get('name', '?')}"


class ExperimentLook(models.Model):
    """The results as computed at one look (by the periodic guardrail check or on demand):
    the page draws the effect over time from these, and the guardrails act on them."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="looks")
    created_at = models.DateTimeField(auto_now_add=True)
    ramp_step = models.PositiveSmallIntegerField(default=0)
    units = models.PositiveIntegerField(default=0)
    verdict = models.CharField(max_length=20)
    results = models.JSONField()  # experiments.results.results_json

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # The results page reads one experiment's looks in time order.
            models.Index(fields=["experiment", "created_at"], name="look_experiment_time"),
        ]


class ShadowSlate(models.Model):
    """What a shadow variant would have shown for one served recommendation."""

    recommendation = models.ForeignKey("feedback.Recommendation", on_delete=models.CASCADE, related_name="+")
    experiment_key = models.CharField(max_length=100)
    variant = models.CharField(max_length=100)
    policy = models.CharField(max_length=50)  # after fallbacks, as Slate.policy
    tool_ids = models.JSONField()  # the shadow slate, best first
    # The shadow policy's inclusion probability of each tool the served slate showed, in the
    # served rank order: the target side of the off-policy estimate.
    served_target = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # Shadow results read one experiment's variant.
            models.Index(fields=["experiment_key", "variant"], name="shadow_experiment_variant"),
        ]
        constraints = [
            # Ranked once: a shadow batch that is run again (a redelivered task) adds nothing.
            models.UniqueConstraint(fields=["recommendation", "variant"], name="shadow_slate_once"),
        ]


class ExperimentUnit(models.Model):
    """A unit's variant in a bandit-allocated experiment, kept from its first request on
    (shares change as the bandit learns; a unit must not change variant with them), with the
    probability it had of landing there: results weight units by its inverse."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    unit_id = models.CharField(max_length=200)
    variant = models.CharField(max_length=100)
    probability = models.FloatField()
    shares = models.JSONField()  # every live variant's share when this unit was assigned
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # The request path reads a unit's variant by this key, and a concurrent first request
            # of the same unit loses the insert race instead of assigning it twice.
            models.UniqueConstraint(fields=["experiment", "unit_id"], name="experiment_unit_unique"),
        ]
