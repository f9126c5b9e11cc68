"""Two tenants over one index: shared tools (the small catalog), and tools of each tenant's
own that are built to be the best answer to the other's questions."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from access.models import ApiKey, Tenant
from access.services import api_key_create, tenant_create
from catalog.importers import parse_tools
from catalog.services import tool_import

# Tenant B's tools are stuffed with the words of the questions tenant A asks: if B's tools
# leaked into A's retrieval they would be A's top answers.
B_TOOLS = [
    {
        "name": "weather_storm_alerts",
        "category": "weather",
        "description": "Weather forecast tomorrow Paris weather rain wind temperature weather today forecast.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    {
        "name": "mail_send_secure",
        "category": "mail",
        "description": "Send an email message to a recipient, send email, mail, inbox, subject and body.",
        "parameters": {"type": "object", "properties": {"to": {"type": "string"}}},
    },
    {
        "name": "stock_quote",  # the name of a shared tool, in B's own namespace
        "category": "finance",
        "description": "Stock price quote ticker market shares Apple stock price today.",
        "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}}},
    },
]
A_TOOLS = [
    {
        "name": "crm_lookup",
        "category": "crm",
        "description": "Look up a customer account in the CRM by name or email.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
]


@dataclass
class TwoTenants:
    a: Tenant
    b: Tenant
    key_a: ApiKey
    key_b: ApiKey
    client_a: APIClient
    client_b: APIClient
    b_tool_ids: set[int]
    a_tool_ids: set[int]


def client_for(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def _import(tools: list[dict[str, Any]], namespace: str, tenant: Tenant) -> None:
    text = "\n".join(json.dumps(t) for t in tools)
    tool_import(records=parse_tools(text, "jsonl"), namespace=namespace, tenant_id=tenant.pk, schedule_rebuild=False)


@pytest.fixture
def two_tenants(catalog: Callable[..., None]) -> TwoTenants:
    from catalog.models import Tool
    from recommender.indexing.snapshots import snapshot_build
    from recommender.learning.learner import learning_publish_stats

    catalog()  # shared
    a, b = tenant_create(name="acme"), tenant_create(name="globex")
    _import(A_TOOLS, "acme", a)
    _import(B_TOOLS, "globex", b)
    _import(B_TOOLS[:1], "default", b)  # "default/weather_storm_alerts" too: a namespace A uses
    snapshot_build()
    learning_publish_stats()
    scopes = ["recommend", "feedback", "catalog:write"]
    key_a, raw_a = api_key_create(name="agent a", tenant=a, scopes=scopes)
    key_b, raw_b = api_key_create(name="agent b", tenant=b, scopes=scopes)
    return TwoTenants(
        a,
        b,
        key_a,
        key_b,
        client_for(raw_a),
        client_for(raw_b),
        set(Tool.objects.filter(tenant=b).values_list("pk", flat=True)),
        set(Tool.objects.filter(tenant=a).values_list("pk", flat=True)),
    )
