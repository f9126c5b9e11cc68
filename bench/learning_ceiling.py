"""How high can a learning policy's hit rate go in `simulate`'s scenario? Upper references.

`manage.py simulate` replays a query stream through the service and reports, per policy,
the share of recommendations in which the simulated agent used a tool (hit rate). This
script rebuilds the same stream (same seed, same shuffles as the command) over the pure
engine and scores, for every step, the *expected* hit rate of a slate under the same agent
model (a relevant tool at rank r is used with probability 0.9 / (1 + 0.1 r), an irrelevant
one with 0.02), for these orderings of the 200 retrieval candidates:

* ``retrieval``: retrieval order (what the semantic policy shows);
* ``votes, all labels``: the engine's own ContextMemory votes (k nearest past contexts
  that led to a tool, weighted by similarity), fed with the *true* relevant tools of every
  earlier query in batches of --batch steps, plus a small retrieval tie-break. A learner
  that only sees which shown tools the agent used knows less than this; it is a generous
  reference for the bandit, not a bound in the strict sense;
* ``oracle``: the relevant candidates first. Limited only by retrieval's misses and by the
  tools held back until --add-at;
* ``votes + learned recall`` and ``oracle + learned recall``: the same two with the
  service's extra candidates, the --memory-candidates tools whose stored contexts are
  nearest the query (``ContextMemory.similar_tools``), as the learning policies get them.

Usage (from the repo root; embeddings come from bench/tune_retrieval.py's cache, the float
MiniLM model; the service's int8 model differs slightly)::

    D=../shared/datasets; .venv/bin/python bench/learning_ceiling.py \\
        --tools $D/toolbench/tools.jsonl --tools $D/metatool/tools.jsonl \\
        --queries $D/metatool/queries.jsonl --steps 10000 --seed 7 --add-tools-at 2000:0.1

Prints cumulative and per-interval expected hit rates and writes JSON. A benchmark: it
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import random
import sys
from collections.abc import Sequence

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from tune_retrieval import EmbeddingCache, load_tools

from recommender.engine.conversation import read_conversation
from recommender.engine.memory import ContextMemory
from recommender.engine.retrieval import RetrievalIndex
from recommender.engine.text import embedding_text

USE, DECAY, FALSE_USE = 0.9, 0.1, 0.02  # simulate's default AgentModel


def expected_hit(slate: Sequence[int], relevant: set[int]) -> float:
    miss = 1.0
    for rank, row in enumerate(slate):
        miss *= 1.0 - (USE / (1 + DECAY * rank) if row in relevant else FALSE_USE)
    return 1.0 - miss


def _orderings(
    rows: np.ndarray, relevant: set[int], memory: ContextMemory, query: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Retrieval order as a tie-break in (0, 1], the memory's votes, and 1 for the relevant rows."""
    tie_break = 1.0 - np.arange(len(rows), dtype=np.float64) / max(len(rows), 1)
    votes = memory.votes(query, rows) if len(memory) else np.zeros(len(rows))
    oracle = np.array([1.0 if int(c) in relevant else 0.0 for c in rows])
    return tie_break, votes, oracle


