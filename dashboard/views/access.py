"""Who may see the dashboard: staff, signed in through the admin's login."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse

View = Callable[..., HttpResponse]


def staff_page(view: View) -> View:
    """A dashboard view: anonymous users go to the admin's login, signed-in users who are
    not staff get the same login page (Django's staff_member_required)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return view(request, *args, **kwargs)

    return staff_member_required(wrapped, login_url="admin:login")
