"""`manage.py mcp_listen [NAME ...]`: stay connected to the MCP servers marked
stay_connected and re-sync each within seconds of notifications/tools/list_changed. Run one
(a systemd unit or a container beside the Celery worker); it follows admin changes itself."""

from __future__ import annotations

from typing import Any

import anyio
from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.mcp_listener import listen_all, listened_connections
from catalog.models import McpServer


class Command(BaseCommand):
    help = "Stay connected to the MCP servers marked stay_connected; re-sync on tools/list_changed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", help="McpServer names (default: every stay_connected server).")

    def handle(self, *args: Any, **options: Any) -> None:
        names: list[str] = options["names"]
        unknown = sorted(set(names) - set(McpServer.objects.filter(name__in=names).values_list("name", flat=True)))
        if unknown:
            raise CommandError(f"Unknown MCP server(s): {', '.join(unknown)}.")
        connections = listened_connections(names or None)
        listening = ", ".join(c.name for c in connections) or "no server yet (mark one stay_connected)"
        self.stdout.write(f"Listening to {listening}; the list is read again every few seconds.")
        anyio.run(lambda: listen_all(names=names or None))
