"""The work dir and database the server runs on: the catalog built, migrated, imported,
indexed (vectors in Qdrant local mode under the work dir, so only a first run embeds), and an
API key for the clients."""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import time
import urllib.parse
from typing import Any

from .catalog import build_catalog, catalog_path
from .processes import manage


def prepare(args: argparse.Namespace, env: dict[str, str], db_kind: str, work_dir: pathlib.Path) -> dict[str, Any]:
    """Set up the work dir, or with --skip-setup only migrate: the code under test may have
    moved on since the work dir was made."""
    if args.skip_setup:
        return {"skipped": True, "seconds": {"migrate": manage(env, "migrate", "--noinput")[1]}}
    return setup(args, env, db_kind, work_dir)


def api_key(env: dict[str, str], work_dir: pathlib.Path) -> str:
    """The bench's API key, created once per work dir (and database)."""
    key_file = work_dir / "api_key"
    if not key_file.exists():
        key_file.write_text(manage(env, "create_api_key", "bench")[0].splitlines()[-1].strip())
    return key_file.read_text().strip()


def ensure_postgres_database(url: str) -> None:
    """Create the database named in `url` if it does not exist (through the `postgres` database)."""
    parsed = urllib.parse.urlsplit(url)
    name = parsed.path.lstrip("/")
    maintenance = urllib.parse.urlunsplit(parsed._replace(path="/postgres"))
    found = subprocess.run(
        ["psql", maintenance, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    if found != "1":
        print(f"creating database {name}")
        subprocess.run(["psql", maintenance, "-c", f'CREATE DATABASE "{name}"'], check=True, timeout=60)


def setup(args: argparse.Namespace, env: dict[str, str], db_kind: str, work_dir: pathlib.Path) -> dict[str, Any]:
    """Build the catalog and run each setup command; what each took and printed, for the JSON."""
    if db_kind.startswith("postgres"):
        ensure_postgres_database(env["DATABASE_URL"])
    report: dict[str, Any] = {"seconds": {}, "output": {}}
    path = catalog_path(work_dir, args.tools, args.seed)
    started = time.perf_counter()
    report["catalog"] = build_catalog(args.tools, args.seed, path)
    report["seconds"]["build_catalog"] = time.perf_counter() - started
    steps = [
        ("migrate", ["migrate", "--noinput"]),
        ("import_tools", ["import_tools", str(path), "--format", "jsonl", "--no-rebuild"]),
        ("rebuild_index", ["rebuild_index"]),
        ("create_api_key", ["create_api_key", "bench"]),
    ]
    for name, argv in steps:
        print(f"setup: {name} ...", flush=True)
        output, seconds = manage(env, *argv)
        report["seconds"][name] = seconds
        report["output"][name] = output if name != "create_api_key" else "(key written to the work dir)"
        last_line = output.splitlines()[-1] if output and name != "create_api_key" else ""
        print(f"setup: {name} {seconds:.1f} s {last_line}", flush=True)
        if name == "create_api_key":
            (work_dir / "api_key").write_text(output.splitlines()[-1].strip())
    return report
