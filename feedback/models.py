from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class Recommendation(models.Model):
    """One answer to POST /recommendations: the request's context and what served it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    api_key = models.ForeignKey("access.ApiKey", on_delete=models.PROTECT, related_name="+")
    user_id = models.CharField(max_length=200, blank=True)
    conversation_id = models.CharField(max_length=200, blank=True)
    experiment_key = models.CharField(max_length=100, blank=True)
    variant = models.CharField(max_length=100, default="default")
    policy = models.CharField(max_length=50, default="semantic")
    snapshot_version = models.PositiveIntegerField()
    k = models.PositiveSmallIntegerField()
    query_text = models.TextField(blank=True, help_text="The last user message, for learning.")
    called_tools = models.JSONField(default=list, blank=True)
    called_tool_ids = models.JSONField(default=list, blank=True, help_text="Catalog ids of called_tools.")
    # How many tool calls the conversation held when this was asked (called_tools is cut to
    # 100): the next request's calls past this many are the ones made after this answer.
    call_count = models.PositiveIntegerField(default=0)
    # float32 embedding of the last user message: the learner adds used tools to the context
    # memory under it, without embedding anything again.
    query_vector = models.BinaryField(null=True, blank=True)
    # The top candidates with their features and retrieval scores (npz): what off-policy
    # evaluation and the learned ranker replay. Shown tools are always among them.
    candidate_log = models.BinaryField(null=True, blank=True)
    latency_ms = models.FloatField(default=0.0)
    # What the dashboard rolls up and the log could not tell afterwards (see dashboard.rollups):
    # the embedding cache's answer to this request's query texts, whether the user's own
    # history changed the slate, and the best cosine similarity among the candidates.
    embed_cache_hits = models.PositiveSmallIntegerField(default=0)
    embed_cache_lookups = models.PositiveSmallIntegerField(default=0)
    personalized = models.BooleanField(default=False)
    best_similarity = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    learned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # Implicit feedback: the latest recommendation of a conversation for one key.
            models.Index(fields=["api_key", "conversation_id", "-created_at"], name="rec_conversation_latest"),
            # Dashboards: recommendations over time.
            models.Index(fields=["created_at"], name="rec_created"),
            # The learner claims recommendations not yet learned, oldest first.
            models.Index(fields=["created_at"], condition=Q(learned_at__isnull=True), name="rec_unlearned"),
        ]


class ShadowPending(models.Model):
    """A recommendation whose experiment's shadow variants have not ranked it yet: a Celery
    task ranks them from its `candidate_log` (recommender.serving.shadow), off the web
    processes, and deletes this row in the transaction that stores the slates.

    A narrow queue table rather than a flag on Recommendation: clearing a flag rewrote the
    wide recommendation row and every one of its indexes (about 5.6 KB of WAL per request,
    and a dead row version the size of the row), on the table the request path writes."""

    id = models.BigAutoField(primary_key=True)  # the claim's order: oldest first
    recommendation = models.OneToOneField(Recommendation, on_delete=models.CASCADE, related_name="+")
    experiment_key = models.CharField(max_length=100)  # the results' pending count, without a join


class Impression(models.Model):
    """One tool shown in a recommendation, with what the policy knew when it chose it."""

    recommendation = models.ForeignKey(Recommendation, on_delete=models.CASCADE, related_name="impressions")
    tool = models.ForeignKey("catalog.Tool", on_delete=models.CASCADE, related_name="+")
    rank = models.PositiveSmallIntegerField()
    score = models.FloatField()
    propensity = models.FloatField(default=1.0)
    features = models.JSONField(default=list, blank=True)
    explored = models.BooleanField(default=False, help_text="Shown only because the policy explored.")

    class Meta:
        constraints = [
            # Feedback checks (recommendation, tool) was shown: this is also its index.
            models.UniqueConstraint(fields=["recommendation", "tool"], name="impression_unique_tool"),
        ]


class UsageEvent(models.Model):
    """Feedback on one shown tool. The log of these is the source of truth for learning."""

    class Source(models.TextChoices):
        EXPLICIT = "explicit"
        IMPLICIT = "implicit"

    # Client-supplied or derived id, unique per recommendation (see the constraint): a
    # retried event counts once, and one key's ids never collide with another key's.
    event_id = models.CharField(max_length=200)
    recommendation = models.ForeignKey(Recommendation, on_delete=models.CASCADE, related_name="usage_events")
    tool = models.ForeignKey("catalog.Tool", on_delete=models.CASCADE, related_name="+")
    used = models.BooleanField()
    reward = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    learned_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # A retry (same recommendation, same event id) is skipped by ON CONFLICT DO NOTHING.
            models.UniqueConstraint(fields=["recommendation", "event_id"], name="usage_event_unique_id"),
            # One use per (recommendation, tool), whichever way it was reported: implicit and
            # explicit feedback for the same use count once.
            models.UniqueConstraint(
                fields=["recommendation", "tool"], condition=Q(used=True), name="usage_event_one_use"
            ),
        ]
        indexes = [
            # The learner claims events not yet learned, oldest first.
            models.Index(fields=["created_at"], condition=Q(learned_at__isnull=True), name="usage_unlearned"),
            # The dashboard rollup counts the feedback events of one hour.
            models.Index(fields=["created_at"], name="usage_created"),
        ]
