"""Staying connected to MCP servers (`manage.py mcp_listen`): re-sync within seconds of
notifications/tools/list_changed.

One task per server marked stay_connected (the list is read again every
MCP_LISTEN_RELOAD_SECONDS, so no restart is needed after an admin change): connect, sync, then wait for a list_changed
notification (or a ping interval: a ping that fails means the server went away), and sync
again on the same connection. A lost connection is recorded on the server's row like a
failed sync, and retried with backoff (1 s doubling to a minute); the tools stay served.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import anyio
from django.conf import settings
from mcp import MCPDeprecationWarning, types

from catalog.mcp_sync import (
    McpConnection,
    connection_of,
    mcp_client,
    mcp_sync_failed,
    mcp_tools_apply,
    tools_list_all,
)
from catalog.models import McpServer
from catalog.sealed import SecretUnreadable
from toolrec_site.async_orm import orm_in_thread

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 60.0


async def _serve_connection(conn: McpConnection) -> None:
    """One connection's life: sync, then re-sync on each list_changed, until it breaks."""
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        nonlocal changed
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with mcp_client(conn, message_handler=on_message) as client:
        while True:
            changed = anyio.Event()  # before listing: a change during the listing wakes the next round
            tools = await tools_list_all(client)
            report = await orm_in_thread(mcp_tools_apply, server_id=conn.server_id, tools=tools)
            log.info("MCP %s synced: %s", conn.name, report.as_dict())
            while not changed.is_set():
                with anyio.move_on_after(settings.MCP_LISTEN_PING_SECONDS):
                    await changed.wait()
                if not changed.is_set():
                    with warnings.catch_warnings():  # deprecated from 2026-07-28; this is a legacy-mode client
                        warnings.simplefilter("ignore", MCPDeprecationWarning)
                        await client.send_ping()  # raises once the server is gone


async def listen_to(conn: McpConnection) -> None:
    """Keep one server in sync for as long as the task runs."""
    backoff = 1.0
    while True:
        try:
            await _serve_connection(conn)
        except Exception as exc:  # the server went away: record it, keep its tools, retry
            await orm_in_thread(mcp_sync_failed, server_id=conn.server_id, error=exc)
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        else:
            backoff = 1.0


def listened_connections(names: list[str] | None = None) -> list[McpConnection]:
    """The servers to stay connected to, as they are configured now. One whose secrets
    cannot be decrypted is left out, its error recorded."""
    servers = McpServer.objects.filter(enabled=True, stay_connected=True).order_by("name")
    if names:
        servers = servers.filter(name__in=names)
    connections = []
    for server in servers:
        try:
            connections.append(connection_of(server))
        except SecretUnreadable as exc:
            mcp_sync_failed(server_id=server.pk, error=exc)
    return connections


async def _listen_in(scope: anyio.CancelScope, conn: McpConnection) -> None:
    with scope:
        await listen_to(conn)


async def listen_all(*, names: list[str] | None = None, stop: anyio.Event | None = None) -> None:
    """Listen to every stay_connected server until `stop` is set (for ever without one).

    The server list is read again every MCP_LISTEN_RELOAD_SECONDS: a server added, changed
    (URL, command, secrets) or switched off in the admin is picked up without a restart."""
    running: dict[int, tuple[McpConnection, anyio.CancelScope]] = {}
    async with anyio.create_task_group() as group:
        while stop is None or not stop.is_set():
            wanted = {conn.server_id: conn for conn in await orm_in_thread(listened_connections, names)}
            for server_id, (conn, scope) in list(running.items()):
                if wanted.get(server_id) != conn:
                    scope.cancel()
                    del running[server_id]
            for server_id, conn in wanted.items():
                if server_id not in running:
                    running[server_id] = (conn, anyio.CancelScope())
                    group.start_soon(_listen_in, running[server_id][1], conn)
            with anyio.move_on_after(settings.MCP_LISTEN_RELOAD_SECONDS):
                await (stop.wait() if stop is not None else anyio.sleep_forever())
        group.cancel_scope.cancel()
