"""`manage.py mcp_server`: toolrec's MCP server, over stdio (default) or streamable HTTP."""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.mcp_server import API_KEY_ENV, build_server, http_app, stdio_key_from_env
from toolrec_site.errors import ToolrecError


class Command(BaseCommand):
    help = (
        f"Serve find_tools and report_tool_use over MCP: stdio with the key in {API_KEY_ENV}, "
        "or --http (streamable HTTP at /mcp, keys in the same header as REST)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--http", action="store_true", help="Serve streamable HTTP instead of stdio.")
        parser.add_argument("--bind", default="127.0.0.1:8001", help="host:port for --http (default 127.0.0.1:8001).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["http"]:
            import uvicorn

            host, _, port = options["bind"].rpartition(":")
            if not host or not port.isdigit():
                raise CommandError("--bind must be host:port")
            uvicorn.run(http_app(), host=host, port=int(port), log_level="warning")
            return
        try:
            api_key = stdio_key_from_env(os.environ)
        except ToolrecError as exc:
            raise CommandError(exc.message) from exc
        # stdout is the protocol channel from here on: nothing else may print to it.
        build_server(stdio_key=api_key).run("stdio")