def stream_like_simulate(
    paths: Sequence[pathlib.Path], known: set[str], steps: int, seed: int, test_fraction: float, test_size: int
) -> tuple[list[tuple[str, frozenset[str]]], random.Random]:
    """The stream `manage.py simulate` builds: same filtering, same rng calls, same order.

    The loading repeats `recommender.simulation.load_queries` on purpose: that module imports
    Django models, and this script runs on the pure engine alone."""
    queries = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                relevant = frozenset(r for r in record["relevant"] if r in known)
                if relevant and str(record.get("query", "")).strip():
                    queries.append((record["query"], relevant))
    rng = random.Random(seed)
    rng.shuffle(queries)
    cut = int(len(queries) * test_fraction)
    test, pool = queries[:cut], queries[cut:]
    stream = [pool[i % len(pool)] for i in range(steps)]
    rng.shuffle(stream)
    rng.sample(test, min(test_size, len(test)))  # simulate draws its test set here
    return stream, rng


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tools", type=pathlib.Path, action="append", required=True)
    p.add_argument("--queries", type=pathlib.Path, action="append", required=True)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--candidates", type=int, default=200)
    p.add_argument("--memory-candidates", type=int, default=10, help="the service's MEMORY_CANDIDATES")
    p.add_argument("--batch", type=int, default=100, help="steps between memory updates (simulate's learning batch)")
    p.add_argument("--add-tools-at", default="", help="STEP:FRACTION, as simulate")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--test-size", type=int, default=500)
    p.add_argument("--cache", type=pathlib.Path, default=pathlib.Path("/tmp/toolrec_tune"))
    p.add_argument("--json", type=pathlib.Path, default=pathlib.Path("bench/results/learning_ceiling.json"))
    args = p.parse_args()
    for path in [*args.tools, *args.queries]:
        if not path.is_file():
            p.error(f"no such file: {path}")

    docs = list({d.key: d for d in load_tools(args.tools)}.values())
    row_of = {d.key: i for i, d in enumerate(docs)}
    stream, rng = stream_like_simulate(
        args.queries, set(row_of), args.steps, args.seed, args.test_fraction, args.test_size
    )
    add_at, held = None, set()
    if args.add_tools_at:
        try:
            step_text, fraction_text = args.add_tools_at.split(":")
            add_at, fraction = int(step_text), float(fraction_text)
        except ValueError:
            p.error("--add-tools-at must be STEP:FRACTION, e.g. 2000:0.1")
        asked = sorted({t for _, rel in stream for t in rel})
        held = {row_of[t] for t in rng.sample(asked, max(1, round(fraction * len(asked))))}

    cache = EmbeddingCache(args.cache)
    index = RetrievalIndex.build(docs, cache.embed([embedding_text(d) for d in docs]))
    contexts = [read_conversation([{"role": "user", "content": text}]) for text, _ in stream]
    texts = sorted({t for c in contexts for t in c.queries()})
    vectors = dict(zip(texts, cache.embed(texts), strict=True))

    without_held = np.ones(len(docs), dtype=np.bool_)
    without_held[list(held)] = False
    memory = ContextMemory(int(next(iter(vectors.values())).shape[0]))
    pending: list[tuple[np.ndarray, int]] = []
    names = ("retrieval", "votes, all labels", "oracle", "votes + learned recall", "oracle + learned recall")
    hits = {name: np.zeros(len(stream)) for name in names}
    for step, ((_, relevant_keys), ctx) in enumerate(zip(stream, contexts, strict=True)):
        if step % args.batch == 0 and pending:  # learn in batches, as simulate does
            memory.add(np.stack([v for v, _ in pending]), np.array([t for _, t in pending]))
            pending.clear()
        query = np.stack([vectors[t] for t in ctx.queries()])
        allowed = without_held if add_at is not None and step < add_at else None
        cands = index.search(ctx, query, n_candidates=args.candidates, allowed=allowed).rows
        learned = memory.similar_tools(query[0], args.memory_candidates) if len(memory) else cands[:0]
        wide = index.search(ctx, query, n_candidates=args.candidates, allowed=allowed, keep_rows=learned).rows
        relevant = {row_of[t] for t in relevant_keys}
        tie, votes, oracle = _orderings(cands, relevant, memory, query[0])
        wide_tie, wide_votes, wide_oracle = _orderings(wide, relevant, memory, query[0])
        for name, rows, score in (
            ("retrieval", cands, tie),
            ("votes, all labels", cands, votes + 0.05 * tie),
            ("oracle", cands, oracle + 1e-3 * tie),
            ("votes + learned recall", wide, wide_votes + 0.05 * wide_tie),
            ("oracle + learned recall", wide, wide_oracle + 1e-3 * wide_tie),
        ):
            slate = [int(rows[i]) for i in np.argsort(-score, kind="stable")[: args.k]]
            hits[name][step] = expected_hit(slate, relevant)
        pending += [(query[0], r) for r in sorted(relevant)]

    interval = 1000
    print(f"expected hit rate (%), {len(docs)} tools, {len(stream)} steps, seed {args.seed}, k {args.k}")
    print(f"{'ordering':<24} {'cumulative':>10}   per {interval} steps")
    report = {"tools": len(docs), "steps": len(stream), "seed": args.seed, "k": args.k, "orderings": {}}
    for name in names:
        per = [100 * float(hits[name][i : i + interval].mean()) for i in range(0, len(stream), interval)]
        cumulative = 100 * float(hits[name].mean())
        report["orderings"][name] = {"cumulative": round(cumulative, 2), "per_interval": [round(x, 2) for x in per]}
        print(f"{name:<24} {cumulative:>10.1f}   " + " ".join(f"{x:5.1f}" for x in per))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
