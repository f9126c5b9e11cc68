from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import random
import tempfile
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections
from django.test.utils import override_settings, setup_databases, teardown_databases

from recommender.engine.policy import POLICY_PRESETS
from recommender.offline.experiment_replay import ExperimentPlan, print_experiment_report, replay_experiment
from recommender.offline.simulation import (
    AgentModel,
    Scenario,
    clear_pending_flags,
    load_queries,
    load_specs,
    prepare_embeddings,
    simulate_policy,
)
from recommender.serving.request_signals import request_signals_stop


@contextlib.contextmanager
def throwaway_database() -> Iterator[None]:
    """A fresh, migrated database for the replay (never the configured one), dropped after."""
    connection = connections["default"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = (
        None if connection.vendor == "sqlite" else f"toolrec_simulate_{os.getpid()}"
    )
    # django-stubs types `aliases` as a Mapping; Django only iterates it and tests membership.
    old = setup_databases(verbosity=0, interactive=False, aliases={"default"})  # type: ignore[arg-type]
    try:
        yield
    finally:
        request_signals_stop()  # its threads' connections would keep the database from being dropped
        teardown_databases(old, verbosity=0)


@contextlib.contextmanager
def tool_vector_folder(shared: Path, work: Path, say: Any) -> Iterator[Path]:
    """Qdrant local mode's folder for the tool vectors, for the whole run: the shared one,
    kept between runs so that only the first run embeds the catalog (and never the
    service's own vectors), or, while another replay holds it, a new one in this run's work
    folder (local mode allows one process per folder, and each rebuild opens it)."""
    shared.parent.mkdir(parents=True, exist_ok=True)
    with shared.with_name(f"{shared.name}.run-lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say.write(f"{shared} is in use by another replay: this one embeds the tools into its own folder")
            yield work / "qdrant"
            return
        try:
            yield shared
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Command(BaseCommand):
    help = (
        "Replay queries as conversations through the real recommendation, feedback and learning code with a "
        "simulated agent, and compare policies side by side (usage, hit rate, Recall@5 and nDCG@10 on test queries, "
        "coverage, and how fast tools added mid-run are picked up)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tools", type=Path, action="append", required=True)
        parser.add_argument("--queries", type=Path, action="append", required=True)
        parser.add_argument(
            "--test-queries",
            type=Path,
            action="append",
            default=None,
            help="held-out queries; without it, --test-fraction of --queries is held out",
        )
        parser.add_argument("--test-fraction", type=float, default=0.2)
        parser.add_argument("--test-size", type=int, default=500, help="test queries scored at each checkpoint")
        parser.add_argument("--steps", type=int, default=10_000)
        parser.add_argument(
            "--policies", default="semantic,hybrid", help=f"comma-separated, from: {', '.join(POLICY_PRESETS)}"
        )
        parser.add_argument(
            "--policy",
            action="append",
            default=[],
            metavar="NAME=JSON",
            help='an extra policy, e.g. hybrid-w=\'{"name": "hybrid", "w_semantic": 0.3}\'',
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--k", type=int, default=5)
        parser.add_argument("--batch", type=int, default=100, help="steps between learning batches")
        parser.add_argument("--eval-every", type=int, default=1000)
        parser.add_argument("--train-every", type=int, default=2000, help="LambdaMART retraining, for ltr/hybrid")
        parser.add_argument(
            "--add-tools-at",
            default=None,
            metavar="STEP:FRACTION",
            help="hold back FRACTION of the tools that the stream asks for, add them at STEP",
        )
        parser.add_argument("--use-probability", type=float, default=0.9)
        parser.add_argument("--position-decay", type=float, default=0.1)
        parser.add_argument("--false-use", type=float, default=0.02)
        parser.add_argument("--json", type=Path, default=None)
        parser.add_argument(
            "--experiment",
            default="",
            metavar="CONTROL,TREATMENT",
            help="instead of one replay per policy, one replay through a running A/B experiment of these policies",
        )
        parser.add_argument("--users", type=int, default=2000, help="--experiment: distinct users in the stream")
        parser.add_argument("--ramp", default="", metavar="SHARES", help="--experiment: ramp shares, e.g. 0.1,0.5,1")
        parser.add_argument("--ramp-min-units", type=int, default=100, help="--experiment: units before a ramp step")
        parser.add_argument("--guardrails", default="{}", help='--experiment: JSON, e.g. {"min_units": 50}')
        parser.add_argument("--watch-every", type=int, default=500, help="--experiment: steps between watches")
        parser.add_argument(
            "--drop",
            default="",
            metavar="VARIANT:SHARE",
            help="--experiment: then lose the log of a share of its users",
        )
        parser.add_argument(
            "--isolated",
            action="store_true",
            help="--experiment: each learning variant learns in a state of its own (semantic reads none)",
        )
        parser.add_argument(
            "--via",
            choices=["http", "services"],
            default="http",
            help="--experiment: the stream's requests go over HTTP to the API (default) or to the services, seeded",
        )
        parser.add_argument(
            "--base-url",
            default="",
            help="--experiment --via http: a running server on this same database (needs --in-current-database); "
            "default: a server the command starts in a thread on 127.0.0.1",
        )
        parser.add_argument(
            "--in-current-database",
            action="store_true",
            help="use the configured database as is (it is WIPED: for tests only)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        names = [p.strip() for p in options["policies"].split(",") if p.strip()]
        unknown = [name for name in names if name not in POLICY_PRESETS]
        policies: dict[str, dict[str, Any]] = {
            name: dict(POLICY_PRESETS[name]) for name in names if name in POLICY_PRESETS
        }
        for extra in options["policy"]:
            name, _, raw = extra.partition("=")
            try:
                policies[name.strip()] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise CommandError(f"--policy {extra!r}: expected NAME=JSON") from exc
        if unknown or not policies:
            raise CommandError(f"unknown policies {unknown}; choose from {', '.join(POLICY_PRESETS)}")
        for path in [*options["tools"], *options["queries"], *(options["test_queries"] or [])]:
            if not path.is_file():
                raise CommandError(f"no such file: {path}")
        if options["steps"] < 1 or not 1 <= options["k"] <= 50:
            raise CommandError("--steps must be >= 1 and --k between 1 and 50")
        scenario = self._scenario(options)
        isolation = contextlib.nullcontext() if options["in_current_database"] else throwaway_database()
        work = tempfile.mkdtemp(prefix="toolrec-simulate-")
        with (
            isolation,
            tool_vector_folder(Path(settings.VAR_DIR) / "simulate-qdrant", Path(work), self.stderr) as vectors,
            override_settings(
                SNAPSHOT_DIR=Path(work) / "snapshots",
                QDRANT_PATH=vectors,
                LEARNING_AUTO_SCHEDULE=False,
                IMPLICIT_FEEDBACK=False,
                # Check for a new snapshot and learned state on every read, in this thread:
                # a background refresher would make the replay depend on wall-clock time
                # (which batch a recommendation sees) and shares SQLite's in-memory
                # database across threads ("database table is locked").
                SNAPSHOT_CHECK_SECONDS=0.0,
                LEARNING_CHECK_SECONDS=0.0,
            ),
        ):
            clear_pending_flags()
            embedded = prepare_embeddings(scenario)
            self.stdout.write(
                f"{len(scenario.specs)} tools, {len(scenario.stream)} steps, "
                f"{len(scenario.test)} test queries; {embedded} texts embedded up front"
            )
            if options["experiment"]:
                report = replay_experiment(scenario, self._plan(options, policies))
                print_experiment_report(self.stdout.write, report)
                self._write(options, report)  # before the throwaway database is dropped
            else:
                runs = [simulate_policy(scenario, name, config) for name, config in policies.items()]
        if options["experiment"]:
            return
        report = {
            "tools": len(scenario.specs),
            "steps": len(scenario.stream),
            "k": scenario.k,
            "test_queries": len(scenario.test),
            "seed": scenario.seed,
            "add_tools_at": options["add_tools_at"],
            "held_back_tools": len(scenario.held_back),
            "agent": asdict(scenario.agent),
            "runs": [asdict(run) for run in runs],
            "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()},
        }
        self._print(report)
        self._write(options, report)

    def _write(self, options: dict[str, Any], report: dict[str, Any]) -> None:
        if options["json"]:
            options["json"].parent.mkdir(parents=True, exist_ok=True)
            options["json"].write_text(json.dumps(report, indent=2, default=str))
            self.stdout.write(f"wrote {options['json']}")

    def _plan(self, options: dict[str, Any], policies: dict[str, dict[str, Any]]) -> ExperimentPlan:
        names = [n.strip() for n in options["experiment"].split(",") if n.strip()]
        if len(names) != 2 or any(n not in policies for n in names):
            raise CommandError("--experiment takes two policies named in --policies or --policy: CONTROL,TREATMENT")
        try:
            shares = [float(x) for x in options["ramp"].split(",") if x.strip()]
            guardrails = json.loads(options["guardrails"])
            drop = None
            if options["drop"]:
                variant, dropped = options["drop"].split(":")
                drop = (variant, [float(x) for x in dropped.split(",")])
        except ValueError as exc:
            raise CommandError(f"--ramp, --guardrails or --drop: {exc}") from exc
        if options["base_url"] and not options["in_current_database"]:
            raise CommandError("--base-url needs --in-current-database: the server must serve the replay's database")
        ramp = [{"share": x, "min_minutes": 0, "min_units": options["ramp_min_units"]} for x in shares]
        return ExperimentPlan(
            variants=[(n, policies[n]) for n in names],
            users=options["users"],
            ramp=ramp,
            guardrails=guardrails,
            watch_every=options["watch_every"],
            drop=drop,
            isolated=options["isolated"],
            via=options["via"],
            base_url=options["base_url"],
        )

    def _scenario(self, options: dict[str, Any]) -> Scenario:
        specs = load_specs(options["tools"])
        known = {s.name for s in specs}
        rng = random.Random(options["seed"])
        queries = load_queries(options["queries"], known)
        if options["test_queries"]:
            test = load_queries(options["test_queries"], known)
            stream_pool = queries
        else:
            rng.shuffle(queries)
            cut = int(len(queries) * options["test_fraction"])
            test, stream_pool = queries[:cut], queries[cut:]
        if not stream_pool or not test:
            raise CommandError("no usable queries: their relevant tools must be in the catalog")
        stream = [stream_pool[i % len(stream_pool)] for i in range(options["steps"])]
        rng.shuffle(stream)
        test = rng.sample(test, min(options["test_size"], len(test)))
        add_at, held_back = None, frozenset[str]()
        if options["add_tools_at"]:
            try:
                step_text, fraction_text = options["add_tools_at"].split(":")
                add_at, fraction = int(step_text), float(fraction_text)
            except ValueError as exc:
                raise CommandError("--add-tools-at must be STEP:FRACTION, e.g. 2000:0.1") from exc
            asked = sorted({t for q in stream for t in q.relevant})
            held_back = frozenset(rng.sample(asked, max(1, round(fraction * len(asked)))))
        return Scenario(
            specs=specs,
            stream=stream,
            test=test,
            k=options["k"],
            batch=options["batch"],
            eval_every=options["eval_every"],
            add_at=add_at,
            held_back=held_back,
            train_every=options["train_every"],
            agent=AgentModel(options["use_probability"], options["position_decay"], options["false_use"]),
            seed=options["seed"],
            progress=lambda line: self.stdout.write(line),
        )

    def _print(self, report: dict[str, Any]) -> None:
        self.stdout.write(
            f"\n{'policy':<16} {'step':>6} {'usage':>7} {'hit':>7} {'usage/i':>8} {'hit/i':>7} "
            f"{'R@5':>7} {'nDCG@10':>8} {'coverage':>9} {'events':>7}"
        )
        for run in report["runs"]:
            for c in run["checkpoints"]:
                self.stdout.write(
                    f"{run['policy']:<16} {c['step']:>6} {c['usage_rate']:>7.1f} {c['hit_rate']:>7.1f} "
                    f"{c['interval_usage_rate']:>8.1f} {c['interval_hit_rate']:>7.1f} "
                    f"{c['recall_at_5']:>7.1f} {c['ndcg_at_10']:>8.1f} {c['coverage']:>9.1f} {c['learned_events']:>7}"
                )
        self.stdout.write("")
        for run in report["runs"]:
            batches = run["learn_batch_seconds"]
            line = f"{run['policy']:<16} {run['seconds']:.0f}s"
            if batches:
                line += f", learning batch max {max(batches) * 1000:.0f} ms"
            if run["held_back"]:
                held = run["held_back"]
                line += (
                    f"; held-back tools: {held['recommended']}/{held['tools']} recommended, median "
                    f"{held['median_queries_before_recommended']} of their queries before"
                )
            self.stdout.write(line)
