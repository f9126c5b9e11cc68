"""The numbers and the text: percentiles of each phase's rows, the tables printed per phase,
the feedback line, the machine's description and the problems the server logs got."""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import platform
import re
import subprocess
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from . import ROOT

PARTS = ("prepare", "embed", "engine", "store")  # the Server-Timing parts; they sum to the server's time
# The parts of "engine": candidate retrieval, learning signals read (database / memory),
# features and policy; "compute" = retrieve + rank, the engine's own time.
ENGINE_DETAIL = ("retrieve", "signals", "rank", "compute")


def pcts(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(arr.max()),
        "mean": float(arr.mean()),
        "n": len(values),
    }


def summarise(rows: list[dict[str, Any]], wall: float, cpu: dict[str, float]) -> dict[str, Any]:
    """A phase's rows -> percentiles of every timed part, errors, throughput and CPU."""
    ok = [r for r in rows if r["status"] == 200]
    for r in ok:
        _add_derived_parts(r)
    names = ("e2e", *PARTS, *ENGINE_DETAIL, "server", "overhead")
    return {
        "requests": len(rows),
        "ok": len(ok),
        "errors": len(rows) - len(ok),
        "error_kinds": dict(Counter(r["error"].split(":")[0] for r in rows if "error" in r)),
        "error_examples": list(dict.fromkeys(r["error"] for r in rows if "error" in r))[:5],
        "wall_seconds": wall,
        "throughput_rps": len(ok) / wall if wall else 0.0,
        "ms": {name: pcts([r[name] for r in ok if name in r]) for name in names},
        "by_embedded_texts": _by_embedded_texts(ok),
        "p50_ms_by_request_shape": _by_request_shape(ok),
        "texts_per_request": float(np.mean([r["texts"] for r in rows])) if rows else 0.0,
        "repeated_texts": sum(r["repeated_texts"] for r in rows),
        "cpu_cores_used": cpu,
    }


