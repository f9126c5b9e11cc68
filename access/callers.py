"""The caller of a catalog endpoint. Apart from access.authentication, which DRF imports
while its own views module loads (so that module must not import toolrec_site.errors)."""

from __future__ import annotations

from rest_framework.request import Request

from access.models import ApiKey
from access.policy import Caller, Forbidden


def caller_of(request: Request) -> Caller:
    """The key's tenant and policy, or a signed-in staff user (the admin's own browsing)."""
    if isinstance(request.auth, ApiKey):
        return Caller.of_key(request.auth)
    if getattr(request.user, "is_staff", False):
        return Caller(api_key=None, policy=None)
    raise Forbidden("This endpoint needs an API key (Authorization: Bearer <key>).")
