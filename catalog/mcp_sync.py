"""Following MCP servers' tools: tools/list (every page) with the official SDK, applied to
the catalog as an import of the server's namespace.

A sync reads the whole listing before it writes anything: a server that fails halfway (or
is down) changes nothing, keeps its tools served, and leaves its error on the McpServer row
for the admin. Tools the server stopped listing are disabled, never deleted (the feedback
log refers to them); tools it lists again are enabled again.

Two ways in: `mcp_server_sync` (the `sync_mcp` command and the scheduled task) opens a
connection, lists and closes it; `mcp_listen` (catalog.mcp_listener) keeps a connection to
the servers marked stay_connected and re-lists on notifications/tools/list_changed. Both
list through `tools_list_all` and write through `mcp_tools_apply`.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import anyio
import httpx2
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from mcp import Client, StdioServerParameters
from mcp.client.session import MessageHandlerFnT
from mcp.client.streamable_http import streamable_http_client

from catalog.importers import ToolSpec, parse_mcp_result
from catalog.models import McpServer, Tool
from catalog.sealed import unseal
from catalog.services import tool_import
from toolrec_site.scheduling import index_rebuild_schedule

log = logging.getLogger(__name__)


class McpSyncError(Exception):
    """A listing that cannot be trusted whole (too many pages, a repeated cursor)."""


@dataclass(frozen=True)
class McpConnection:
    """What connecting needs, read from the row (secrets in clear) before any network I/O."""

    server_id: int
    name: str
    url: str
    command: str
    headers: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def connection_of(server: McpServer) -> McpConnection:
    secrets = unseal(server.secrets_sealed)
    return McpConnection(
        server_id=server.pk,
        name=server.name,
        url=server.url,
        command=server.command,
        headers={str(k): str(v) for k, v in (secrets.get("headers") or {}).items()},
        env={str(k): str(v) for k, v in (secrets.get("env") or {}).items()},
    )


@asynccontextmanager
async def mcp_client(conn: McpConnection, message_handler: MessageHandlerFnT | None = None) -> AsyncIterator[Client]:
    """A connected SDK client. The handshake-era protocol ("legacy"): it is what servers
    deployed today speak, and where notifications/tools/list_changed arrives as a
    notification on the open connection. No response cache: a sync must see the server."""
    options: dict[str, Any] = {
        "mode": "legacy",
        "cache": None,
        "read_timeout_seconds": settings.MCP_SYNC_TIMEOUT_SECONDS,
        "message_handler": message_handler,
    }
    if conn.url:
        http = httpx2.AsyncClient(headers=conn.headers, timeout=settings.MCP_SYNC_TIMEOUT_SECONDS)
        async with http, Client(streamable_http_client(conn.url, http_client=http), **options) as client:
            yield client
        return
    argv = shlex.split(conn.command)
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=conn.env or None)
    async with Client(params, **options) as client:
        yield client


async def tools_list_all(client: Client) -> list[dict[str, Any]]:
    """Every tool the server lists, following nextCursor to the last page."""
    tools: list[dict[str, Any]] = []
    cursor: str | None = None
    seen: set[str] = set()
    for _ in range(settings.MCP_SYNC_MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools += [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in page.tools]
        cursor = page.next_cursor
        if not cursor:
            return tools
        if cursor in seen:  # a server that pages in a circle would otherwise list forever
            raise McpSyncError(f"the server repeated the cursor {cursor!r}")
        seen.add(cursor)
    raise McpSyncError(f"more than {settings.MCP_SYNC_MAX_PAGES} pages (MCP_SYNC_MAX_PAGES)")


async def fetch_tools(conn: McpConnection) -> list[dict[str, Any]]:
    with anyio.fail_after(settings.MCP_SYNC_TIMEOUT_SECONDS):
        async with mcp_client(conn) as client:
            return await tools_list_all(client)


@dataclass(frozen=True)
class SyncReport:
    server: str
    ok: bool
    listed: int = 0
    created: int = 0
    updated: int = 0
    disabled: int = 0
    enabled: int = 0
    rejected: int = 0
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in {"server", "ok", "error"}}


def mcp_tools_apply(*, server_id: int, tools: list[dict[str, Any]]) -> SyncReport:
    """Make the server's namespace hold exactly the listed tools (enabled), the others of
    the server disabled; one transaction, and an index rebuild at once when anything changed
    (a listing is already a batch: no debounce to wait for)."""
    with transaction.atomic():
        # The row lock serialises two syncs of one server (the schedule and mcp_listen).
        server = McpServer.objects.select_for_update().get(pk=server_id)
        records = list(parse_mcp_result({"tools": tools, "server": server.name}, server.tool_source))
        names = [r.name for r in records if isinstance(r, ToolSpec)]
        imported = tool_import(records=records, namespace=server.namespace, schedule_rebuild=False)
        mine = Tool.objects.filter(namespace=server.namespace, source=server.tool_source)
        enabled = mine.filter(enabled=False, name__in=names).update(enabled=True)
        disabled = mine.filter(enabled=True).exclude(name__in=names).update(enabled=False)
        report = SyncReport(
            server=server.name,
            ok=True,
            listed=len(tools),
            created=imported.created,
            updated=imported.updated,
            disabled=disabled,
            enabled=enabled,
            rejected=len(imported.rejected),
        )
        details = report.as_dict() | {"rejected_reasons": [r.reason for r in imported.rejected[:20]]}
        now = timezone.now()
        McpServer.objects.filter(pk=server_id).update(
            last_attempt_at=now, last_synced_at=now, last_error="", last_report=details, tool_count=len(names)
        )
        if imported.created or imported.updated or enabled or disabled:
            transaction.on_commit(lambda: index_rebuild_schedule(countdown=0))
    return report


def mcp_sync_failed(*, server_id: int, error: BaseException) -> SyncReport:
    """Record why a sync failed; the server's tools stay as they were."""
    message = f"{type(error).__name__}: {error}".strip()[:2000]
    if isinstance(error, BaseExceptionGroup):  # anyio task groups wrap the transport's error
        message = "; ".join(f"{type(e).__name__}: {e}" for e in error.exceptions)[:2000]
    McpServer.objects.filter(pk=server_id).update(last_attempt_at=timezone.now(), last_error=message)
    name = McpServer.objects.filter(pk=server_id).values_list("name", flat=True).first() or str(server_id)
    log.warning("MCP sync of %s failed: %s", name, message)
    return SyncReport(server=name, ok=False, error=message)


