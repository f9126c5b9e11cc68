"""Throttling of the admin's sign-in: failed attempts are counted per client address and per
user name (`access.limits`, in the shared cache); past ADMIN_LOGIN_FAILURES the login answers
429 until the window ends.

Why our own and not django-axes: axes needs the request in every `authenticate()` call (test
clients' and scripts' `login()` break), adds tables and an authentication backend, while all
this needs is the counter the API's rate limits already keep. Counting per user name lets
someone lock an account out for the window; counting per address alone would let a botnet
guess freely. Both are counted, as most login throttles do.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from access.limits import window_clear, window_hit


class AdminLoginThrottleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._login_path: str | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rate = settings.ADMIN_LOGIN_FAILURES
        if rate is None or request.method != "POST":
            return self.get_response(request)
        if self._login_path is None:
            self._login_path = reverse("admin:login")
        if request.path != self._login_path:
            return self.get_response(request)
        username = str(request.POST.get("username", "")).strip().casefold()[:150]
        names = [f"admin-login-ip:{request.META.get('REMOTE_ADDR', '')}", f"admin-login-user:{username}"]
        for name in names:
            wait = window_hit(name, rate, count=False)
            if wait is not None:
                response = HttpResponse(
                    f"Too many failed sign-ins. Try again in {int(wait)} seconds.\n",
                    status=429,
                    content_type="text/plain",
                )
                response["Retry-After"] = str(int(wait))
                return response
        response = self.get_response(request)
        if response.status_code == 200:  # the form again, with its error: the sign-in failed
            for name in names:
                window_hit(name, rate)
        elif response.status_code == 302:
            window_clear(names[1], rate)
        return response
