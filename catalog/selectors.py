from __future__ import annotations

from django.db.models import QuerySet

from catalog.models import Tool


def tool_list(
    *,
    namespace: str | None = None,
    category: str | None = None,
    enabled: bool | None = None,
    search: str | None = None,
) -> QuerySet[Tool]:
    tools = Tool.objects.all()
    if namespace:
        tools = tools.filter(namespace=namespace)
    if category:
        tools = tools.filter(category=category)
    if enabled is not None:
        tools = tools.filter(enabled=enabled)
    if search:
        tools = tools.filter(name__icontains=search) | tools.filter(description__icontains=search)
    return tools.order_by("namespace", "name")
