"""toolrec as an MCP server: `find_tools` and `report_tool_use`, over stdio or streamable HTTP.

Both tools hand their arguments, as a REST body, to the same entry points as the REST API
(`recommendation_answer`, `feedback_answer`): one request path, one validation, one log.

Where the key comes from: over stdio, the process serves one agent, whose key is read once
from `TOOLREC_API_KEY` at start; over HTTP, every request carries it in the same header as
REST (`Authorization: Bearer <key>` or `X-API-Key`) and `ApiKeyRequired` answers 401
before the MCP layer sees a request without a valid one.

The HTTP transport runs in its own process (`manage.py mcp_server --http`), routed at `/mcp`
by the proxy in front of the web app, rather than mounted into it: the web app is WSGI under
gunicorn (threads, no event loop), and serving it through ASGI would move every REST view
onto asgiref's single thread for sync code. The MCP process is stateless (no session kept
between requests), so any number of them can sit behind the same address.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.conf import settings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from rest_framework import exceptions as drf_exceptions
from starlette.types import ASGIApp, Receive, Scope, Send

from access.authentication import raw_key_from_headers
from access.models import ApiKey
from access.selectors import api_key_active, hash_key
from feedback.answers import feedback_answer
from recommender.serving.answers import recommendation_answer
from toolrec_site.async_orm import orm_in_thread
from toolrec_site.errors import ToolrecError

T = TypeVar("T")
API_KEY_ENV = "TOOLREC_API_KEY"

INSTRUCTIONS = (
    "toolrec finds the tools to load for this conversation out of a large catalog. Call find_tools "
    "with the user's request (or the chat messages) before choosing tools; hand the returned "
    "definitions to the model; then call report_tool_use with the recommendation_id for each tool "
    "the model called, so the ranking learns."
)


def _key_from_headers(headers: Mapping[str, str]) -> ApiKey | None:
    raw = raw_key_from_headers(headers)
    return api_key_active(hash_key(raw)) if raw else None


def _error_message(exc: Exception) -> str:
    if isinstance(exc, ToolrecError):
        return exc.message
    assert isinstance(exc, drf_exceptions.ValidationError)
    return f"invalid arguments: {json.dumps(exc.detail, default=str)}"


def build_server(*, stdio_key: ApiKey | None = None) -> MCPServer:
    """The MCP server; `stdio_key` is the one key of a stdio process (None over HTTP)."""
    server = MCPServer("toolrec", instructions=INSTRUCTIONS, version="1")

    async def caller(ctx: Context) -> ApiKey:
        if stdio_key is not None:
            return stdio_key
        api_key = await orm_in_thread(_key_from_headers, ctx.headers or {})
        if api_key is None:  # ApiKeyRequired let it through, then it was revoked: refuse all the same
            raise ToolError("This server needs an API key (Authorization: Bearer <key>).")
        return api_key

    async def answer(fn: Callable[..., T], **kwargs: Any) -> T:
        try:
            return await orm_in_thread(fn, **kwargs)
        except (ToolrecError, drf_exceptions.ValidationError) as exc:
            raise ToolError(_error_message(exc)) from exc

    @server.tool(
        description=(
            "Find the tools that fit the conversation. Give `query` (the user's request) or `messages` "
            "(OpenAI-style chat messages, tool calls included); optional k, filters (namespaces, "
            "categories, tags, include, exclude), max_tool_tokens (a budget for the definitions' tokens), "
            "format (the shape of the definitions, as in the REST API), "
            "user_id and conversation_id. Returns the tool definitions and a recommendation_id."
        )
    )
    async def find_tools(
        ctx: Context,
        query: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        k: int | None = None,
        filters: dict[str, list[str]] | None = None,
        max_tool_tokens: int | None = None,
        format: str | None = None,
        user_id: str = "",
        conversation_id: str = "",
        explain: bool = False,
    ) -> dict[str, Any]:
        if messages is None and not (query or "").strip():
            raise ToolError("Give a query or messages.")
        payload: dict[str, Any] = {
            "messages": messages if messages is not None else [{"role": "user", "content": query}],
            "user_id": user_id,
            "conversation_id": conversation_id,
            "explain": explain,
        }
        optional = {"k": k, "filters": filters, "max_tool_tokens": max_tool_tokens, "format": format}
        payload |= {name: value for name, value in optional.items() if value is not None}
        body, _ = await answer(recommendation_answer, api_key=await caller(ctx), payload=payload)
        return body

    @server.tool(
        description=(
            "Report whether the model called a tool that find_tools recommended: the recommendation_id, "
            "the tool's name as recommended, and used (true when it was called). A retry counts once."
        )
    )
    async def report_tool_use(
        ctx: Context,
        recommendation_id: str,
        tool: str,
        used: bool = True,
        reward: float | None = None,
        event_id: str | None = None,
    ) -> dict[str, int]:
        payload: dict[str, Any] = {"recommendation_id": recommendation_id, "tool": tool, "used": used}
        payload |= {
            name: value for name, value in {"reward": reward, "event_id": event_id}.items() if value is not None
        }
        return await answer(feedback_answer, api_key=await caller(ctx), payload=payload)

    return server


class ApiKeyRequired:
    """Answer 401, in the REST error shape, to an HTTP request without a valid API key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            if await orm_in_thread(_key_from_headers, headers) is None:
                message = "This server needs a valid API key (Authorization: Bearer <key> or X-API-Key)."
                body = json.dumps({"error": {"code": "not_authenticated", "message": message}}).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b'Bearer realm="toolrec"'),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app() -> ASGIApp:
    """The streamable HTTP app, at `/mcp`, behind the API-key check.

    Stateless JSON answers: neither tool needs a session, so no process has to remember one
    and a load balancer may send each request anywhere. Host checking (DNS rebinding) follows
    the web app's ALLOWED_HOSTS."""
    hosts = [h for host in settings.ALLOWED_HOSTS for h in (host, f"{host}:*")]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection="*" not in settings.ALLOWED_HOSTS, allowed_hosts=hosts
    )
    app = build_server().streamable_http_app(
        streamable_http_path="/mcp", stateless_http=True, json_response=True, transport_security=security
    )
    return ApiKeyRequired(app)


def stdio_key_from_env(environ: Mapping[str, str]) -> ApiKey:
    """The stdio process's key, from TOOLREC_API_KEY; a missing or invalid key stops the start."""
    raw = environ.get(API_KEY_ENV, "").strip()
    if not raw:
        raise ToolrecError(f"Set {API_KEY_ENV} to an API key (manage.py create_api_key makes one).")
    api_key = api_key_active(hash_key(raw))
    if api_key is None:
        raise ToolrecError(f"The key in {API_KEY_ENV} is invalid or revoked.")
    return api_key
