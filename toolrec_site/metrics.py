"""toolrec's own Prometheus metrics (django-prometheus adds the HTTP and database ones).

Under gunicorn every worker writes its samples to files in PROMETHEUS_MULTIPROC_DIR
(`toolrec_site.gunicorn_config` sets it up) and /metrics adds them up. Counters and
histograms simply sum. A gauge says how its workers' values combine (`multiprocess_mode`);
each choice is explained beside it. The success metrics (usage rate, hit rate, coverage,
...) are not here: they are computed from the database at scrape time
(`toolrec_site.scrape`), the same for every worker.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECOMMENDATION_LATENCY = Histogram(
    "tool_recommendation_latency_seconds",
    "Time to answer one recommendation request, inside the service.",
    ["variant"],
    buckets=(0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0),
)
RECOMMENDATIONS = Counter("toolrec_recommendations_total", "Recommendations served.", ["variant"])
# One series per (tool, used) would be one per catalog tool, up to a million: only the
# TOOL_LABELS_MAX most used tools (per the learned counts this process serves) carry their
# own name, every other tool counts under tool="other". The series ever created are bounded
# by the tools that were once among the most used since the server started.
TOOL_USES = Counter(
    "toolrec_tool_uses_total",
    "Feedback on shown tools, by tool (the most used by name, the rest as other) and used or not.",
    ["tool", "used"],
)
FEEDBACK_EVENTS = Counter("toolrec_feedback_events_total", "Feedback events received.", ["outcome"])
EMBEDDING_CACHE = Counter("toolrec_embedding_cache_total", "Embedding cache lookups.", ["result"])
# The tools of the snapshot loaded last by any live worker: workers load a snapshot only
# when it is newer, so the most recent load is the newest catalog being served.
ACTIVE_TOOLS = Gauge(
    "toolrec_active_tools", "Tools in the newest snapshot a worker serves.", multiprocess_mode="livemostrecent"
)
# The oldest version any live worker still serves: alerting on a worker stuck on an old
# snapshot or state needs the minimum, not one worker's value (dead workers do not count).
SNAPSHOT_VERSION = Gauge(
    "toolrec_snapshot_version", "Oldest snapshot version a live worker serves.", multiprocess_mode="livemin"
)
LEARNED_STATE_VERSION = Gauge(
    "toolrec_learned_state_version",
    "Oldest learned-state version a live worker serves.",
    multiprocess_mode="livemin",
)
# Each worker sets 1 when it starts; the master removes a dead worker's file (child_exit),
# so the live sum is the number of workers up.
WEB_WORKERS = Gauge("toolrec_web_workers", "Web worker processes up.", multiprocess_mode="livesum")
FALLBACKS = Counter(
    "toolrec_recommendation_fallbacks_total",
    "Recommendations served on a fallback: keyword retrieval (embedding failed) or the semantic policy "
    "(learned signals unreadable, ranking failed).",
    ["reason"],
)

TOOL_LABELS_MAX = 50
OTHER_TOOL = "other"
_tool_labels: dict[int, str] = {}


def tool_labels_set(labels: dict[int, str]) -> None:
    """The tools (id -> "namespace/name") that get their own label in TOOL_USES."""
    global _tool_labels
    _tool_labels = dict(list(labels.items())[:TOOL_LABELS_MAX])  # rebound whole: readers never see it half-filled


def tool_label(tool_id: int) -> str:
    return _tool_labels.get(tool_id, OTHER_TOOL)
