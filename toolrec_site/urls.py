from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from catalog.api import ToolDetailApi, ToolListCreateApi
from feedback.api import FeedbackCreateApi
from recommender.serving.api import RecommendationCreateApi
from toolrec_site.health import healthz

api_v1 = [
    path("recommendations", RecommendationCreateApi.as_view(), name="recommendation-create"),
    path("feedback", FeedbackCreateApi.as_view(), name="feedback-create"),
    path("tools", ToolListCreateApi.as_view(), name="tool-list"),
    path("tools/<int:tool_id>", ToolDetailApi.as_view(), name="tool-detail"),
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
    path("", include("django_prometheus.urls")),
]
