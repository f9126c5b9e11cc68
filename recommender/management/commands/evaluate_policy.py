from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommender.engine.policy import POLICY_PRESETS, policy_from_json
from recommender.offline.policy_evaluation import evaluate_policy


class Command(BaseCommand):
    help = (
        "Estimate from the logged recommendations how a policy would do before it gets traffic: IPS, SNIPS and "
        "doubly robust estimates of the expected uses per recommendation, with confidence intervals."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--policy", default="hybrid", help=f"a preset: {', '.join(POLICY_PRESETS)}")
        parser.add_argument("--policy-json", default=None, help="a policy configuration, overrides --policy")
        parser.add_argument("--since-days", type=float, default=30)
        parser.add_argument("--limit", type=int, default=20_000)
        parser.add_argument("--max-weight", type=float, default=50.0)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--json", type=Path, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["policy_json"]:
            try:
                raw = json.loads(options["policy_json"])
            except json.JSONDecodeError as exc:
                raise CommandError(f"--policy-json is not JSON: {exc}") from exc
        elif options["policy"] in POLICY_PRESETS:
            raw = POLICY_PRESETS[options["policy"]]
        else:
            raise CommandError(f"unknown policy {options['policy']!r}; choose from {', '.join(POLICY_PRESETS)}")
        try:
            config = policy_from_json(raw)
        except ValueError as exc:
            raise CommandError(f"invalid policy configuration {raw}: {exc}") from exc
        report = evaluate_policy(
            config=config,
            since_days=options["since_days"],
            limit=options["limit"],
            seed=options["seed"],
            max_weight=options["max_weight"],
        )
        report["policy"] = raw
        if not report["recommendations"]:
            self.stdout.write("No logged recommendations with candidates in that window: nothing to evaluate.")
        else:
            self._print(report)
        if options["json"]:
            options["json"].parent.mkdir(parents=True, exist_ok=True)
            options["json"].write_text(json.dumps(report, indent=2))
            self.stdout.write(f"wrote {options['json']}")

    def _print(self, report: dict[str, Any]) -> None:
        self.stdout.write(
            f"policy {report['policy']} on {report['recommendations']} recommendations ({report['events']} shown tools)"
        )
        self.stdout.write(f"logged policies' value: {report['logged_value']:.3f} uses per recommendation")
        self.stdout.write(f"{'estimator':<10} {'value':>8} {'95% CI':>20} {'effective n':>12}")
        for name, e in report["estimates"].items():
            interval = f"[{e['ci_low']:.3f}, {e['ci_high']:.3f}]"
            self.stdout.write(f"{name:<10} {e['value']:>8.3f} {interval:>20} {e['effective_n']:>12.0f}")
        if report["deterministic_share"] > 0.5:
            self.stdout.write(
                f"warning: {100 * report['deterministic_share']:.0f}% of these recommendations came from deterministic "
                "policies (propensity 1): IPS cannot credit tools they never showed, so the estimates lean on the "
                "logging policy's choices. Serve an exploring policy (epsilon or thompson) to a share of traffic first."
            )
