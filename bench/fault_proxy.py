"""A TCP proxy in front of PostgreSQL that the fault benchmark switches between passing,
refusing and blackholing, so the shared PostgreSQL itself is never stopped.

* pass: relays both ways.
* refuse: closes every relayed connection and stops listening (connection refused), as a
  stopped server does.
* blackhole: keeps listening and accepts, but relays nothing, in either direction, on new or
  existing connections (an unreachable server). One difference from packets really dropped:
  this machine's kernel still acknowledges what the client sends, so the client's TCP
  timeouts (tcp_user_timeout, keepalives) cannot fire on connections that were open before;
  only timeouts counted by the client itself (connect_timeout) do.

Written here (asyncio, ~100 lines) because no maintained library offers a switchable
blackhole; toxiproxy needs its own server binary.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Literal

Mode = Literal["pass", "refuse", "blackhole"]


class FaultProxy:
    def __init__(self, listen_port: int, target_host: str, target_port: int, listen_host: str = "127.0.0.1") -> None:
        self.listen_host, self.listen_port, self.target = listen_host, listen_port, (target_host, target_port)
        self.mode: Mode = "pass"
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._call(self._open())
        self._call(self._set_flowing(True))

    def set_mode(self, mode: Mode) -> None:
        self._call(self._switch(mode))

    def stop(self) -> None:
        self._call(self._switch("refuse"))
        self._loop.call_soon_threadsafe(self._loop.stop)

    def _call(self, coroutine: object) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)  # type: ignore[arg-type]

    async def _set_flowing(self, flowing: bool) -> None:
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.listen_port, reuse_address=True)

    async def _switch(self, mode: Mode) -> None:
        self.mode = mode
        if mode == "refuse":
            if self._server is not None:
                self._server.close()
                self._server = None
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()
        elif self._server is None:
            await self._open()
        await self._set_flowing(mode == "pass")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._flowing.wait()  # a connection made during a blackhole waits, unanswered
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Closed on any end (a reset too): a client killed -9 must end its server session, as
        # without the proxy, or its open transaction would hold its locks for ever.
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                await self._flowing.wait()  # held, not passed on, while blackholed
                writer.write(data)
                await writer.drain()
        finally:
            writer.transport.abort()


SIGNALLED_MODES: dict[int, Mode] = {}  # filled below: the signal that switches a proxy run as a command


def main() -> None:
    """Run as a process of its own (bench/fault_net.py starts one inside a network namespace):
    SIGUSR1 refuses, SIGUSR2 blackholes, SIGHUP passes again; SIGTERM ends it."""
    import argparse
    import signal

    SIGNALLED_MODES.update({signal.SIGUSR1: "refuse", signal.SIGUSR2: "blackhole", signal.SIGHUP: "pass"})
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--target", required=True, help="HOST:PORT")
    args = parser.parse_args()
    (listen_host, listen_port), (target_host, target_port) = (
        (hp.rsplit(":", 1)[0], int(hp.rsplit(":", 1)[1])) for hp in (args.listen, args.target)
    )
    proxy = FaultProxy(listen_port, target_host, target_port, listen_host=listen_host)
    proxy.start()

    def switch(number: int, _frame: object) -> None:
        proxy.set_mode(SIGNALLED_MODES[number])

    for number in SIGNALLED_MODES:
        signal.signal(number, switch)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda _n, _f: stopped.set())
    print("ready", flush=True)
    while not stopped.wait(0.5):
        pass
    proxy.stop()


if __name__ == "__main__":
    main()
