"""Rollups of the feedback log: what the dashboard pages read instead of the log.

Every row is recomputed whole from the log for its window (see `dashboard.rollups`), so
recomputing a window gives the same rows and a late use only needs its window run again.
"""

from __future__ import annotations

from django.db import models


class Rollup(models.Model):
    """One window (5 minutes, an hour or a day) of the log, for one namespace and API key.

    A recommendation belongs to the namespace of its first tool (one row per answer, so
    nothing is counted twice); a feedback event to its tool's namespace and its
    recommendation's key. Sums, not rates: rates of any range are sums over rows divided.
    """

    class Period(models.TextChoices):
        FIVE_MINUTES = "5min"
        HOUR = "hour"
        DAY = "day"

    period = models.CharField(max_length=4, choices=Period.choices)
    start = models.DateTimeField()
    namespace = models.CharField(max_length=100)
    api_key_id = models.IntegerField()  # no foreign key: a rollup outlives a deleted key
    recommendations = models.PositiveIntegerField(default=0)
    impressions = models.PositiveIntegerField(default=0)  # tools shown
    uses = models.PositiveIntegerField(default=0)  # shown tools reported used
    hits = models.PositiveIntegerField(default=0)  # recommendations with at least one use
    explored = models.PositiveIntegerField(default=0)  # shown tools picked to explore, or new tools
    no_match = models.PositiveIntegerField(default=0)  # recommendations whose best similarity was low
    feedback_events = models.PositiveIntegerField(default=0)  # events received in the window
    cache_hits = models.PositiveIntegerField(default=0)
    cache_lookups = models.PositiveIntegerField(default=0)
    # Personalization lift: per-recommendation sums for the delta-method interval of the
    # ratio of usage rates (p: the user's history changed the slate, n: it did not).
    p_recs = models.PositiveIntegerField(default=0)
    p_shown = models.FloatField(default=0.0)
    p_used = models.FloatField(default=0.0)
    p_shown_sq = models.FloatField(default=0.0)
    p_used_sq = models.FloatField(default=0.0)
    p_used_shown = models.FloatField(default=0.0)
    n_recs = models.PositiveIntegerField(default=0)
    n_shown = models.FloatField(default=0.0)
    n_used = models.FloatField(default=0.0)
    n_shown_sq = models.FloatField(default=0.0)
    n_used_sq = models.FloatField(default=0.0)
    n_used_shown = models.FloatField(default=0.0)
    # Counts of recommendations per latency bucket (bounds in dashboard.rollups.LATENCY_BOUNDS_MS).
    latency_histogram = models.JSONField(default=list)

    class Meta:
        constraints = [
            # Pages read a period's rows over a time range, optionally for one namespace or key.
            models.UniqueConstraint(fields=["period", "start", "namespace", "api_key_id"], name="rollup_unique_window"),
        ]


class ToolDailyRollup(models.Model):
    """One tool on one day for one API key: shown, used, and where it stood when used."""

    day = models.DateField()
    tool_id = models.IntegerField()
    namespace = models.CharField(max_length=100)
    api_key_id = models.IntegerField()
    shows = models.PositiveIntegerField(default=0)
    uses = models.PositiveIntegerField(default=0)
    used_rank_sum = models.PositiveIntegerField(default=0)  # sum of the ranks of the used impressions
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "tool_id", "api_key_id"], name="tool_rollup_unique_day"),
        ]
        indexes = [
            # The tool page: one tool's days.
            models.Index(fields=["tool_id", "day"], name="tool_rollup_tool_day"),
        ]


class CoverageDaily(models.Model):
    """Tools recommended at least once in the 7 days ending with `day`, out of the enabled
    tools, for all ("" / 0) or one namespace and API key: distinct counts do not add up, so
    each filter combination gets its own row."""

    day = models.DateField()
    namespace = models.CharField(max_length=100)  # "" = all namespaces
    api_key_id = models.IntegerField()  # 0 = all keys
    tools_recommended = models.PositiveIntegerField(default=0)
    tools_enabled = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "namespace", "api_key_id"], name="coverage_unique_day"),
        ]


class ServiceSample(models.Model):
    """The learner's lag and the index's age when the rollup ran: state, not log sums."""

    at = models.DateTimeField(unique=True)  # unique: the time range queries use it as an index
    learner_lag_seconds = models.FloatField(null=True, blank=True)  # as /healthz reports it
    index_age_seconds = models.FloatField(null=True, blank=True)  # since the active snapshot finished


class PolicyEstimate(models.Model):
    """An off-policy estimate of one candidate policy on the recent log (IPS, SNIPS and
    doubly robust expected uses per recommendation), stored by a periodic task so that the
    Learning page reads a row instead of replaying the log."""

    policy = models.CharField(max_length=50)  # the preset's name
    config = models.JSONField(default=dict)
    recommendations = models.PositiveIntegerField(default=0)
    logged_value = models.FloatField(null=True, blank=True)  # what the logging policies achieved
    estimates = models.JSONField(default=dict)  # estimator -> {value, ci_low, ci_high, n, effective_n}
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            # The Learning page: the latest estimates.
            models.Index(fields=["-created_at"], name="policy_estimate_latest"),
        ]


class ToolRangeRollup(models.Model):
    """A tool's sums over the last week or 90 days, for all keys (0) or one: the Tools page
    sorts and pages these instead of grouping up to 90 days of daily rows per request
    (seconds at a million impressions). Recomputed from the daily rows at most hourly."""

    range = models.CharField(max_length=8)  # "week" or "90d", as the page's range
    tool_id = models.IntegerField()
    namespace = models.CharField(max_length=100)
    api_key_id = models.IntegerField()  # 0 = all keys
    shows = models.PositiveIntegerField(default=0)
    uses = models.PositiveIntegerField(default=0)
    used_rank_sum = models.PositiveIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)
    first_used_on = models.DateField(null=True, blank=True)  # the range's first day with a use
    # Shows up to and including first_used_on: the New tools view's "queries until first use".
    # Only on the all-keys rows of tools added within the range (see dashboard.rollups).
    shows_until_first_use = models.PositiveIntegerField(null=True, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        indexes = [
            # The Tools page: one range and key (and maybe namespace), sorted by a count.
            models.Index(fields=["range", "api_key_id", "namespace"], name="tool_range_filter"),
        ]
