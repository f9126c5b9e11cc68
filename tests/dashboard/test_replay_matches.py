"""A replayed stream (`simulate`) and the dashboard count the same usage rate, hit rate and
coverage: the rollups lose nothing and count nothing twice."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Min
from django.utils import timezone

from dashboard.charts import overview_charts
from dashboard.models import CoverageDaily
from dashboard.rollups import rollup_range
from dashboard.selectors import Filters, rollup_windows
from feedback.models import Recommendation
from tests.conftest import small_catalog_jsonl
from tests.recommender.test_simulate import CITIES, _queries


@pytest.mark.django_db
def test_the_dashboard_counts_what_the_replay_counted(tmp_path: Path) -> None:
    tools = tmp_path / "tools.jsonl"
    tools.write_text(small_catalog_jsonl())
    report_path = tmp_path / "sim.json"
    call_command(
        "simulate", "--tools", str(tools),
        "--queries", str(_queries(tmp_path / "stream.jsonl", CITIES[:14])),
        "--test-queries", str(_queries(tmp_path / "test.jsonl", CITIES[14:])),
        "--steps", "120", "--k", "3", "--batch", "20", "--eval-every", "120",
        "--policies", "bandit", "--seed", "5", "--in-current-database", "--json", str(report_path),
        stdout=StringIO(),
    )  # fmt: skip
    replay = json.loads(report_path.read_text())["runs"][0]["checkpoints"][-1]
    assert Recommendation.objects.count() == 120
    first = Recommendation.objects.aggregate(m=Min("created_at"))["m"]
    rollup_range(first, timezone.now() + timedelta(minutes=1))

    windows = rollup_windows(Filters("day"))
    uses, shown, hits, recs = (
        sum(w.sums[name] for w in windows) for name in ("uses", "impressions", "hits", "recommendations")
    )
    assert recs == 120 and shown == 360
    assert 100 * uses / shown == pytest.approx(replay["usage_rate"], rel=1e-12)
    assert 100 * hits / recs == pytest.approx(replay["hit_rate"], rel=1e-12)
    coverage = CoverageDaily.objects.get(day=timezone.now().date(), namespace="", api_key_id=0)
    assert 100 * coverage.tools_recommended / coverage.tools_enabled == pytest.approx(replay["coverage"], rel=1e-12)
    # and the page says the same, to the decimal it shows
    headlines = {c.key: c.headline for c in overview_charts(Filters("day"))}
    assert headlines["usage_rate"] == f"{replay['usage_rate']:.1f}%"
    assert headlines["hit_rate"] == f"{replay['hit_rate']:.1f}%"
    assert headlines["coverage"].startswith(f"{replay['coverage']:.1f}%")
