"""`--alternate-shadow N`: what a shadow variant on all traffic adds to the served latency
(issue 12: at most 10% of the p99), measured on one running server as N pairs of blocks
without and with the shadow, in alternation.

Separate runs (one without, one with) measure the machine as much as the shadow: on a shared
2-core VM the load drifts by more than 10% between runs minutes apart. Blocks on one server,
alternated, see the same drift, and each pair swaps its order (off-on, then on-off: ABBA), so
a steady drift adds nothing to the ratio. Each block is a sequential phase (one client,
`--requests`) and then a concurrent one (`--clients` for `--duration` s): the shadow's work
(the full candidate log on the request, the ranking on a Celery worker, or on a timer thread in
the web process without `--broker-url`) competes with the served requests for the two cores
most when several requests run at once. With `--rate` the concurrent phase is an open loop
(`traffic.run_open_loop`): sessions arrive at that rate whatever the server's pace, with the
same arrival times in both blocks of a pair, which measures the latency at a given load
instead of at saturation (where a closed loop's latency follows the CPU per request, the
shadow worker's included). At the end the run waits for the shadows to finish
and reports, per "on" block, how many requests they ranked and how long after.
The shadow is switched by `django_probe shadow-set`: "on" is an experiment whose only live
variant serves the default policy, its shadow on every request; "off" is the same experiment
without the shadow, so that what differs is the shadow alone, not an experiment's own costs
(assignment, the watch's looks every minute). The server notices within the experiments'
cache time, so each block waits that long first and drops its warm-up. Each block starts with
a VACUUM (ANALYZE), which this machine's PostgreSQL (autovacuum off) would otherwise never do;
the dead row versions it finds are the previous block's."""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .conversations import SessionSource
from .cpu import CpuMeter
from .learning import django_probe
from .report import parts_pcts, pcts
from .traffic import run_concurrent, run_open_loop, run_sequential

SETTLE_SECONDS = 6.0  # experiments.selectors.CACHE_SECONDS (5 s) and a margin
SETTLE_REQUESTS = 10  # sent after the switch, not measured: the first shadow jobs start up


def alternate_shadow(
    args: argparse.Namespace,
    env: dict[str, str],
    base_url: str,
    key: str,
    source: SessionSource,
    cpu_meter: Callable[[], CpuMeter],
) -> dict[str, Any]:
    if not args.shadow:
        raise SystemExit("--alternate-shadow needs --shadow POLICY")
    blocks: list[dict[str, Any]] = []
    for pair in range(args.alternate_shadow):
        order = ("off", "on") if pair % 2 == 0 else ("on", "off")
        for state in order:
            blocks.append(_block(args, env, base_url, key, source, pair, state, cpu_meter))
    django_probe({**env, "BENCH_SHADOW_POLICY": ""}, "shadow-set")  # leave the server as found
    _dead_tuples(blocks, django_probe(env, "vacuum") or {})
    summary = {phase: _ratio(blocks, phase) for phase in ("sequential", "concurrent")}
    for phase, s in summary.items():
        print(
            f"{phase:<11} p99 median off {s['p99_off_median']:.1f} ms, on {s['p99_on_median']:.1f} ms: "
            f"ratio {s['ratio_of_medians']:.3f} (per pair {', '.join(f'{r:.2f}' for r in s['pair_ratios'])}; "
            f"geometric mean {s['pair_ratio_geometric_mean']:.3f}); pooled p99 off {s['pooled_off'].get('p99', 0):.1f} "
            f"ms, on {s['pooled_on'].get('p99', 0):.1f} ms: ratio {s['pooled_p99_ratio'] or 0:.3f}"
            + _interval_note(s["pooled_p99_ratio_interval"])
        )
    for phase in ("sequential", "concurrent"):
        parts = _parts_difference(blocks, phase)
        summary[phase]["parts_ms"] = parts
        print(
            f"{phase:<11} median over blocks of each part's p50 and p99, off -> on: "
            + ", ".join(f"{name} {v['off']:.2f} -> {v['on']:.2f}" for name, v in parts.items())
        )
    cpu = _cpu_ratio(blocks)
    print(
        "CPU per served request in the concurrent phase (median of blocks), off -> on: "
        + ", ".join(f"{g} {v['off']:.1f} -> {v['on']:.1f} ms" for g, v in cpu["groups"].items())
        + f"; services' total ratio {cpu['total_ratio']:.3f}"
    )
    busiest = sorted(cpu["others_top"].items(), key=lambda kv: -max(kv[1].values()))[:6]
    print("  other processes: " + ", ".join(f"{c} {v['off']:.2f} -> {v['on']:.2f} ms" for c, v in busiest))
    return {"blocks": blocks, "summary": summary, "cpu": cpu, "shadow_slates": _shadows_done(env)}


