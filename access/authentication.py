from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from access.models import ApiKey
from access.selectors import api_key_active, hash_key


class ApiKeyPrincipal:
    """The authenticated caller of the agent API: behaves enough like a user for DRF."""

    is_authenticated = True
    is_staff = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key

    def __str__(self) -> str:
        return str(self.api_key)


def api_key_of(request: Request) -> ApiKey:
    """The API key that authenticated the request; a signed-in admin user has none, and the
    agent API needs one (everything it logs belongs to a key)."""
    if not isinstance(request.auth, ApiKey):
        raise exceptions.NotAuthenticated("This endpoint needs an API key (Authorization: Bearer <key>).")
    return request.auth


def raw_key_from_headers(headers: Mapping[str, str]) -> str:
    """The key a request carries: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``
    (REST and the MCP server's HTTP transport read the same headers); "" when none."""
    lowered = {name.lower(): value for name, value in headers.items()}
    raw = lowered.get("x-api-key", "")
    auth = lowered.get("authorization", "")
    if not raw and auth.lower().startswith("bearer "):
        raw = auth[7:].strip()
    return raw


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        raw = raw_key_from_headers(request.headers)
        if not raw:
            return None
        api_key = api_key_active(hash_key(raw))
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="toolrec"'