def parts_pcts(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The p50 and p99 of each Server-Timing part (and the remainder) over the successful rows."""
    ok = [r for r in rows if r["status"] == 200]
    for r in ok:
        _add_derived_parts(r)
    out = {}
    for name in (*PARTS, *ENGINE_DETAIL, "server", "overhead"):
        stats = pcts([r[name] for r in ok if name in r])
        if stats:
            out[name] = {"p50": stats["p50"], "p99": stats["p99"]}
    return out


def _add_derived_parts(row: dict[str, Any]) -> None:
    if all(p in row for p in PARTS):  # no Server-Timing header: no split, only end-to-end
        row["server"] = sum(row[p] for p in PARTS)
        row["overhead"] = row["e2e"] - row["server"]
    if "retrieve" in row and "rank" in row:
        row["compute"] = row["retrieve"] + row["rank"]


def _p50(values: list[float]) -> float | None:
    stats = pcts(values)
    return stats["p50"] if stats else None


def _by_embedded_texts(ok: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Embedding is the largest part and grows with the texts a request embeds (1 to 3)."""
    groups = {n: [r for r in ok if r["texts"] == n] for n in sorted({r["texts"] for r in ok})}
    return {
        str(n): {
            "count": len(g),
            "embed_p50": _p50([r.get("embed", 0.0) for r in g]),
            "e2e_p50": _p50([r["e2e"] for r in g]),
        }
        for n, g in groups.items()
    }


def _by_request_shape(ok: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Request shapes that take a different path: implicit feedback (a tool call in a named
    conversation) in prepare, per-user signals and a category filter in the engine."""
    shapes: list[tuple[str, str, Callable[[dict[str, Any]], bool]]] = [
        ("prepare", "with implicit feedback", lambda r: r["tool_call"] and r["conversation"]),
        ("engine", "with user_id", lambda r: r["user"]),
        ("engine", "with category filter", lambda r: r["filtered"]),
    ]
    return {
        f"{part} {label}": {
            flag: _p50([r[part] for r in ok if part in r and bool(test(r)) == (flag == "yes")])
            for flag in ("yes", "no")
        }
        for part, label, test in shapes
    }


def print_phase(title: str, s: dict[str, Any]) -> None:
    print(
        f"\n== {title}: {s['requests']} requests in {s['wall_seconds']:.1f} s, "
        f"{s['throughput_rps']:.1f} req/s, {s['errors']} errors {s['error_kinds'] or ''}"
    )
    _print_table(s["ms"])
    _print_shares(s["ms"])
    shapes = ", ".join(
        f"{n} text(s): n={g['count']} embed p50 {g['embed_p50']:.1f} e2e p50 {g['e2e_p50']:.1f}"
        for n, g in s["by_embedded_texts"].items()
    )
    print(f"by texts embedded: {shapes}")
    slices = "; ".join(
        f"{name} {v['yes']:.1f} vs {v['no']:.1f}"
        for name, v in s["p50_ms_by_request_shape"].items()
        if v["yes"] is not None and v["no"] is not None
    )
    print(f"p50 by request shape (yes vs no): {slices}")
    print(_cpu_line(s["cpu_cores_used"]))
    for example in s["error_examples"]:
        print(f"  error: {example}")


def _print_table(ms: dict[str, dict[str, float] | None]) -> None:
    print(f"{'ms':<26}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}{'mean':>8}")
    labels = {"e2e": "end-to-end (client)", "server": "server (sum of parts)", "overhead": "HTTP/DRF/auth remainder"}
    labels |= {n: f"    {n}" for n in ENGINE_DETAIL} | {"compute": "    compute (retrieve+rank)"}
    for name in ["e2e", "server", "prepare", "embed", "engine", *ENGINE_DETAIL, "store", "overhead"]:
        stats = ms.get(name)
        if stats:
            label = labels.get(name, f"  {name}")
            print(f"{label:<26}" + "".join(f"{stats[c]:>8.1f}" for c in ("p50", "p95", "p99", "max", "mean")))


def _print_shares(ms: dict[str, dict[str, float] | None]) -> None:
    e2e = ms["e2e"]
    mean = e2e["mean"] if e2e else 0.0
    if mean:
        shares = ", ".join(
            f"{n} {stats['mean']:.1f} ({100 * stats['mean'] / mean:.0f}%)"
            for n in (*PARTS, "overhead")
            if (stats := ms[n])
        )
        print(f"where the time goes (mean ms of {mean:.1f}): {shares}")


def _cpu_line(cpu: dict[str, float]) -> str:
    worker = f" + celery worker {cpu['celery_worker']:.2f}" if "celery_worker" in cpu else ""
    return (
        f"CPU cores busy: machine {cpu['machine_busy']:.2f} = server {cpu['server']:.2f}{worker} + bench client "
        f"{cpu['bench_client']:.2f} + others {cpu['others']:.2f} (of {os.cpu_count()})"
    )


def feedback_line(f: dict[str, Any]) -> str:
    ms = f["ms"]
    timing = f"POST /feedback p50 {ms['p50']:.1f} p99 {ms['p99']:.1f} max {ms['max']:.1f} ms" if ms else "no timings"
    share = f"{100 * f['relevant_shown_share']:.0f}%" if f["relevant_shown_share"] is not None else "-"
    errors = f", {f['errors']} errors {f['error_examples']}" if f["errors"] else ""
    return (
        f"feedback: {f['posts']} posts, {f['events_sent']} uses sent, {f['recorded']} recorded, "
        f"{f['duplicates']} duplicates{errors}; {timing}; a relevant tool shown in {share} of recommendations"
    )


def machine_info() -> dict[str, Any]:
    cpuinfo = pathlib.Path("/proc/cpuinfo").read_text()
    meminfo = pathlib.Path("/proc/meminfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    mem = re.search(r"MemTotal:\s*(\d+)", meminfo)
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model.group(1).strip() if model else "unknown",
        "ram_gb": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
        "load_average_at_start": os.getloadavg(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def log_problems(path: pathlib.Path, offset: int) -> dict[str, Any]:
    """Tracebacks and ERROR lines a log got since `offset` (background failures show only there)."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return {"tracebacks": 0, "error_lines": []}
    errors = [line for line in lines if "ERROR" in line or "Error:" in line or "Exception:" in line]
    return {"tracebacks": sum("Traceback" in line for line in lines), "error_lines": list(dict.fromkeys(errors))[:5]}
