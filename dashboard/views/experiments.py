from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from dashboard.views.access import staff_page
from dashboard.views.placeholder import placeholder


@staff_page
def experiments_page(request: HttpRequest) -> HttpResponse:
    return placeholder(request, title="Experiments", nav="experiments")


@staff_page
def experiment_page(request: HttpRequest, key: str) -> HttpResponse:
    return placeholder(request, title="Experiment", nav="experiments")
