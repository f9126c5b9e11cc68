"""One error shape for the whole API: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

DATABASE_RETRY_AFTER_SECONDS = 5


class ToolrecError(Exception):
    """Base of the domain errors that services raise; the API maps each to a status."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(ToolrecError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


class Conflict(ToolrecError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class Unavailable(ToolrecError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "unavailable"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def error_response(status_code: int, code: str, message: str, details: Any = None) -> Response:
    return Response(error_body(code, message, details), status=status_code)


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for field, value in detail.items():
            return f"{field}: {_first_message(value)}" if field != "non_field_errors" else _first_message(value)
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ToolrecError):
        return error_response(exc.status_code, exc.code, exc.message, exc.details)
    if isinstance(exc, RequestDataTooBig):
        return error_response(413, "payload_too_large", "The request body is larger than the limit.")
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database refused, dropped or timed out (connect, statement or TCP timeouts in
        # the settings): the client may retry shortly; nothing it sent was wrong.
        unavailable = error_response(503, "database_unavailable", "The database is unavailable; retry shortly.")
        unavailable["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return unavailable
    if isinstance(exc, Http404):
        return error_response(404, "not_found", "Not found.")
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        return error_response(response.status_code, "invalid", _first_message(exc.detail), exc.detail)
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "error"
        shaped = error_response(response.status_code, code, _first_message(exc.detail))
        for header in ("Retry-After", "WWW-Authenticate"):  # DRF's handler set them: keep them
            if header in response:
                shaped[header] = response[header]
        return shaped
    return response
