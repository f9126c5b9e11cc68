"""`manage.py sync_mcp [NAME ...]`: list the MCP servers' tools now and apply them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.mcp_sync import mcp_servers_sync
from catalog.models import McpServer


class Command(BaseCommand):
    help = "Sync tools from MCP servers (all enabled ones, or those named): tools/list, every page."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", help="McpServer names (default: every enabled server).")

    def handle(self, *args: Any, **options: Any) -> None:
        names: list[str] = options["names"]
        unknown = sorted(set(names) - set(McpServer.objects.filter(name__in=names).values_list("name", flat=True)))
        if unknown:
            raise CommandError(f"Unknown MCP server(s): {', '.join(unknown)} (add them in the admin).")
        reports = mcp_servers_sync(names=names or None)
        if not reports:
            self.stdout.write("No enabled MCP server to sync (add one in the admin).")
        for r in reports:
            if r.ok:
                self.stdout.write(
                    f"{r.server}: {r.listed} listed, {r.created} new, {r.updated} changed, {r.disabled} disabled, "
                    f"{r.enabled} enabled again, {r.rejected} rejected"
                )
            else:
                self.stderr.write(f"{r.server}: failed, tools kept as they were: {r.error}")
        if any(not r.ok for r in reports):
            raise CommandError("Some servers could not be synced (see above; the error is also in the admin).")
