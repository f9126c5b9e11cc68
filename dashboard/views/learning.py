from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from dashboard.charts import Chart
from dashboard.learning_selectors import bandit_weights, latest_estimates, learning_states, rankers
from dashboard.views.access import staff_page
from dashboard.views.common import chart_csv


def learning_charts() -> list[Chart]:
    states = learning_states()
    labels = [timezone.localtime(s["created_at"]).strftime("%m-%d %H:%M") + f" v{s['pk']}" for s in states]
    batches = Chart(
        "batches", "Events learned per batch", "", "Recommendations and feedback events folded into each published "
        "learned-state version (one version per learning batch), the latest 200.", labels,
    )  # fmt: skip
    batches.datasets = {
        "feedback events": [s["events_learned"] for s in states],
        "recommendations": [s["recommendations_learned"] for s in states],
    }
    batches.headline = f"v{states[-1]['pk']} · {len(states)} versions shown" if states else "no state yet"
    seconds = Chart("learn_seconds", "Seconds per batch", "s", "Time the learner took for each batch.", labels)
    seconds.datasets = {"seconds": [round(s["learn_seconds"], 3) for s in states]}
    weights = bandit_weights()
    theta = Chart(
        "weights", "Bandit feature weights", "", "The latest state's posterior mean weight of each feature "
        "(A⁻¹b of the shared linear model); a positive weight raises a tool's score.", [n for n, _ in weights],
    )  # fmt: skip
    theta.datasets, theta.kind = {"weight": [w for _, w in weights]}, "bar"
    estimates = latest_estimates()
    ope = Chart(
        "estimates", "Off-policy estimates", "uses/rec", "Expected uses per recommendation of each candidate policy on "
        "the last week's log (SNIPS, self-normalised inverse propensity), stored every 6 hours by the "
        "`dashboard.estimate_policies` task; the logged value is what the serving policies got.",
        [e.policy for e in estimates],
    )  # fmt: skip
    ope.datasets = {
        "SNIPS": [_value(e.estimates, "snips") for e in estimates],
        "doubly robust": [_value(e.estimates, "dr") for e in estimates],
        "logged": [e.logged_value for e in estimates],
    }
    ope.kind = "bar"
    ope.headline = f"on {estimates[0].recommendations} recommendations" if estimates else "none stored yet"
    return [batches, seconds, theta, ope]


def _value(estimates: dict[str, dict[str, float]], name: str) -> float | None:
    value = estimates.get(name, {}).get("value")
    return None if value is None else round(value, 4)


@staff_page
def learning_page(request: HttpRequest) -> HttpResponse:
    """Learned-state versions, batches, bandit weights, off-policy estimates and rankers."""
    charts = learning_charts()
    csv = chart_csv(request, charts, prefix="learning-", first_column="label")
    if csv is not None:
        return csv
    context = {
        "title": "Learning",
        "nav": "learning",
        "charts": charts,
        "charts_json": [c.as_json() for c in charts],
        "estimates": latest_estimates(),
        "rankers": rankers(),
    }
    return render(request, "dashboard/learning.html", context)
