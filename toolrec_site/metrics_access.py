"""/metrics for Prometheus only: the scraper sends `Authorization: Bearer <METRICS_TOKEN>` or
scrapes from an address in METRICS_ALLOWED_NETWORKS. Anyone else gets a 404, as if there were
no such page (the metrics name tools, variants and error counts)."""

from __future__ import annotations

import hmac
import ipaddress
from functools import cache

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse

from toolrec_site.scrape import metrics_view


@cache
def _networks(spec: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in spec)


def metrics_allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    auth = request.headers.get("Authorization", "")
    if token and auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip(), token):
        return True
    try:
        client = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(client in network for network in _networks(tuple(settings.METRICS_ALLOWED_NETWORKS)))


def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        raise Http404("Not found.")
    response: HttpResponse = metrics_view(request)
    return response
