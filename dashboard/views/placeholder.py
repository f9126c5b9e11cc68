"""Pages that are not built yet answer with the shared layout and say so."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def placeholder(request: HttpRequest, *, title: str, nav: str) -> HttpResponse:
    return render(request, "dashboard/placeholder.html", {"title": title, "nav": nav})
