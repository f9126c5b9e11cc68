from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, register_converter
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from catalog.api import ToolDetailApi, ToolListCreateApi
from experiments.api import (
    DefaultPolicyApi,
    DefaultPolicyRollbackApi,
    ExperimentDetailApi,
    ExperimentListCreateApi,
    ExperimentPromoteApi,
    ExperimentResultsApi,
    ExperimentStartApi,
    ExperimentStopApi,
)
from feedback.api import FeedbackCreateApi
from recommender.serving.api import RecommendationCreateApi
from toolrec_site.health import healthz
from toolrec_site.metrics_access import metrics


class IdConverter:
    """A positive id that fits PostgreSQL's bigint: a longer one is a 404, not a DataError."""

    regex = "[1-9][0-9]{0,17}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")

api_v1 = [
    path("recommendations", RecommendationCreateApi.as_view(), name="recommendation-create"),
    path("feedback", FeedbackCreateApi.as_view(), name="feedback-create"),
    path("tools", ToolListCreateApi.as_view(), name="tool-list"),
    path("tools/<id:tool_id>", ToolDetailApi.as_view(), name="tool-detail"),
    path("experiments", ExperimentListCreateApi.as_view(), name="experiment-list"),
    # before the experiments' keys: "default-policy" is a reserved key (experiments.services)
    path("experiments/default-policy", DefaultPolicyApi.as_view(), name="default-policy"),
    path("experiments/default-policy/rollback", DefaultPolicyRollbackApi.as_view(), name="default-policy-rollback"),
    path("experiments/<slug:key>", ExperimentDetailApi.as_view(), name="experiment-detail"),
    path("experiments/<slug:key>/start", ExperimentStartApi.as_view(), name="experiment-start"),
    path("experiments/<slug:key>/stop", ExperimentStopApi.as_view(), name="experiment-stop"),
    path("experiments/<slug:key>/promote", ExperimentPromoteApi.as_view(), name="experiment-promote"),
    path("experiments/<slug:key>/results", ExperimentResultsApi.as_view(), name="experiment-results"),
    path("schema", SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]), name="schema"),
    path(
        "docs",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[], authentication_classes=[]),
        name="docs",
    ),
    path(
        "redoc",
        SpectacularRedocView.as_view(url_name="schema", permission_classes=[], authentication_classes=[]),
        name="redoc",
    ),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    path("healthz", healthz, name="healthz"),
    # A new user's first page: what the API does, callable from the browser with a key.
    path("", RedirectView.as_view(pattern_name="docs", permanent=False), name="home"),
    path("admin/", admin.site.urls),
    path("dashboard/", include("dashboard.urls")),
    # Browsers ask for it on every page (the admin's too); a 404 there is a console error.
    path("favicon.ico", RedirectView.as_view(url=static("dashboard/favicon.svg"), permanent=True)),
    path("metrics", metrics, name="metrics"),
]
