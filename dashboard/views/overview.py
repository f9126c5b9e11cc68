from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from dashboard.views.access import staff_page
from dashboard.views.placeholder import placeholder


@staff_page
def overview_page(request: HttpRequest) -> HttpResponse:
    return placeholder(request, title="Overview", nav="overview")
