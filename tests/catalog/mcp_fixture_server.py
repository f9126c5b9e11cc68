"""An MCP server for the sync tests, written with the official SDK: N generated tools,
listed in pages (cursor = offset), over streamable HTTP or stdio.

Over HTTP it requires the header X-Fixture-Token (the secret the test stores), answers
`POST /control` ({"change": {"name", "description"}, "remove": [names]}) by changing its
tools and sending notifications/tools/list_changed to every connected client, and
`GET /stats` with the cursors of the tools/list calls it served.

    python tests/catalog/mcp_fixture_server.py --port 8172 --tools 1200 --page-size 400
    python tests/catalog/mcp_fixture_server.py --stdio --tools 30 --page-size 12
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import anyio
import uvicorn
from mcp import types
from mcp.server import Server, ServerRequestContext
from mcp.server.session import ServerSession
from mcp.server.stdio import stdio_server
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

TOPICS = ["invoice", "shipment", "playlist", "recipe", "ticket", "sensor", "payroll", "satellite", "garden", "chess"]
TOKEN = "fixture-s3cret-token"


def make_tools(count: int) -> dict[str, types.Tool]:
    tools = {}
    for i in range(count):
        topic = TOPICS[i % len(TOPICS)]
        name = f"fx_{topic}_{i:04d}"
        tools[name] = types.Tool(
            name=name,
            description=f"Manage the {topic} records of account {i}: list, read and update one {topic}.",
            # draft-04 as real servers publish it: a boolean exclusiveMinimum
            input_schema={
                "$schema": "http://json-schema.org/draft-04/schema#",
                "type": "object",
                "properties": {"id": {"type": "integer", "minimum": 0, "exclusiveMinimum": True}},
            },
        )
    return tools


def build(count: int, page_size: int) -> tuple[Server[Any], dict[str, Any]]:
    state: dict[str, Any] = {"tools": make_tools(count), "sessions": set(), "cursors": []}

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        state["sessions"].add(ctx.session)
        cursor = params.cursor if params else None
        state["cursors"].append(cursor)
        start = int(cursor or 0)
        names = sorted(state["tools"])
        end = start + page_size
        return types.ListToolsResult(
            tools=[state["tools"][n] for n in names[start:end]], next_cursor=str(end) if end < len(names) else None
        )

    return Server("toolrec-fixture", on_list_tools=list_tools), state


async def notify(state: dict[str, Any]) -> int:
    sent = 0
    for session in list(state["sessions"]):
        assert isinstance(session, ServerSession)
        try:
            await session.send_tool_list_changed()
            sent += 1
        except Exception:  # a client that went away
            state["sessions"].discard(session)
    return sent


def http_app(server: Server[Any], state: dict[str, Any]) -> ASGIApp:
    async def control(request: Request) -> Response:
        body = json.loads(await request.body())
        if change := body.get("change"):
            tool = state["tools"][change["name"]]
            state["tools"][change["name"]] = tool.model_copy(update={"description": change["description"]})
        for name in body.get("remove", []):
            state["tools"].pop(name, None)
        return JSONResponse({"notified": await notify(state)})

    async def stats(request: Request) -> Response:
        return JSONResponse({"cursors": state["cursors"], "tools": len(state["tools"])})

    app = server.streamable_http_app(custom_starlette_routes=[Route("/control", control, methods=["POST"])])
    app.router.routes.append(Route("/stats", stats))

    async def with_token(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/mcp":
            headers = dict(scope["headers"])
            if headers.get(b"x-fixture-token") != TOKEN.encode():
                await JSONResponse({"error": "missing X-Fixture-Token"}, status_code=401)(scope, receive, send)
                return
        await app(scope, receive, send)

    return with_token


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8172)
    parser.add_argument("--tools", type=int, default=1200)
    parser.add_argument("--page-size", type=int, default=400)
    parser.add_argument("--stdio", action="store_true")
    args = parser.parse_args()
    server, state = build(args.tools, args.page_size)
    if args.stdio:

        async def run_stdio() -> None:
            async with stdio_server() as (read, write):
                await server.run(read, write, server.create_initialization_options())

        anyio.run(run_stdio)
    else:
        uvicorn.run(http_app(server, state), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
