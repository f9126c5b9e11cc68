"""The experiments pages: the list (with the default policy's history and its rollback), and
one experiment's results as recorded at its looks (the periodic guardrail check writes one a
minute; "Look now" adds one), never the raw log. Buttons post back to the same page and call
the experiments' services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.dateparse import parse_datetime

from dashboard.views.access import staff_page
from experiments.models import Experiment, ExperimentEvent, ExperimentLook
from experiments.rollout import experiment_look_record
from experiments.selectors import policy_history
from experiments.services import experiment_promote, experiment_stop, policy_rollback
from toolrec_site.errors import ToolrecError

CHANGE = "experiments.change_experiment"
LOOKS_SHOWN = 500  # the chart's points; a look a minute is eight hours of them


def _actor(request: HttpRequest) -> str:
    return request.user.get_username() or "dashboard"


@staff_page
def experiments_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if not request.user.has_perm("experiments.add_policyversion"):
            return HttpResponseForbidden("You may not change the default policy.")
        try:
            version = policy_rollback(actor=_actor(request))
            messages.success(request, f"Rolled back: v{version.version} serves ({version.source}).")
        except ToolrecError as exc:
            messages.error(request, exc.message)
        return redirect("dashboard:experiments")
    latest = ExperimentLook.objects.filter(experiment=OuterRef("pk")).order_by("-created_at")
    experiments = Experiment.objects.annotate(
        last_verdict=Subquery(latest.values("verdict")[:1]),
        last_units=Subquery(latest.values("units")[:1]),
        last_look=Subquery(latest.values("created_at")[:1]),
    ).order_by("-created_at")
    context = {"title": "Experiments", "nav": "experiments", "experiments": experiments, "policies": policy_history()}
    return render(request, "dashboard/experiments.html", context)


def _act(request: HttpRequest, experiment: Experiment) -> None:
    action = request.POST.get("action", "")
    if action == "look":
        experiment_look_record(experiment=experiment)
        messages.success(request, "Looked: the results below are fresh.")
    elif action == "stop":
        experiment_stop(
            experiment=experiment,
            actor=_actor(request),
            reason=request.POST.get("reason", "") or "stopped from the dashboard",
        )
        messages.success(request, "Stopped: its traffic returns to the default policy within seconds.")
    elif action == "promote":
        version = experiment_promote(
            experiment=experiment, variant_name=request.POST.get("variant", ""), actor=_actor(request)
        )
        messages.success(request, f"Promoted: default policy v{version.version} serves all traffic within seconds.")
    else:
        raise ToolrecError(f"unknown action {action!r}")


@staff_page
def experiment_page(request: HttpRequest, key: str) -> HttpResponse:
    experiment = get_object_or_404(Experiment, key=key)
    if request.method == "POST":
        if not request.user.has_perm(CHANGE):
            return HttpResponseForbidden("You may not change experiments.")
        try:
            _act(request, experiment)
        except ToolrecError as exc:
            messages.error(request, exc.message)
        return redirect("dashboard:experiment", key=key)
    looks = list(ExperimentLook.objects.filter(experiment=experiment).order_by("-created_at")[:LOOKS_SHOWN])[::-1]
    latest = looks[-1].results if looks else None
    context: dict[str, Any] = {
        "title": f"Experiment {experiment.key}",
        "nav": "experiments",
        "experiment": experiment,
        "variants": list(experiment.variants.all()),
        "latest": latest,
        "looked_at": looks[-1].created_at if looks else None,
        # The minute's look may reuse an earlier look's shadow results (experiments.rollout).
        "shadows_at": parse_datetime(latest.get("shadows_at") or "") if latest else None,
        "shadow_results_seconds": int(settings.SHADOW_RESULTS_SECONDS),
        "events": list(ExperimentEvent.objects.filter(experiment=experiment).order_by("-created_at", "-id")[:100]),
        "chart": _chart(looks),
        "can_change": request.user.has_perm(CHANGE),
    }
    return render(request, "dashboard/experiment.html", context)


def _chart(looks: list[ExperimentLook]) -> dict[str, Any]:
    """Per treatment, the hit-rate difference (points) at each look with both intervals."""
    series: dict[str, dict[str, list[Any]]] = {}
    for look in looks:
        for c in look.results.get("comparisons", []):
            if c["metric"] != "hit_rate" or c["delta"] is None:
                continue
            s = series.setdefault(
                c["variant"], {"at": [], "delta": [], "ci_low": [], "ci_high": [], "cs_low": [], "cs_high": []}
            )
            s["at"].append(look.created_at.isoformat(timespec="seconds"))
            s["delta"].append(100 * c["delta"])
            for name, pair in (("ci", c["ci"]), ("cs", c["cs"])):
                s[f"{name}_low"].append(None if pair[0] is None else 100 * pair[0])
                s[f"{name}_high"].append(None if pair[1] is None else 100 * pair[1])
    return series