def _parts_difference(blocks: list[dict[str, Any]], phase: str) -> dict[str, dict[str, float]]:
    """Per Server-Timing part, the median over blocks of its p50 and of its p99, off and on:
    where in the request a difference lies (the store, the embedding, the HTTP remainder)."""
    parts = {s: [b[phase].get("parts_ms", {}) for b in blocks if b["shadow"] == s] for s in ("off", "on")}
    names = [n for n in parts["off"][0] if all(n in p for ps in parts.values() for p in ps)] if parts["off"] else []
    return {
        f"{name} {q}": {state: statistics.median(p[name][q] for p in ps) for state, ps in parts.items()}
        for name in names
        for q in ("p50", "p99")
    }


def _dead_tuples(blocks: list[dict[str, Any]], last: dict[str, Any]) -> None:
    """Each block's dead row versions per request, as the vacuum after it found them (the next
    block's, or the last one), and how long that vacuum took."""
    after = [b.get("vacuum_before") or {} for b in blocks[1:]] + [last]
    for block, vacuumed in zip(blocks, after, strict=True):
        if vacuumed.get("dead_tuples_before") is not None:
            block["dead_tuples_per_request"] = vacuumed["dead_tuples_before"] / max(1, block["requests"])
            block["vacuum_seconds_after"] = vacuumed["seconds"]
    for state in ("off", "on"):
        dead = [b["dead_tuples_per_request"] for b in blocks if b["shadow"] == state and "dead_tuples_per_request" in b]
        if dead:
            print(f"dead row versions per request, shadow {state}: median {statistics.median(dead):.2f}")


def _interval_note(interval: tuple[float, float] | None) -> str:
    return f" (95% bootstrap over pairs {interval[0]:.3f}-{interval[1]:.3f})" if interval else ""


SERVICES = ("server", "celery_worker", "shadow_worker", "postgres", "redis-server")  # what serving and shadows run on


