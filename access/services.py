from __future__ import annotations

import secrets
from collections.abc import Iterable

from access.models import ApiKey, Scope, Tenant, default_scopes
from access.selectors import KEY_PREFIX, forget_cached_keys, hash_key, tenant_default
from toolrec_site.errors import ToolrecError


def scopes_clean(scopes: Iterable[str]) -> list[str]:
    known = set(Scope.values)
    scopes = list(dict.fromkeys(scopes))
    unknown = [s for s in scopes if s not in known]
    if unknown:
        raise ToolrecError(f"Unknown scope {unknown[0]!r}; scopes are {', '.join(Scope.values)}.")
    return scopes


def api_key_create(
    *, name: str, tenant: Tenant | None = None, scopes: Iterable[str] | None = None
) -> tuple[ApiKey, str]:
    """Create a key and return it with the raw secret, which is shown once and never stored.

    No tenant: the default one. No scopes: recommend and feedback (catalog writes are granted
    on purpose)."""
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey.objects.create(
        tenant=tenant or tenant_default(),
        name=name,
        prefix=raw_key[:10],
        key_hash=hash_key(raw_key),
        scopes=scopes_clean(scopes) if scopes is not None else default_scopes(),
    )
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey) -> None:
    """Revoke a key; every process refuses it once its key cache entry expires (about 1 s)."""
    ApiKey.objects.filter(pk=api_key.pk).update(is_active=False)
    forget_cached_keys()


def tenant_create(*, name: str) -> Tenant:
    return Tenant.objects.create(name=name)
