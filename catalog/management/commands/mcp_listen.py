"""`manage.py mcp_listen [NAME ...]`: stay connected to the MCP servers marked
stay_connected and re-sync each within seconds of notifications/tools/list_changed. Run one
(a systemd unit or a container beside the Celery worker); servers added later need a restart."""

from __future__ import annotations

from typing import Any

import anyio
from django.core.management.base import BaseCommand, CommandError, CommandParser

from catalog.mcp_listener import listen_all, listened_connections


class Command(BaseCommand):
    help = "Stay connected to the MCP servers marked stay_connected; re-sync on tools/list_changed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("names", nargs="*", help="McpServer names (default: every stay_connected server).")

    def handle(self, *args: Any, **options: Any) -> None:
        connections = listened_connections(options["names"] or None)
        if not connections:
            raise CommandError("No enabled MCP server is marked stay_connected.")
        self.stdout.write(f"Listening to {', '.join(c.name for c in connections)}.")
        anyio.run(listen_all, connections)
