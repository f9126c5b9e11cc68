"""CPU used during a phase, from /proc: by the server's processes, the Celery worker's, this
client's, and by everything else on the machine (noise that explains a slow run)."""

from __future__ import annotations

import os
import pathlib
import time


def _proc_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds the processes used so far; one that has exited counts nothing."""
    ticks = 0
    for pid in pids:
        try:
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def _with_descendants(pid: int) -> list[int]:
    """The process and all its descendants (gunicorn workers; a Celery worker's pool and beat)."""
    children: dict[int, list[int]] = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def _machine_busy_seconds() -> float:
    fields = [int(v) for v in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def _named_cpu_seconds(command: str) -> dict[int, float]:
    """CPU seconds so far of every process whose command name is `command` ("postgres": the
    server and its backends, which come and go as connections reach their maximum age)."""
    found = {}
    for comm in pathlib.Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == command:
                found[int(comm.parent.name)] = _proc_cpu_seconds([int(comm.parent.name)])
        except (OSError, ValueError):
            continue
    return found


def _named_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two looks: a process started between them counts whole; one that
    exited between them counts nothing (its last moments are lost, an undercount)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


class CpuMeter:
    """CPU used during a phase by the server (and the Celery worker, if any), by this client
    and by everything else (noise). `extra` names more process trees to count apart (the
    shadow worker); `postgres=True` counts the local PostgreSQL's processes apart too (a
    backend that connects during the phase is not counted)."""

    def __init__(
        self,
        server_pid: int,
        worker_pid: int | None = None,
        extra: dict[str, int] | None = None,
        postgres: bool = False,
    ) -> None:
        self.groups = {"server": _with_descendants(server_pid)}
        if worker_pid is not None:
            self.groups["celery_worker"] = _with_descendants(worker_pid)
        for name, pid in (extra or {}).items():
            self.groups[name] = _with_descendants(pid)
        self.postgres = postgres
        self.cores: dict[str, float] = {}  # cores busy on average over the phase, set on exit
        self.seconds: dict[str, float] = {}  # CPU seconds over the phase, set on exit

    def __enter__(self) -> CpuMeter:
        self.t0, self.busy0 = time.monotonic(), _machine_busy_seconds()
        self.used0 = {name: _proc_cpu_seconds(pids) for name, pids in self.groups.items()}
        self.postgres0 = _named_cpu_seconds("postgres") if self.postgres else {}
        self.client0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self.t0
        busy = _machine_busy_seconds() - self.busy0
        used = {name: _proc_cpu_seconds(pids) - self.used0[name] for name, pids in self.groups.items()}
        if self.postgres:
            used["postgres"] = _named_delta(self.postgres0, _named_cpu_seconds("postgres"))
        client = time.process_time() - self.client0
        self.seconds = {**used, "bench_client": client, "machine_busy": busy}
        self.cores = {
            "machine_busy": busy / wall,
            **{name: seconds / wall for name, seconds in used.items()},
            "bench_client": client / wall,
            "others": max(0.0, busy - sum(used.values()) - client) / wall,
        }
