from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The pages for operators and curators under /dashboard/ (staff only)."""

    name = "dashboard"
