"""schemathesis with all checks against a live toolrec, 5,000+ generated cases.

Usage:

    .venv/bin/python bench/schema_fuzz.py [--cases-per-operation 250] [--port 8121] [--workers 2]
    make fuzz

It makes a scratch service of its own (a temporary var dir: its SQLite database, snapshot
and local Qdrant; the configured DATABASE_URL, Redis and broker are left out of its
environment), so the fuzzer's creates, edits and disables touch nothing else. `demo_setup`
imports the example catalog, builds the index and makes the API key the fuzzer holds;
gunicorn serves it; `st run` runs every phase (examples, coverage, fuzzing, stateful) with
every check but use_after_free (schemathesis.toml says why). Prints a table and writes
bench/results/schema_fuzz.json with the machine, the commit and the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results" / "schema_fuzz.json"


def _environment(var_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}}
    env |= {"TOOLREC_VAR_DIR": str(var_dir), "DEBUG": "true", "HF_HUB_OFFLINE": "1", "REBUILD_DEBOUNCE_SECONDS": "1"}
    env |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    return env


def _setup(env: dict[str, str], port: int) -> str:
    out = subprocess.run(
        [sys.executable, "manage.py", "demo_setup"],
        cwd=ROOT,
        env=env | {"PORT": str(port)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"API key:\s+(\S+)", out)
    if not match:
        raise SystemExit(f"demo_setup printed no API key:\n{out}")
    return match.group(1)


def _wait_for(url: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"{url} did not answer within {seconds}s")


def _counts(stdout: str) -> dict[str, int]:
    generated = re.search(r"(\d+) generated", stdout)
    failures = re.search(r"found (\d+) unique failures?", stdout)
    server_errors = re.search(r"ST101 Server error: (\d+)", stdout)
    schema = re.search(r"Response violates schema: (\d+)", stdout)
    return {
        "cases": int(generated.group(1)) if generated else 0,
        "unique_failures": int(failures.group(1)) if failures else 0,
        "server_errors": int(server_errors.group(1)) if server_errors else 0,
        "schema_violations": int(schema.group(1)) if schema else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases-per-operation", type=int, default=250)
    parser.add_argument("--port", type=int, default=8121)
    parser.add_argument("--workers", type=int, default=2, help="schemathesis workers")
    parser.add_argument("--seed", type=int, default=20261206)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="toolrec-fuzz-") as tmp:
        env = _environment(Path(tmp))
        key = _setup(env, args.port)
        server = subprocess.Popen(
            [
                *(str(VENV_BIN / "gunicorn"), "toolrec_site.wsgi", "--bind", f"127.0.0.1:{args.port}"),
                *("--workers", "2", "--threads", "4", "--log-level", "warning"),
            ],
            cwd=ROOT,
            env=env,
        )
        try:
            base = f"http://127.0.0.1:{args.port}"
            _wait_for(f"{base}/healthz")
            started = time.perf_counter()
            run = subprocess.run(
                [
                    *(str(VENV_BIN / "st"), "--config-file", str(ROOT / "schemathesis.toml"), "run"),
                    *(f"{base}/api/v1/schema", "--checks", "all", "--exclude-checks", "use_after_free"),
                    *("--max-examples", str(args.cases_per_operation), "--seed", str(args.seed)),
                    *("--workers", str(args.workers), "--no-color", "--header", f"Authorization: Bearer {key}"),
                ],
                cwd=tmp,
                capture_output=True,
                text=True,
            )
            seconds = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(run.stdout[-8000:])
    counts = _counts(run.stdout)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    result = {
        "benchmark": "schema_fuzz",
        "commit": commit.strip(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "config": {
            "cases_per_operation": args.cases_per_operation,
            "seed": args.seed,
            "st_workers": args.workers,
            "server": "gunicorn 2x4, SQLite, example catalog",
        },
        "exit_code": run.returncode,
        "seconds": round(seconds, 1),
        **counts,
    }
    print(f"\n{'cases':>8} {'failures':>9} {'server errors':>14} {'schema violations':>18} {'seconds':>8} {'exit':>5}")
    print(
        f"{counts['cases']:>8} {counts['unique_failures']:>9} {counts['server_errors']:>14} "
        f"{counts['schema_violations']:>18} {seconds:>8.0f} {run.returncode:>5}"
    )
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    sys.exit(run.returncode)


if __name__ == "__main__":
    main()
