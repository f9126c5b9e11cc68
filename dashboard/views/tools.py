from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from dashboard.views.access import staff_page
from dashboard.views.placeholder import placeholder


@staff_page
def tools_page(request: HttpRequest) -> HttpResponse:
    return placeholder(request, title="Tools", nav="tools")


@staff_page
def tool_page(request: HttpRequest, tool_id: int) -> HttpResponse:
    return placeholder(request, title="Tool", nav="tools")
