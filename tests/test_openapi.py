"""The OpenAPI schema says what the server does, and schemathesis checks it against the
live server with all its checks (issue 11, a correct OpenAPI schema)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

SCHEMA = "/api/v1/schema"
FUZZ_CASES_PER_OPERATION = 8  # a bounded run for `make test`; bench/schema_fuzz.py runs 5,000+


def _schema() -> dict[str, Any]:
    response = APIClient().get(SCHEMA, {"format": "json"})
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    return schema


@pytest.mark.django_db
def test_the_schema_registers_the_api_key_and_either_header_works() -> None:
    schema = _schema()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer <API key>",
    }
    assert schemes["apiKeyAuth"]["in"] == "header" and schemes["apiKeyAuth"]["name"] == "X-API-Key"
    security = schema["paths"]["/api/v1/recommendations"]["post"]["security"]
    assert {"bearerAuth": []} in security and {"apiKeyAuth": []} in security  # alternatives, not both


@pytest.mark.django_db
def test_the_schema_documents_the_page_real_statuses_and_errors() -> None:
    paths = _schema()["paths"]
    page = paths["/api/v1/tools"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert page == {"$ref": "#/components/schemas/ToolPage"}
    delete = paths["/api/v1/tools/{tool_id}"]["delete"]["responses"]
    assert "200" in delete and "204" not in delete
    assert {"201", "400", "401", "409", "413", "415", "500"} <= set(paths["/api/v1/tools"]["post"]["responses"])
    for operations in paths.values():
        for operation in operations.values():
            error = operation["responses"]["500"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}
    limit = next(p for p in paths["/api/v1/tools"]["get"]["parameters"] if p["name"] == "limit")
    assert limit["schema"] == {"type": "integer", "maximum": 500, "minimum": 1}


def test_delete_answers_the_documented_200(api: APIClient, db: None) -> None:
    created = api.post("/api/v1/tools", {"name": "mine", "description": "A tool of this tenant."}, format="json")
    response = api.delete(f"/api/v1/tools/{created.json()['id']}")
    assert response.status_code == 200 and response.json()["enabled"] is False


def test_schemathesis_finds_no_failure_with_all_checks(
    live_server: Any, indexed: None, tmp_path: Path, settings: Any
) -> None:
    """On a tenant and key of its own: the fuzzer may create, edit and disable only its
    tenant's tools (the shared catalog answers it 403/404), in this test's database. It may
    also run experiments (an operator's scope), with their rate limit raised so that it
    reaches the endpoints instead of their 429."""
    from access.services import api_key_create, tenant_create
    from toolrec_site.env import Rate

    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "experiments": Rate(100_000, 60)}
    tenant = tenant_create(name="schemathesis")
    scopes = ["recommend", "feedback", "catalog:write", "experiments"]
    raw_key = api_key_create(name="schemathesis", tenant=tenant, scopes=scopes)[1]
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(Path(settings.BASE_DIR) / "schemathesis.toml"),
        "run",
        f"{live_server.url}{SCHEMA}",
        "--checks",
        "all",
        "--exclude-checks",
        "use_after_free",  # schemathesis.toml says why
        "--max-examples",
        str(FUZZ_CASES_PER_OPERATION),
        "--seed",
        "11",
        "--workers",
        "1",
        "--no-color",
        "--header",
        f"Authorization: Bearer {raw_key}",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout.split("SUMMARY")[-1]
