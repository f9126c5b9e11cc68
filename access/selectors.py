"""Reading API keys on the request path: by the hash of the raw key, through a small
per-process cache that saves a query per request."""

from __future__ import annotations

import hashlib
import time

from access.models import ApiKey

KEY_PREFIX = "trk_"

# key hash -> (key, when it was read). A revoked key stops working within
# KEY_CACHE_SECONDS in every process (revoking clears the revoking process's cache at once).
KEY_CACHE_SECONDS = 30.0
_keys: dict[str, tuple[ApiKey, float]] = {}


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_active(key_hash: str) -> ApiKey | None:
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