def mcp_server_sync(*, server: McpServer) -> SyncReport:
    """Connect, list every page, apply; a failure anywhere is recorded, never raised."""
    try:
        tools = anyio.run(fetch_tools, connection_of(server))
    except Exception as exc:  # a down server (or unreadable secrets) is a state to show, not a crash
        return mcp_sync_failed(server_id=server.pk, error=exc)
    return mcp_tools_apply(server_id=server.pk, tools=tools)


# A server kept connected that has not synced for this long is synced by the schedule too:
# mcp_listen is not running, or cannot reach it.
LISTENED_STALE = timedelta(hours=1)


def mcp_servers_sync(*, names: list[str] | None = None, scheduled: bool = False) -> list[SyncReport]:
    """Sync the named servers (all enabled ones by default). The schedule leaves alone the
    servers mcp_listen keeps fresh (stay_connected, synced within LISTENED_STALE)."""
    servers = McpServer.objects.filter(enabled=True).order_by("name")
    if names:
        servers = McpServer.objects.filter(name__in=names).order_by("name")
    if scheduled:
        stale = timezone.now() - LISTENED_STALE
        servers = servers.filter(Q(stay_connected=False) | Q(last_synced_at__isnull=True) | Q(last_synced_at__lt=stale))
    return [mcp_server_sync(server=server) for server in servers]
