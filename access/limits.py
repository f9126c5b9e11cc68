"""Fixed-window counters in the shared cache (Redis in production): per-key rate limits of
the agent API and the admin's login throttling.

Why our own and not DRF's SimpleRateThrottle: it keeps a list of request times per client
and writes it back after a read, so concurrent requests on several processes overwrite each
other's entries and under-count; `cache.incr` is one atomic Redis command. And the MCP face
calls the services, not DRF views, so the check lives here where both can call it. A fixed
window lets a client burst up to twice its rate across a window boundary, an accepted cost.

A cache that cannot be reached fails open (no limit) and is logged: a missing Redis must
degrade the service, not refuse every request.
"""

from __future__ import annotations

import logging
import math
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from access.models import ApiKey
from toolrec_site.env import Rate

log = logging.getLogger(__name__)


def window_hit(name: str, rate: Rate, *, count: bool = True) -> float | None:
    """Count one event under `name`; the seconds until its window ends if it is over the rate,
    else None. `count=False` only checks."""
    now = time.time()
    window = int(now // rate.seconds)
    key = f"limit:{name}:{window}"
    try:
        if count:
            cache.add(key, 0, timeout=rate.seconds + 1)
            seen = cache.incr(key)
        else:
            seen = int(cache.get(key) or 0) + 1
    except (RedisError, OSError, ValueError):
        # ValueError: the key expired between add and incr (a window boundary); let it pass.
        log.warning("rate limit %s not checked: the cache is unavailable", name, exc_info=True)
        return None
    if seen <= rate.count:
        return None
    return max(1.0, math.ceil((window + 1) * rate.seconds - now))


def window_clear(name: str, rate: Rate) -> None:
    try:
        cache.delete(f"limit:{name}:{int(time.time() // rate.seconds)}")
    except (RedisError, OSError):
        log.warning("could not clear limit %s: the cache is unavailable", name, exc_info=True)


def rate_limit_wait(api_key: ApiKey, action: str) -> float | None:
    """Count one `action` ("recommend", "feedback", "catalog_write") of the key; the seconds
    to wait when the key is over its rate (RATE_LIMIT_* settings), else None."""
    rate = settings.RATE_LIMITS.get(action)
    # by the key's hash, not its id: ids can be reused (a test database rolled back), hashes never
    return window_hit(f"{action}:{api_key.key_hash[:24]}", rate) if rate is not None else None
