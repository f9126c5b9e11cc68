from __future__ import annotations

import time
from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from access.models import ApiKey
from access.services import hash_key


class ApiKeyPrincipal:
    """The authenticated caller of the agent API: behaves enough like a user for DRF."""

    is_authenticated = True
    is_staff = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key

    def __str__(self) -> str:
        return str(self.api_key)


# key hash -> (key, when it was read). Saves a query per request; a revoked key stops
# working within KEY_CACHE_SECONDS in every process.
KEY_CACHE_SECONDS = 30.0
_keys: dict[str, tuple[ApiKey, float]] = {}


def _active_key(key_hash: str) -> ApiKey | None:
    cached = _keys.get(key_hash)
    if cached is not None and time.monotonic() - cached[1] < KEY_CACHE_SECONDS:
        return cached[0]
    api_key = ApiKey.objects.filter(key_hash=key_hash, is_active=True).first()
    if api_key is None:
        _keys.pop(key_hash, None)
        return None
    if len(_keys) > 10_000:  # bounded: a flood of distinct keys cannot grow it forever
        _keys.clear()
    _keys[key_hash] = (api_key, time.monotonic())
    return api_key


def forget_cached_keys() -> None:
    _keys.clear()


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        raw = request.headers.get("X-API-Key", "")
        auth = request.headers.get("Authorization", "")
        if not raw and auth.lower().startswith("bearer "):
            raw = auth[7:].strip()
        if not raw:
            return None
        api_key = _active_key(hash_key(raw))
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiKeyPrincipal(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="toolrec"'
