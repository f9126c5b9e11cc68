"""ORM work from async code (the MCP server face, the MCP listener): Django refuses the ORM
in an event loop's thread, so it runs in a worker thread, with the connection housekeeping a
WSGI request would get from its request_started/finished signals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from django.db import close_old_connections

T = TypeVar("T")


async def orm_in_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    def call() -> T:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return await anyio.to_thread.run_sync(call)
