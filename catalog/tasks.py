from __future__ import annotations

from celery import shared_task

from catalog.mcp_sync import mcp_servers_sync
from toolrec_site.scheduling import SYNC_MCP_SERVERS


# No retry: a server that is down is recorded on its row and the next run tries again.
@shared_task(name=SYNC_MCP_SERVERS, soft_time_limit=600, time_limit=660)
def sync_mcp_servers(names: list[str] | None = None) -> list[dict[str, object]]:
    reports = mcp_servers_sync(names=names, scheduled=names is None)
    return [{"server": r.server, "ok": r.ok, "error": r.error, **r.as_dict()} for r in reports]
