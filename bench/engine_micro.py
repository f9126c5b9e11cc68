"""Micro-benchmarks of the pure engine's per-request and per-batch steps: the bandit's
rank-one updates against one batched update, and the feature matrix of a request.

A benchmark, not a test: it prints a table and writes JSON (with the machine) and asserts
nothing about time. These loops were timing tests that asserted nothing; the equivalence
of the two update paths stays a test (tests/recommender/engine/test_bandit.py).

    .venv/bin/python bench/engine_micro.py [--json bench/results/engine_micro.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recommender.engine.bandit import LinearBanditState, update, update_batched
from recommender.engine.features import FeatureInputs, build_features
from recommender.engine.ranking_metrics import percentiles


def _times_ms(step: Callable[[], object], runs: int) -> list[float]:
    step()  # warm up
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        step()
        out.append((time.perf_counter() - started) * 1000)
    return out


def _feature_inputs(n: int, rng: np.random.Generator) -> FeatureInputs:
    return FeatureInputs(
        dense=rng.uniform(-0.2, 0.9, n).astype(np.float32),
        sparse=rng.uniform(0, 15, n).astype(np.float32),
        fused=np.sort(rng.uniform(0, 3, n))[::-1].astype(np.float32),
        fused_rank=np.arange(n),
        tool_uses=rng.integers(0, 500, n).astype(np.float64),
        tool_shows=rng.integers(500, 5000, n).astype(np.float64),
        seconds_since_last_use=rng.uniform(0, 1e6, n),
        user_uses=rng.integers(0, 5, n).astype(np.float64),
        user_shows=rng.integers(5, 20, n).astype(np.float64),
        co_use=rng.integers(0, 10, n).astype(np.float64),
        neighbor_votes=rng.integers(0, 5, n).astype(np.float64),
        is_new=rng.random(n) < 0.05,
        has_error=False,
        has_code=True,
        message_count=6,
        already_called=None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--json", type=Path, default=Path("bench/results/engine_micro.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(13)
    d, n = 23, 1000
    X = rng.standard_normal((n, d)).astype(np.float32)
    r = rng.binomial(1, 0.2, n).astype(np.float32)
    state = LinearBanditState.initial(d)
    inputs = _feature_inputs(200, rng)
    rows = {
        "bandit: 1,000 rank-one updates": _times_ms(lambda: update(state, X, r), max(5, args.runs // 20)),
        "bandit: one batched update of 1,000 rows": _times_ms(lambda: update_batched(state, X, r), args.runs),
        "features: 200 candidates": _times_ms(lambda: build_features(inputs), args.runs),
    }
    print(f"{'step':<44} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}")
    report = {}
    for name, times in rows.items():
        p = percentiles(times)
        report[name] = {**p, "runs": len(times)}
        print(f"{name:<44} {p['p50']:>9.3f} {p['p95']:>9.3f} {p['p99']:>9.3f}")
    machine = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": machine, "results": report}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
