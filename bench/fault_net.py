"""Where bench/faults.py's services reach PostgreSQL, and how each database fault is made.

* `LocalPath`: a switchable proxy on 127.0.0.1 (bench/fault_proxy.py) in the bench's process.
  Refusing and blackholing work; dropping packets does not: this machine's kernel has no
  netem or iptables, and on loopback it acknowledges what the client sends.
* `NetnsPath` (root, iproute2): the services reach the database at 10.77.0.2, the far end of
  a veth pair in a network namespace of the run's own, where the switchable proxy runs as a
  process (switched by signals). It relays to 10.77.0.1 (this side of the veth), where a
  plain relay passes to PostgreSQL. Dropping packets is real there: a blackhole route inside
  the namespace for 10.77.0.1 discards every packet the far end sends, acknowledgements
  included, so the services' kernels retransmit into silence until their own TCP timeouts
  (tcp_user_timeout, keepalives) or the request deadline end the wait, as on a network
  that lost the database host.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal, Protocol

from bench.fault_proxy import FaultProxy

Fault = Literal["pass", "refuse", "blackhole", "drop"]
NS, HOST_IF, NS_IF = "toolrec-faults", "tf-host", "tf-ns"
HOST_IP, NS_IP = "10.77.0.1", "10.77.0.2"


class DatabasePath(Protocol):
    host: str
    port: int
    faults: tuple[Fault, ...]

    def start(self) -> None: ...
    def set(self, fault: Fault) -> None: ...
    def stop(self) -> None: ...


class LocalPath:
    faults: tuple[Fault, ...] = ("refuse", "blackhole")

    def __init__(self, port: int) -> None:
        self.host, self.port = "127.0.0.1", port
        self.proxy = FaultProxy(port, "127.0.0.1", 5432)

    def start(self) -> None:
        self.proxy.start()

    def set(self, fault: Fault) -> None:
        assert fault != "drop", "dropping packets needs NetnsPath"
        self.proxy.set_mode(fault)

    def stop(self) -> None:
        self.proxy.stop()


def _ip(*args: str, netns: bool = False) -> None:
    command = ["ip", "netns", "exec", NS, "ip", *args] if netns else ["ip", *args]
    subprocess.run(command, check=True, capture_output=True)


class NetnsPath:
    faults: tuple[Fault, ...] = ("refuse", "blackhole", "drop")

    def __init__(self, port: int, python: str) -> None:
        self.host, self.port, self.python = NS_IP, port, python
        self.relay = FaultProxy(port + 1, "127.0.0.1", 5432, listen_host=HOST_IP)
        self.proxy: subprocess.Popen[str] | None = None

    @staticmethod
    def available() -> bool:
        try:
            subprocess.run(["ip", "netns", "list"], check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError):
            return False
        return True

    def start(self) -> None:
        self._teardown_network()  # what a killed earlier run left
        _ip("netns", "add", NS)
        _ip("link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF)
        _ip("link", "set", NS_IF, "netns", NS)
        _ip("addr", "add", f"{HOST_IP}/30", "dev", HOST_IF)
        _ip("link", "set", HOST_IF, "up")
        _ip("addr", "add", f"{NS_IP}/30", "dev", NS_IF, netns=True)
        _ip("link", "set", NS_IF, "up", netns=True)
        _ip("link", "set", "lo", "up", netns=True)
        self.relay.start()
        script = str(Path(__file__).resolve().parent / "fault_proxy.py")
        self.proxy = subprocess.Popen(
            ["ip", "netns", "exec", NS, self.python, script, "--listen", f"{NS_IP}:{self.port}",
             "--target", f"{HOST_IP}:{self.port + 1}"],
            stdout=subprocess.PIPE, text=True, cwd=str(Path(script).parent.parent),
        )  # fmt: skip
        assert self.proxy.stdout is not None
        if self.proxy.stdout.readline().strip() != "ready":
            raise SystemExit("the proxy in the network namespace did not start")

    def set(self, fault: Fault) -> None:
        assert self.proxy is not None
        if fault == "drop":
            _ip("route", "add", "blackhole", f"{HOST_IP}/32", netns=True)
            return
        subprocess.run(["ip", "netns", "exec", NS, "ip", "route", "del", "blackhole", f"{HOST_IP}/32"],
                       capture_output=True)  # fmt: skip
        number = {"refuse": signal.SIGUSR1, "blackhole": signal.SIGUSR2, "pass": signal.SIGHUP}[fault]
        self.proxy.send_signal(number)
        time.sleep(0.2)  # the switch happens on the proxy's loop, within milliseconds

    def stop(self) -> None:
        if self.proxy is not None and self.proxy.poll() is None:
            self.proxy.terminate()
            self.proxy.wait(timeout=10)
        self.relay.stop()
        self._teardown_network()

    @staticmethod
    def _teardown_network() -> None:
        subprocess.run(["ip", "link", "del", HOST_IF], capture_output=True)
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


def database_path(port: int, *, netns: bool) -> DatabasePath:
    if netns and NetnsPath.available():
        return NetnsPath(port, sys.executable)
    return LocalPath(port)
