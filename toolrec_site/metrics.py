"""toolrec's own Prometheus metrics (django-prometheus adds the HTTP and database ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECOMMENDATION_LATENCY = Histogram(
    "toolrec_recommendation_latency_seconds",
    "Time to answer one recommendation request, inside the service.",
    ["variant"],
    buckets=(0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0),
)
RECOMMENDATIONS = Counter("toolrec_recommendations_total", "Recommendations served.", ["variant"])
TOOL_USES = Counter("toolrec_tool_uses_total", "Recommended tools reported used.", ["source"])
FEEDBACK_EVENTS = Counter("toolrec_feedback_events_total", "Feedback events received.", ["outcome"])
EMBEDDING_CACHE = Counter("toolrec_embedding_cache_total", "Embedding cache lookups.", ["result"])
ACTIVE_TOOLS = Gauge("toolrec_active_tools", "Tools in the snapshot this process serves.")
SNAPSHOT_VERSION = Gauge("toolrec_snapshot_version", "Version of the snapshot this process serves.")
LEARNED_STATE_VERSION = Gauge("toolrec_learned_state_version", "Version of the learned state this process serves.")
FALLBACKS = Counter(
    "toolrec_recommendation_fallbacks_total",
    "Recommendations served on a fallback: keyword retrieval (embedding failed) or the semantic policy "
    "(learned signals unreadable, ranking failed).",
    ["reason"],
)
