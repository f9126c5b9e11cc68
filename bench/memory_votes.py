"""Cost of the context memory (votes of similar past contexts) as it grows.

For memories of 10k, 25k and 50k stored contexts (384-d, tool usage heavy-tailed over 10k
tools), prints and writes as JSON:

* ``votes``: one request's votes for 200 candidates, ten of them the most used tools
  (what `recommender.ranking.rank` calls on every request), p50/p99 over 300 calls;
* ``similar``: the 10 tools whose stored contexts are nearest the request
  (``similar_tools``, a scan of one summary row per stored tool: the extra candidates of
  the learning policies), p50/p99 over 300 calls; ``tools`` is how many rows it scans;
* ``scan``: a full exact scan of the memory, for comparison (not on the request path);
* ``add 100``: adding a learning batch's 100 new contexts to a copy of the memory, what
  every web process does when it swaps in a new learned state (in its refresh thread).

Usage: ``.venv/bin/python bench/memory_votes.py [--json OUT]``. Asserts nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from recommender.engine.memory import ContextMemory


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def percentiles(values: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(values, [50, 99])
    return round(float(p50), 3), round(float(p99), 3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=pathlib.Path, default=pathlib.Path("bench/results/memory_votes.json"))
    args = p.parse_args()
    rng = np.random.default_rng(3)
    dim, n_tools = 384, 10_000
    rows = []
    header = ("contexts", "tools", "votes p50", "votes p99", "similar p50", "similar p99", "scan p50", "add 100 p50")
    widths = (9, 6, 10, 10, 12, 12, 9, 12)
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    for size in (10_000, 25_000, 50_000):
        tools = np.minimum(rng.zipf(1.3, size), n_tools) - 1  # a few tools get most uses
        memory = ContextMemory(dim, max_size=size)
        memory.add(unit(rng, size, dim), tools)
        candidates = np.concatenate([np.arange(10), rng.choice(np.arange(10, n_tools), 190, replace=False)])
        queries = unit(rng, 300, dim)
        votes = []
        for q in queries:
            started = time.perf_counter()
            memory.votes(q, candidates, k=20)
            votes.append((time.perf_counter() - started) * 1e3)
        similar = []
        for q in queries:
            started = time.perf_counter()
            memory.similar_tools(q, 10)
            similar.append((time.perf_counter() - started) * 1e3)
        scans = []
        for q in queries[:20]:
            started = time.perf_counter()
            memory.nearest(q, 20)
            scans.append((time.perf_counter() - started) * 1e3)
        adds = []
        for _ in range(10):
            fresh = copy.copy(memory)
            started = time.perf_counter()
            fresh.add(unit(rng, 100, dim), rng.integers(0, n_tools, 100))
            adds.append((time.perf_counter() - started) * 1e3)
            memory = fresh
        row: dict[str, Any] = {
            "contexts": size,
            "tools": int(np.unique(tools).size),
            "votes_ms": percentiles(votes),
            "similar_ms": percentiles(similar),
            "scan_ms": percentiles(scans),
            "add_100_ms": percentiles(adds),
        }
        rows.append(row)
        print(
            f"{size:>9} {row['tools']:>6} {row['votes_ms'][0]:>10.3f} {row['votes_ms'][1]:>10.3f} "
            f"{row['similar_ms'][0]:>12.3f} {row['similar_ms'][1]:>12.3f} {row['scan_ms'][0]:>9.2f} "
            f"{row['add_100_ms'][0]:>12.1f}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows}, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
