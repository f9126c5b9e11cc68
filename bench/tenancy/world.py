"""Two tenants over one catalog and one index, built through the real services.

Shared: the example catalog (namespace "default") and a copy of part of it in "mirror".
Tenant B ("globex"): tools written to be the best answer to everything tenant A asks (the
example catalog's own descriptions, with a marker word), in "default" and "globex".
Tenant A ("acme"): a few tools of its own in "acme". A's keys: one with every scope, one
limited by its tool policy to the namespace "mirror".
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from rest_framework.test import APIClient

from access.models import ApiKey, Tenant
from access.services import api_key_create, tenant_create
from catalog.importers import parse_tools
from catalog.models import Tool
from catalog.services import tool_import

EXAMPLE_CATALOG = Path(settings.BASE_DIR) / "catalog" / "data" / "example_tools.jsonl"
# Appears in every tenant-B description and nowhere else: any A answer holding it leaked.
B_MARKER = "globexinternalonly"
WRITE_SCOPES = ["recommend", "feedback", "catalog:write"]


@dataclass
class World:
    a: Tenant
    b: Tenant
    key_a: ApiKey
    key_ns: ApiKey  # tenant A, limited to namespace "mirror"
    client_a: APIClient
    client_ns: APIClient
    client_b: APIClient
    queries: list[str]

    def b_tool_ids(self) -> set[int]:
        return set(Tool.objects.filter(tenant=self.b).values_list("pk", flat=True))

    def mirror_tool_ids(self) -> set[int]:
        return set(Tool.objects.filter(tenant__isnull=True, namespace="mirror").values_list("pk", flat=True))


def _client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def _jsonl(rows: Sequence[Mapping[str, object]]) -> str:
    return "\n".join(json.dumps(r) for r in rows)


def world_build(*, shared_tools: int = 1000, b_tools: int = 60, mirror_tools: int = 80) -> World:
    """Tools and keys of both tenants; the caller builds the snapshot. The queries are the
    first sentences of the shared tools' descriptions."""
    rows = [json.loads(line) for line in EXAMPLE_CATALOG.read_text().splitlines() if line.strip()][:shared_tools]
    tool_import(records=parse_tools(_jsonl(rows), "jsonl"), schedule_rebuild=False)
    tool_import(records=parse_tools(_jsonl(rows[:mirror_tools]), "jsonl"), namespace="mirror", schedule_rebuild=False)
    a, b = tenant_create(name="acme"), tenant_create(name="globex")
    stuffed = [
        {**r, "id": f"g_{r['name']}", "name": f"g_{r['name']}", "description": f"{r['description']} {B_MARKER}"}
        for r in rows[: b_tools // 2]
    ]
    # same names as shared tools, in B's own namespace
    same_names = [{**r, "description": f"{r['description']} {B_MARKER}"} for r in rows[: b_tools - len(stuffed)]]
    tool_import(
        records=parse_tools(_jsonl(stuffed), "jsonl"), namespace="default", tenant_id=b.pk, schedule_rebuild=False
    )
    tool_import(
        records=parse_tools(_jsonl(same_names), "jsonl"), namespace="globex", tenant_id=b.pk, schedule_rebuild=False
    )
    own = [
        {"name": "crm_find_customer", "description": "Find a customer account in the CRM by name or email."},
        {"name": "crm_log_call", "description": "Log a phone call with a customer in the CRM."},
    ]
    tool_import(records=parse_tools(_jsonl(own), "jsonl"), namespace="acme", tenant_id=a.pk, schedule_rebuild=False)
    key_a, raw_a = api_key_create(name="acme agent", tenant=a, scopes=WRITE_SCOPES)
    key_ns, raw_ns = api_key_create(name="acme mirror agent", tenant=a, scopes=["recommend", "feedback"])
    key_ns.allowed_namespaces = ["mirror"]
    key_ns.save(update_fields=["allowed_namespaces", "updated_at"])
    _, raw_b = api_key_create(name="globex agent", tenant=b, scopes=WRITE_SCOPES)
    queries = [str(r["description"]).split(".")[0] for r in rows]
    return World(a, b, key_a, key_ns, _client(raw_a), _client(raw_ns), _client(raw_b), queries)
