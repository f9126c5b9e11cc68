"""DRF's throttling hook over `access.limits`: a view names its action in `throttle_scope`."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from access.limits import rate_limit_wait
from access.models import ApiKey


class ApiKeyRateThrottle(BaseThrottle):
    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        action = getattr(view, "throttle_scope", None)
        if action is None or not isinstance(request.auth, ApiKey):
            return True  # staff in the browser are not rate limited
        if action == "catalog_write" and request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        self._wait = rate_limit_wait(request.auth, action)
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait
