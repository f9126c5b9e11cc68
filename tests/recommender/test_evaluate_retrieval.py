from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Tool
from tests.conftest import small_catalog_jsonl


def _queries(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


@pytest.mark.django_db
def test_evaluate_retrieval_reports_hand_checkable_metrics(tmp_path: Path) -> None:
    tools = tmp_path / "tools.jsonl"
    tools.write_text(small_catalog_jsonl())
    queries = _queries(
        tmp_path / "queries.jsonl",
        [
            # Unambiguous: every system must put the one relevant tool first.
            {
                "qid": "1",
                "query": "weather forecast for Paris for the coming days",
                "relevant": ["weather_get_forecast"],
            },
            {"qid": "2", "query": "send an email message to Bob", "relevant": ["mail_send"]},
            # Two relevant tools, the only two weather tools: both in the top 2 everywhere.
            {
                "qid": "3",
                "query": "the weather right now and the weather forecast",
                "relevant": ["weather_get_current", "weather_get_forecast"],
            },
            # A relevant tool sharing no word with the query: BM25 cannot find it.
            {"qid": "4", "query": "weather forecast for Paris for the coming days", "relevant": ["translate_text"]},
            # Not in the catalog: skipped, not scored.
            {"qid": "5", "query": "anything", "relevant": ["no_such_tool"]},
        ],
    )
    out, report_path = StringIO(), tmp_path / "report.json"
    call_command(
        "evaluate_retrieval",
        "--tools",
        str(tools),
        "--queries",
        str(queries),
        "--k",
        "10",
        "--json",
        str(report_path),
        stdout=out,
    )
    report = json.loads(report_path.read_text())
    result = report["results"][0]
    assert report["tools"] == 12 and result["queries"] == 4 and result["skipped"] == 1
    bm25 = result["metrics"]["bm25"]
    # By hand: queries 1-3 score 1 on every metric, query 4 scores 0 -> mean 75.
    assert bm25 == pytest.approx({"recall@5": 75.0, "recall@10": 75.0, "ndcg@10": 75.0, "c@10": 75.0})
    for system in ("dense", "toolrec"):
        metrics = result["metrics"][system]
        # Queries 1-3 are certain; query 4 adds between 0 and 1 depending on the rank of translate_text.
        assert 75.0 <= metrics["recall@10"] <= 100.0
        assert metrics["c@10"] == pytest.approx(metrics["recall@10"])  # one relevant tool -> C equals recall
    assert "toolrec" in out.getvalue() and "latency per query" in out.getvalue()
    assert Tool.objects.count() == 0  # the throwaway namespace is gone


@pytest.mark.django_db
def test_evaluate_retrieval_names_a_malformed_queries_line(tmp_path: Path) -> None:
    tools = tmp_path / "tools.jsonl"
    tools.write_text(small_catalog_jsonl())
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"query": "x", "relevant": ["mail_send"]}\n{"query": 3}\n')
    with pytest.raises(CommandError, match="line 2"):
        call_command("evaluate_retrieval", "--tools", str(tools), "--queries", str(queries), stdout=StringIO())
    assert Tool.objects.count() == 0


def test_evaluate_retrieval_refuses_missing_files(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file"):
        call_command("evaluate_retrieval", "--tools", str(tmp_path / "t"), "--queries", str(tmp_path / "q"))
