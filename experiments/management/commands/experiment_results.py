"""Print an experiment's results (per-variant table, differences from control with their
intervals, the sample-ratio test, the guardrails, the verdict) and optionally write JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from experiments.models import Experiment
from experiments.results import effect_over_time, experiment_results, log_rows, results_json


def _pct(x: float | None) -> str:
    return "   -  " if x is None else f"{100 * x:6.1f}"


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key")
        parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
        parser.add_argument("--over-time", type=int, default=0, help="add the effect at N points in time")

    def handle(self, *args: Any, **options: Any) -> None:
        experiment = Experiment.objects.filter(key=options["key"]).first()
        if experiment is None:
            raise CommandError(f"no experiment {options['key']!r}")
        results = experiment_results(experiment)
        body = results_json(results)
        if options["over_time"]:
            rows = log_rows(experiment, since=results.since, until=results.until)
            body["effect_over_time"] = effect_over_time(experiment, rows, options["over_time"])
        self._print(body)
        if options["json"]:
            options["json"].parent.mkdir(parents=True, exist_ok=True)
            options["json"].write_text(json.dumps(body, indent=2))
            self.stdout.write(f"wrote {options['json']}")

    def _print(self, body: dict[str, Any]) -> None:
        w = self.stdout.write
        w(f"experiment {body['experiment']} ({body['status']}), since {body['since']}")
        header = ("units", "recs", "hit %", "use %", "reward", "p50 ms", "p99 ms")
        w(f"{'variant':<16} " + " ".join(f"{h:>7}" for h in header))
        for v in body["variants"]:
            w(
                f"{v['name'] + (' *' if v['is_control'] else ''):<16} {v['units']:>7} {v['recommendations']:>7} "
                f"{_pct(v['hit_rate'])} {_pct(v['usage_rate'])} {v['mean_reward'] or 0:6.3f} "
                f"{v['p50_ms'] or 0:7.1f} {v['p99_ms'] or 0:7.1f}"
            )
        w(f"excluded requests (no unit id): {body['excluded_requests']}")
        w("difference from control (points; 95% CI; always-valid interval)")
        for c in body["comparisons"]:
            ci, cs = c["ci"], c["cs"]
            w(
                f"  {c['variant']:<14} {c['metric']:<11} {_pct(c['delta'])}  [{_pct(ci[0])}, {_pct(ci[1])}]  "
                f"[{_pct(cs[0])}, {_pct(cs[1])}]  p={c['p_value'] if c['p_value'] is not None else '-'}"
            )
        srm = body["srm"]
        w(f"sample ratio: units {srm['counts']} for shares {srm['expected_shares']}: p = {srm['p_value']:.3g}")
        w("SRM: MISMATCH" if srm["mismatch"] else "SRM: ok")
        for name, reasons in body["breaches"].items():
            w(f"guardrail on {name}: {'; '.join(reasons)}")
        for s in body["shadows"]:
            w(_shadow_line(s))
        w(body["verdict_text"])


def _shadow_line(s: dict[str, Any]) -> str:
    waiting = f" ({s['pending']} requests not ranked yet)" if s.get("pending") else ""
    slates = f"{s['recommendations']} slates{waiting}"
    if not s.get("served_uses"):
        return f"shadow {s['variant']}: {slates}, no uses yet"
    line = (
        f"shadow {s['variant']}: {slates}; {s['uses_in_shadow_slate']} of {s['served_uses']} uses "
        f"({_pct(s['share_of_uses_in_shadow_slate']).strip()}%) were in its slate, mean rank "
        f"{s['mean_rank_of_used_in_shadow'] or 0:.2f}"
    )
    snips_estimate = s.get("snips_uses_per_recommendation")
    if snips_estimate and snips_estimate["value"] is not None:
        line += (
            f"; uses per recommendation served {s['served_uses_per_recommendation']:.3f}, shadow (SNIPS) "
            f"{snips_estimate['value']:.3f} [{snips_estimate['ci_low']:.3f}, {snips_estimate['ci_high']:.3f}]"
        )
        if s.get("deterministic_log"):
            line += " (the served policy did not explore: the estimate only sees tools it showed)"
    return line
