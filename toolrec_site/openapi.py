"""What the OpenAPI schema says beyond what drf-spectacular reads from the views.

The API-key scheme (so the interactive docs can call the endpoints) and the error answers
every operation can give, in the one shape of toolrec_site/errors.py. Imports no app: the
authenticator is named by its dotted path.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable: invalid, not_found, conflict, ..."},
                "message": {"type": "string", "description": "What was wrong, for a person."},
                "details": {"description": "Field errors, or the request id of a server error."},
            },
        }
    },
}

_WHY = {
    "400": "The request is invalid: the message says why (field, JSON nesting, NUL, surrogates, bounds).",
    "401": "No API key, or an invalid or revoked one.",
    "403": "The key may not do this.",
    "404": "No such resource (or not this key's).",
    "405": "The method is not allowed on this path.",
    "406": "The client does not accept JSON.",
    "409": "It already exists.",
    "413": "The body is larger than MAX_REQUEST_BYTES.",
    "414": "The request line (path and query) is longer than the HTTP server reads (gunicorn: 4,094 bytes); "
    "answered by that server before the API, so not in the error shape.",
    "415": "The body is not JSON.",
    "429": "Too many requests: wait for Retry-After seconds.",
    "500": "A server error; details.request_id names it in the server's log.",
    "503": "The service cannot answer now (no index yet, or a store is down); retry later.",
}


_SERVER_PAGE = {"text/html": {"schema": {"type": "string"}}}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "access.authentication.ApiKeyAuthentication"
    name = ["bearerAuth", "apiKeyAuth"]
    priority = 1

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, Any]]:
        return [
            {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <API key>"},
            {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "The API key, as a header."},
        ]


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[str]:
    statuses = ["401", "405", "406", "429", "500", "503"] if operation.get("security") else ["500"]
    if operation.get("parameters") or "requestBody" in operation:
        statuses.append("400")
    if operation.get("parameters"):
        statuses.append("414")
    if "{" in path or method in {"post"}:
        statuses.append("404")
    if "requestBody" in operation:
        statuses += ["413", "415"]
    if operation.get("security") and method in {"post", "patch", "put", "delete"}:
        statuses.append("403")
    return statuses


def _either_key(security: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """drf-spectacular lists an authenticator's schemes as one requirement (both at once);
    the key goes in either header, so each scheme is an alternative of its own."""
    if not security:
        return security
    split: list[dict[str, Any]] = []
    for requirement in security:
        split += [{name: scopes} for name, scopes in requirement.items()] or [requirement]
    return split


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS entry: every operation under /api/ documents its error answers."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            operation["security"] = _either_key(operation.get("security"))
            for status in _statuses(path, method, operation):
                content = _SERVER_PAGE if status == "414" else error
                operation["responses"].setdefault(status, {"description": _WHY[status], "content": content})
    return result
