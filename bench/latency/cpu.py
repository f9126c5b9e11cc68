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


def _machine_seconds() -> dict[str, float]:
    """The machine's CPU time so far, busy and its kernel parts (/proc/stat's first line):
    `steal` is time the hypervisor gave another guest (a noisy neighbour, not our work),
    `irq` interrupts and softirqs (network and disk), which no process is charged with."""
    fields = [int(v) for v in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice; guest time is in user too
    busy = sum(fields[:8]) - fields[3] - fields[4]
    irq, steal = fields[5] + fields[6], fields[7]
    return {"machine_busy": busy / tick, "machine_irq": irq / tick, "machine_steal": steal / tick}


def _all_cpu_seconds() -> dict[int, tuple[str, float]]:
    """Every process's command name and CPU seconds so far, kernel threads included."""
    found = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            head, tail = stat.read_text().rsplit(")", 1)
            fields = tail.split()
            found[int(stat.parent.name)] = (head.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / tick)
        except (OSError, IndexError, ValueError):
            continue
    return found


def _deltas(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[int, tuple[str, float]]:
    """CPU used between two looks, per process: a process started between them counts whole;
    one that exited between them counts nothing (its last moments are lost, an undercount)."""
    return {pid: (name, sec - before.get(pid, (name, 0.0))[1]) for pid, (name, sec) in after.items()}


NAMED = ("postgres", "redis-server")  # counted by command name: backends come and go with their connections


class CpuMeter:
    """CPU used during a phase by the server (and the Celery worker, if any), by this client
    and by everything else (noise). `extra` names more process trees to count apart (the
    shadow worker); `postgres=True` counts the local PostgreSQL's and Redis's processes apart
    too, and names the busiest of the rest (`others_top`), so that CPU the services do not
    account for can be traced."""

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
        self.t0, self.machine0 = time.monotonic(), _machine_seconds()
        self.used0 = {name: _proc_cpu_seconds(pids) for name, pids in self.groups.items()}
        self.all0 = _all_cpu_seconds() if self.postgres else {}
        self.client0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self.t0
        machine = {k: v - self.machine0[k] for k, v in _machine_seconds().items()}
        busy = machine["machine_busy"]
        used = {name: _proc_cpu_seconds(pids) - self.used0[name] for name, pids in self.groups.items()}
        client = time.process_time() - self.client0
        self.others_top: dict[str, float] = {}
        if self.postgres:
            deltas = _deltas(self.all0, _all_cpu_seconds())
            for name in NAMED:
                used[name] = sum(sec for comm, sec in deltas.values() if comm == name)
            grouped = {pid for pids in self.groups.values() for pid in pids} | {os.getpid()}
            rest: dict[str, float] = {}
            for pid, (comm, sec) in deltas.items():
                if pid not in grouped and comm not in NAMED and sec > 0:
                    rest[comm] = rest.get(comm, 0.0) + sec
            self.others_top = dict(sorted(rest.items(), key=lambda kv: -kv[1])[:6])
        self.seconds = {**used, "bench_client": client, **machine}
        self.cores = {
            "machine_busy": busy / wall,
            **{name: seconds / wall for name, seconds in used.items()},
            "bench_client": client / wall,
            "others": max(0.0, busy - sum(used.values()) - client) / wall,
        }
