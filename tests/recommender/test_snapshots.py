from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from catalog.models import Tool
from catalog.services import tool_set_enabled, tool_update
from recommender.indexing.models import IndexSnapshot
from recommender.indexing.snapshots import snapshot_build
from recommender.serving.holders import snapshots

PDF_TOOL = {
    "id": "pdf_extract_text",
    "name": "pdf_extract_text",
    "category": "documents",
    "description": "Extract the plain text from every page of a PDF document.",
    "parameters": {"type": "object", "properties": {"url": {"type": "string"}}},
}


def _top(api: APIClient, text: str, k: int = 3) -> list[str]:
    body = api.post(
        "/api/v1/recommendations", {"messages": [{"role": "user", "content": text}], "k": k}, format="json"
    ).json()
    return [t["name"] for t in body["tools"]]


def test_a_rebuild_reembeds_only_changed_tools(catalog: Callable[..., None]) -> None:
    catalog()
    first = snapshot_build()
    assert first is not None and first.tool_count == 12
    tool_update(tool=Tool.objects.get(name="mail_send"), changes={"description": "Send an e-mail with attachments."})
    second = snapshot_build()
    assert second is not None
    assert (second.embedded_count, second.reused_count) == (1, 11)
    assert list(IndexSnapshot.objects.filter(is_active=True).values_list("pk", flat=True)) == [second.pk]


def test_an_unchanged_catalog_is_not_rebuilt(catalog: Callable[..., None]) -> None:
    catalog()
    assert snapshot_build() is not None
    assert snapshot_build() is None
    assert snapshot_build(force=True) is not None


def test_a_web_process_picks_up_a_new_snapshot_without_restart(api: APIClient, catalog: Callable[..., None]) -> None:
    catalog()
    snapshot_build()
    assert "pdf_extract_text" not in _top(api, "get the text out of this PDF file")
    served = snapshots.get()
    catalog(extra=[PDF_TOOL])
    snapshot_build()
    assert _top(api, "get the text out of this PDF file")[0] == "pdf_extract_text"
    assert snapshots.get() is not served


def test_disabled_tools_leave_the_index(api: APIClient, catalog: Callable[..., None]) -> None:
    catalog()
    snapshot_build()
    tool_set_enabled(tool_ids=[Tool.objects.get(name="weather_get_forecast").pk], enabled=False)
    snapshot_build()
    assert "weather_get_forecast" not in _top(api, "weather forecast for Paris tomorrow", k=12)


def test_a_failed_build_keeps_the_active_snapshot(catalog: Callable[..., None], monkeypatch: Any) -> None:
    catalog()
    good = snapshot_build()
    assert good is not None
    catalog(extra=[PDF_TOOL])

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("recommender.indexing.snapshots.RetrievalIndex.build", broken)
    with pytest.raises(RuntimeError):
        snapshot_build()
    assert IndexSnapshot.objects.get(is_active=True).pk == good.pk
    assert IndexSnapshot.objects.filter(status="failed").count() == 1


def test_the_rebuild_command_reports_what_it_did(catalog: Callable[..., None]) -> None:
    from io import StringIO

    from django.core.management import call_command

    catalog()
    out = StringIO()
    call_command("rebuild_index", stdout=out)
    assert "12 tools, 12 embedded" in out.getvalue() or "12 tools, 0 embedded, 12 reused" in out.getvalue()
    out = StringIO()
    call_command("rebuild_index", stdout=out)
    assert "nothing to do" in out.getvalue()


def test_the_index_switches_to_hnsw_past_the_size_threshold(api: APIClient, catalog: Callable[..., None]) -> None:
    from django.test import override_settings

    catalog()
    with override_settings(ANN_FLAT_MAX_TOOLS=5):
        snapshot = snapshot_build()
        assert snapshot is not None and snapshot.index_kind == "hnsw"
        assert _top(api, "What's the weather in Paris tomorrow?")[0] == "weather_get_forecast"
        # A selective filter on the graph index still returns every matching tool.
        body = api.post(
            "/api/v1/recommendations",
            {"messages": [{"role": "user", "content": "weather in Paris"}], "k": 5, "category": "mail"},
            format="json",
        ).json()
        assert {t["name"] for t in body["tools"]} == {"mail_send", "mail_search"}
    assert snapshot_build(force=True).index_kind == "flat"


def test_queries_use_the_model_of_the_served_snapshot_until_a_rebuild(
    api: APIClient, catalog: Callable[..., None]
) -> None:
    from django.test import override_settings

    catalog()
    with override_settings(EMBEDDING_BACKEND="onnx"):
        float_snapshot = snapshot_build()
    assert float_snapshot is not None and float_snapshot.embedding_model == "local/all-MiniLM-L6-v2"
    # The configured backend is now int8, but the served vectors are float ones: queries
    # must be embedded with the float model to be comparable.
    assert snapshots.get().embedding_model == "local/all-MiniLM-L6-v2"
    assert _top(api, "What's the weather in Paris tomorrow?")[0] == "weather_get_forecast"
    rebuilt = snapshot_build()  # the model changed: not "nothing to do"
    assert rebuilt is not None and rebuilt.embedding_model == "local/all-MiniLM-L6-v2-int8"
    assert snapshots.get().embedding_model == rebuilt.embedding_model
    assert _top(api, "What's the weather in Paris tomorrow?")[0] == "weather_get_forecast"
