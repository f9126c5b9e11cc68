"""The experiment statistics' Done-when figures (issue 12) at full size, on seeded simulated
data: A/A peeking (ever-significant share of the always-valid test against a fixed-horizon
test looked at as often), power for a +3-point hit-rate lift at 20,000 units per arm, and
the sample-ratio test's flag rates. Prints a table and writes JSON; asserts nothing.

    .venv/bin/python bench/experiment_stats.py [--reps 500] [--json bench/results/experiment_stats.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.simulation import cumulative_arms
from experiments.stats import difference, ever_significant, srm_p_values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=500)
    parser.add_argument("--looks", type=int, default=20)
    parser.add_argument("--tau", type=float, default=0.03)
    parser.add_argument("--json", type=Path, default=Path("bench/results/experiment_stats.json"))
    args = parser.parse_args()
    rows = []
    started = time.perf_counter()
    per_look = 20_000 // args.looks
    for label, rate in (("A/A 50% vs 50%", 0.5), ("A/B 50% vs 53%", 0.53)):
        control, treatment = cumulative_arms(1, args.reps, args.looks, per_look, 0.5, rate)
        diff = difference(control, treatment, tau=args.tau)
        rows.append(
            {
                "case": label,
                "units_per_arm": int(control.n[0, -1]),
                "reps": args.reps,
                "looks": args.looks,
                "ever_significant_sequential": float(ever_significant(diff).mean()),
                "ever_significant_fixed_horizon": float((diff.p_value < 0.05).any(axis=1).mean()),
                "significant_at_last_look_sequential": float(
                    ((diff.cs_low[:, -1] > 0) | (diff.cs_high[:, -1] < 0)).mean()
                ),
            }
        )
    rng = np.random.default_rng(2)
    for label, share in (("SRM 49/51 at 100k", 0.49), ("SRM 50/50 at 100k", 0.5)):
        first = rng.binomial(100_000, share, size=100_000)
        p = srm_p_values(np.stack([first, 100_000 - first], axis=-1), [1, 1])
        rows.append({"case": label, "reps": 100_000, "flag_rate_p_below_0.001": float((p < 0.001).mean())})
    print(f"{'case':<20} {'units/arm':>9} {'ever sig (seq)':>14} {'ever sig (fixed)':>16} {'flag rate':>9}")
    for r in rows:
        print(
            f"{r['case']:<20} {r.get('units_per_arm', ''):>9} {r.get('ever_significant_sequential', ''):>14} "
            f"{r.get('ever_significant_fixed_horizon', ''):>16} {r.get('flag_rate_p_below_0.001', ''):>9}"
        )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}
    out = {
        "machine": machine,
        "commit": commit,
        "tau": args.tau,
        "seconds": time.perf_counter() - started,
        "results": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
