"""Under /api/, every answer is JSON in the one error shape (toolrec_site/errors.py).

DRF's exception handler shapes the errors of views; this middleware covers what it never
sees: exceptions it does not know (a bug, an unexpected library error), Django's own error
pages (404 for an unknown path, 500 from another middleware) and query strings that
PostgreSQL would refuse. Every response carries ``X-Request-ID``; a 500 names it in its
body and in the log line, so a report can be matched to its traceback.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from toolrec_site.errors import error_body

log = logging.getLogger("toolrec.api")

API_PREFIX = "/api/"
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_CODES = {400: "invalid", 401: "not_authenticated", 403: "permission_denied", 404: "not_found"}
_CODES |= {405: "method_not_allowed", 413: "payload_too_large", 429: "throttled", 500: "server_error"}
_MESSAGES = {404: "No API endpoint at {path}.", 405: "Method {method} is not allowed on {path}."}
_SERVER_ERROR = "Internal server error. Quote the request id when you report it."


def request_id_of(request: HttpRequest) -> str:
    return str(getattr(request, "request_id", "")) or "-"


def _json_error(status: int, code: str, message: str, details: Any = None) -> JsonResponse:
    return JsonResponse(error_body(code, message, details), status=status)


def _query_problem(request: HttpRequest) -> str | None:
    for name, values in request.GET.lists():
        if "\x00" in name or any("\x00" in v for v in values):
            return f"Query parameter {name.replace(chr(0), '')!r} contains a NUL character."
    return None


class ApiErrorMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _CLIENT_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        under_api = request.path.startswith(API_PREFIX)
        # Every page, not only the API: PostgreSQL refuses NUL in a string, so a NUL reaching
        # a filter (the dashboard's, the admin's search) would be a 500.
        problem = _query_problem(request)
        if problem:
            response: HttpResponse = (
                _json_error(400, "invalid", problem) if under_api else HttpResponseBadRequest(problem)
            )
        else:
            response = self.get_response(request)
        if under_api and response.status_code >= 400 and not _is_json(response):
            response = self._as_json(request, response, request_id)
        response["X-Request-ID"] = request_id
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith(API_PREFIX):
            return None  # the admin and the dashboard keep Django's pages
        request_id = request_id_of(request)
        log.error(
            "unhandled %s on %s %s (request id %s)",
            type(exception).__name__,
            request.method,
            request.path,
            request_id,
            exc_info=exception,
        )
        return _json_error(500, "server_error", _SERVER_ERROR, {"request_id": request_id})

    def _as_json(self, request: HttpRequest, response: HttpResponse, request_id: str) -> HttpResponse:
        status = response.status_code
        if status >= 500:
            log.error("%s on %s %s answered as JSON (request id %s)", status, request.method, request.path, request_id)
            code = _CODES.get(status, "server_error")
            rewritten = _json_error(status, code, _SERVER_ERROR, {"request_id": request_id})
        else:
            template = _MESSAGES.get(status, "The request was refused ({status}).")
            message = template.format(path=request.path, method=request.method, status=status)
            rewritten = _json_error(status, _CODES.get(status, "error"), message)
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                rewritten[header] = response[header]
        return rewritten


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip().endswith("json")
