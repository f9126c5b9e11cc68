"""Reading API keys on the request path: by the hash of the raw key, through a short-lived
per-process cache.

Why a cache of about a second and no invalidation message: a revoked key (or an edited
policy or scope) must be refused on every process within 1-2 s (issue 11). A cache version
in Redis would cost a Redis round trip per request anyway and would fail open or closed
when Redis is down; a one-second lifetime costs one indexed query per key, process and
second, works the same with no Redis at all, and bounds staleness by construction.
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings

from access.models import ApiKey, Tenant

KEY_PREFIX = "trk_"
DEFAULT_TENANT = "default"

# key hash -> (key, when it was read)
_keys: dict[str, tuple[ApiKey, float]] = {}


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_active(key_hash: str) -> ApiKey | None:
    cached = _keys.get(key_hash)
    if cached is not None and time.monotonic() - cached[1] < settings.API_KEY_CACHE_SECONDS:
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


def tenant_default() -> Tenant:
    """The tenant that keys made without naming one join (the embedded, one-project setup)."""
    tenant, _ = Tenant.objects.get_or_create(name=DEFAULT_TENANT)
    return tenant
