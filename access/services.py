from __future__ import annotations

import secrets

from access.models import ApiKey
from access.selectors import KEY_PREFIX, forget_cached_keys, hash_key


def api_key_create(*, name: str) -> tuple[ApiKey, str]:
    """Create a key and return it with the raw secret, which is shown once and never stored."""
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(name=name, prefix=raw_key[:10], key_hash=hash_key(raw_key))
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> None:
    """Revoke a key; other processes stop accepting it within their key cache's lifetime."""
    ApiKey.objects.filter(pk=api_key.pk).update(is_active=False)
    forget_cached_keys()