def _cpu_ratio(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """CPU per served request by process group, on and off (medians over blocks): unlike the
    p99, it hardly moves with the machine's drift, and under saturation the latency grows
    with it."""
    groups: dict[str, dict[str, float]] = {}
    for group in blocks[0]["cpu_ms_per_request"]:
        groups[group] = {
            state: statistics.median(b["cpu_ms_per_request"][group] for b in blocks if b["shadow"] == state)
            for state in ("off", "on")
        }
    totals = {state: sum(v[state] for g, v in groups.items() if g in SERVICES) for state in ("off", "on")}
    others: dict[str, dict[str, float]] = {}  # the busiest unnamed processes, mean over blocks
    for state in ("off", "on"):
        mine = [b.get("others_top_ms_per_request", {}) for b in blocks if b["shadow"] == state]
        for comm in {c for top in mine for c in top}:
            others.setdefault(comm, {"off": 0.0, "on": 0.0})[state] = sum(t.get(comm, 0.0) for t in mine) / len(mine)
    return {"groups": groups, "total_ms": totals, "total_ratio": totals["on"] / totals["off"], "others_top": others}


def _shadows_done(env: dict[str, str], wait_seconds: float = 180.0) -> dict[str, Any]:
    """Whether the shadows ranked every request of the "on" blocks, and how long after it:
    a shadow that adds nothing to the served latency because it never ran would prove nothing."""
    started = time.monotonic()
    status = django_probe(env, "shadow-status") or {}
    while any(s["pending"] for s in status.values()) and time.monotonic() - started < wait_seconds:
        time.sleep(5.0)
        status = django_probe(env, "shadow-status") or {}
    waited = time.monotonic() - started
    for key, s in status.items():
        lag = s["lag_seconds"] or {}
        print(
            f"{key}: {s['slates']} shadow slates for {s['recommendations']} recommendations, {s['pending']} pending "
            f"after the run (+{waited:.0f} s); stored p50 {lag.get('p50', 0):.1f} s, p99 {lag.get('p99', 0):.1f} s, "
            f"max {lag.get('max', 0):.1f} s after their recommendation"
        )
    return {"experiments": status, "waited_seconds": waited}


def _block(
    args: argparse.Namespace,
    env: dict[str, str],
    base_url: str,
    key: str,
    source: SessionSource,
    pair: int,
    state: str,
    cpu_meter: Callable[[], CpuMeter],
) -> dict[str, Any]:
    policy = args.shadow if state == "on" else ""
    # As autovacuum would (it is off on this machine): every block starts from a vacuumed
    # database, and the dead row versions the block before left are counted (a shadowed
    # request leaves one more: its row is rewritten once ranked).
    vacuumed = django_probe(env, "vacuum")
    switched = django_probe({**env, "BENCH_SHADOW_POLICY": policy, "BENCH_SHADOW_BASELINE": "experiment"}, "shadow-set")
    time.sleep(SETTLE_SECONDS)
    run_sequential(base_url, key, source, SETTLE_REQUESTS, "settle")
    label = f"{state}{pair}"
    sequential = run_sequential(base_url, key, source, args.requests, f"seq-{label}")
    started = time.perf_counter()
    with cpu_meter() as meter:
        if args.rate:  # the same arrival times in both blocks of a pair
            concurrent = run_open_loop(base_url, key, source, args.rate, args.duration, f"con-{label}", seed=pair)
        else:
            concurrent = run_concurrent(
                base_url, key, source, args.clients, args.duration, args.concurrent_requests, f"con-{label}"
            )
    block: dict[str, Any] = {"pair": pair, "shadow": state, "switched": switched, "vacuum_before": vacuumed}
    served = max(1, sum(1 for r in concurrent if r["status"] == 200))
    block["cpu_ms_per_request"] = {group: 1000 * sec / served for group, sec in meter.seconds.items()}
    block["others_top_ms_per_request"] = {comm: 1000 * sec / served for comm, sec in meter.others_top.items()}
    for phase, rows in (("sequential", sequential), ("concurrent", concurrent)):
        ok = [r["e2e"] for r in rows if r["status"] == 200]
        block[phase] = {
            "ms": pcts(ok),
            "errors": len(rows) - len(ok),
            "e2e_ms": [round(v, 2) for v in ok],
            "parts_ms": parts_pcts(rows),
        }
    queued = [r["queued_ms"] for r in concurrent if "queued_ms" in r]
    if queued:  # open loop: how long arrivals waited for a free connection (in their e2e)
        block["concurrent"]["queued_ms"] = pcts(queued)
    block["concurrent"]["requests_per_second"] = len(concurrent) / (time.perf_counter() - started)
    block["requests"] = SETTLE_REQUESTS + len(sequential) + len(concurrent)
    block["load_average"] = os.getloadavg()
    seq, con = block["sequential"]["ms"] or {}, block["concurrent"]["ms"] or {}
    print(
        f"pair {pair} shadow {state:<3}: sequential p50 {seq.get('p50', 0):.1f} p99 {seq.get('p99', 0):.1f} ms, "
        f"concurrent p50 {con.get('p50', 0):.1f} p99 {con.get('p99', 0):.1f} ms (n {con.get('n', 0)}, "
        f"{block['concurrent']['requests_per_second']:.1f}/s), "
        f"load {block['load_average'][0]:.2f}"
    )
    return block


def _ratio(blocks: list[dict[str, Any]], phase: str) -> dict[str, Any]:
    def p99(state: str) -> list[float]:
        return [b[phase]["ms"]["p99"] for b in blocks if b["shadow"] == state and b[phase]["ms"]]

    def pooled(state: str) -> dict[str, float]:
        """Every block's requests together: the p99 of a few thousand requests, not of one
        block's thousand (whose top 1% is ten requests)."""
        return pcts([v for b in blocks if b["shadow"] == state for v in b[phase]["e2e_ms"]]) or {}

    off, on = p99("off"), p99("on")
    pooled_off, pooled_on = pooled("off"), pooled("on")
    pair_ratios = [b / a for a, b in zip(off, on, strict=True)]
    pairs = [
        (
            [v for b in blocks if b["pair"] == i and b["shadow"] == "off" for v in b[phase]["e2e_ms"]],
            [v for b in blocks if b["pair"] == i and b["shadow"] == "on" for v in b[phase]["e2e_ms"]],
        )
        for i in sorted({b["pair"] for b in blocks})
    ]
    return {
        "p99_off": off,
        "p99_on": on,
        "p99_off_median": statistics.median(off),
        "p99_on_median": statistics.median(on),
        "ratio_of_medians": statistics.median(on) / statistics.median(off),
        "pair_ratios": pair_ratios,
        "pair_ratio_geometric_mean": statistics.geometric_mean(pair_ratios),
        "pooled_off": pooled_off,
        "pooled_on": pooled_on,
        "pooled_p99_ratio": pooled_on["p99"] / pooled_off["p99"] if pooled_off and pooled_on else None,
        "pooled_p99_ratio_interval": pooled_ratio_interval(pairs),
    }


def pooled_ratio_interval(
    pairs: list[tuple[list[float], list[float]]], q: float = 99.0, rounds: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """A 95% interval of the pooled p99 ratio (on / off), by the bootstrap over pairs: the
    pairs are the independent units (the machine drifts between them, not within one), so
    each round draws as many pairs as there are, with replacement, and pools their requests.
    Few pairs give a wide interval, which is the honest answer."""
    usable = [(np.asarray(off), np.asarray(on)) for off, on in pairs if off and on]
    if len(usable) < 2:
        return None
    rng = np.random.default_rng(seed)
    ratios = []
    for _ in range(rounds):
        drawn = rng.integers(0, len(usable), len(usable))
        off = np.concatenate([usable[i][0] for i in drawn])
        on = np.concatenate([usable[i][1] for i in drawn])
        ratios.append(np.percentile(on, q) / np.percentile(off, q))
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)
