"""The dashboard in a real browser: Debian's chromium driven by Playwright (its own browser
download does not work here). Logs in through the admin's form, opens every page on a
populated database, and checks that every chart drew its data, that no JavaScript error
reached the console, and that non-staff and anonymous visitors are refused. Screenshots of
each page at a laptop's width go to bench/results/dashboard/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from dashboard.estimates import policy_estimates_record
from dashboard.rollups import rollup_range
from dashboard.samples import service_sample_record
from feedback.models import Recommendation, UsageEvent
from recommender.learning.learner import learning_batch
from tests.conftest import in_ci

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = Path(settings.BASE_DIR) / "bench" / "results" / "dashboard"
try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:  # requirements-dev.txt pins it; the skip below says so
    sync_playwright = None  # type: ignore[assignment]

MISSING = (
    f"browser tests need Debian's chromium at {CHROMIUM} (`apt-get install -y chromium chromium-driver`) and "
    "playwright (requirements-dev.txt)"
)
have_browser = sync_playwright is not None and shutil.which(CHROMIUM) is not None
if not have_browser and in_ci():
    pytest.fail(f"CI must run the browser tests: {MISSING}", pytrace=False)
pytestmark = [pytest.mark.browser, pytest.mark.skipif(not have_browser, reason=MISSING)]

# The pages, and the charts each must draw (key of the canvas).
PAGES = {
    "overview": ("/dashboard/?range=day", 12),
    "overview-week": ("/dashboard/?range=week", 12),
    "tools": ("/dashboard/tools/?range=week", 0),
    "tools-new": ("/dashboard/tools/?range=week&view=new", 0),
    "learning": ("/dashboard/learning/", 4),
    "catalog": ("/dashboard/catalog/", 2),
}
QUESTIONS = [
    "what's the weather in Paris tomorrow",
    "send an email to Bob about the report",
    "create a meeting with Alice on monday",
    "convert 100 dollars to euros",
    "what is the Apple stock price",
    "search my inbox for the invoice",
    "is it going to rain in Oslo",
    "list my meetings for this week",
]

# Pixels of the first series' colour (#0072B2) in a canvas: the data drew, not only the axes.
SERIES_PIXELS_JS = """(canvas) => {
  const ctx = canvas.getContext('2d');
  const {data} = ctx.getImageData(0, 0, canvas.width, canvas.height);
  let series = 0, painted = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 0) painted++;
    const [r, g, b, a] = [data[i], data[i + 1], data[i + 2], data[i + 3]];
    if (a > 200 && r < 40 && Math.abs(g - 114) < 40 && Math.abs(b - 178) < 40) series++;
  }
  return {series, painted};
}"""


def _populate(api: APIClient) -> None:
    """A day of traffic: answers spread over the last 20 hours, every other one's first tool
    used, then rolled up, learned and estimated as the periodic tasks would."""
    now = timezone.now()
    for n in range(40):
        text = QUESTIONS[n % len(QUESTIONS)] + f" ({n})"
        body = api.post(
            "/api/v1/recommendations",
            {"messages": [{"role": "user", "content": text}], "k": 3, "user_id": f"u{n % 3}"},
            format="json",
        ).json()
        if n % 2 == 0:
            api.post(
                "/api/v1/feedback",
                {
                    "recommendation_id": body["recommendation_id"],
                    "events": [{"tool": body["tools"][n % 3]["name"], "used": True}],
                },
                format="json",
            )
        moment = now - timedelta(minutes=30 * (40 - n))
        Recommendation.objects.filter(pk=body["recommendation_id"]).update(created_at=moment)
        UsageEvent.objects.filter(recommendation_id=body["recommendation_id"]).update(
            created_at=moment + timedelta(seconds=20)
        )
    rollup_range(now - timedelta(hours=21), now + timedelta(minutes=1))
    learning_batch(delay_seconds=0)
    service_sample_record()
    policy_estimates_record()


@pytest.fixture
def browser(populated: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    # Playwright's sync API runs an event loop in this thread, and Django refuses ORM calls
    # under a running loop; the test's own ORM calls are synchronous and safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert sync_playwright is not None
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


@pytest.fixture
def populated(api: APIClient, indexed: None) -> None:
    _populate(api)
    User.objects.create_user("operator", password="operator-pw", is_staff=True)
    User.objects.create_user("visitor", password="visitor-pw")


def _login(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/admin/login/?next=/dashboard/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_load_state("networkidle")


def _new_page(browser: Browser, errors: list[str]) -> Page:
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return page


@pytest.mark.django_db(transaction=True)
def test_every_page_draws_its_charts_without_errors(live_server: Any, browser: Browser) -> None:
    errors: list[str] = []
    page = _new_page(browser, errors)
    _login(page, live_server.url, "operator", "operator-pw")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, (url, charts) in PAGES.items():
        response = page.goto(live_server.url + url)
        assert response is not None and response.status == 200, name
        page.wait_for_load_state("networkidle")
        canvases = page.query_selector_all("canvas[data-chart]")
        assert len(canvases) == charts, name
        drawn = {c.get_attribute("data-chart"): c.evaluate(SERIES_PIXELS_JS) for c in canvases}
        blank = [key for key, pixels in drawn.items() if pixels["painted"] == 0]
        assert not blank, f"{name}: blank canvases {blank}"
        if charts:
            with_data = [key for key, pixels in drawn.items() if pixels["series"] > 20]
            assert len(with_data) >= charts - 2, f"{name}: charts without their data drawn: {drawn}"
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    tool_link = page.goto(live_server.url + "/dashboard/tools/?range=week")
    assert tool_link is not None
    page.click("#tool-table tbody a >> nth=0")
    page.wait_for_load_state("networkidle")
    assert page.query_selector("canvas[data-chart=history]") is not None
    assert page.query_selector("canvas[data-chart=history]").evaluate(SERIES_PIXELS_JS)["series"] > 20
    page.screenshot(path=str(SCREENSHOTS / "tool.png"), full_page=True)
    assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_non_staff_and_anonymous_visitors_are_refused(live_server: Any, browser: Browser) -> None:
    errors: list[str] = []
    anonymous = _new_page(browser, errors)
    anonymous.goto(live_server.url + "/dashboard/")
    assert "/admin/login/" in anonymous.url and anonymous.query_selector("canvas") is None
    visitor = _new_page(browser, errors)
    _login(visitor, live_server.url, "visitor", "visitor-pw")
    visitor.goto(live_server.url + "/dashboard/tools/")
    assert "/admin/login/" in visitor.url and visitor.query_selector("#tool-table") is None
    assert not errors, errors


@pytest.fixture
def shadowed_experiment(api: APIClient, indexed: None) -> None:
    """An A/B experiment with a shadow variant, its traffic and a look. Set up before the
    browser starts: under Playwright's event loop the ORM would open a second connection."""
    from experiments.rollout import experiment_look_record
    from experiments.selectors import reset_cache
    from experiments.services import VariantSpec, experiment_create, experiment_start

    variants = [
        VariantSpec("control", "semantic", is_control=True),
        VariantSpec("bandit", "bandit"),
        VariantSpec("thompson", "thompson", role="shadow"),
    ]
    experiment = experiment_create(key="shadowed", variants=variants, actor="t")
    experiment_start(experiment=experiment, actor="t")
    reset_cache()
    for n in range(24):
        body = api.post(
            "/api/v1/recommendations",
            {"messages": [{"role": "user", "content": QUESTIONS[n % len(QUESTIONS)]}], "k": 3, "user_id": f"s{n}"},
            format="json",
        ).json()
        if n % 2 == 0:
            feedback = {"recommendation_id": body["recommendation_id"], "tool": body["tools"][0]["name"], "used": True}
            api.post("/api/v1/feedback", feedback, format="json")
    experiment.refresh_from_db()
    experiment_look_record(experiment=experiment)


@pytest.mark.django_db(transaction=True)
def test_the_experiment_page_shows_its_shadow_and_when_it_was_computed(
    shadowed_experiment: None, live_server: Any, browser: Browser
) -> None:
    """The shadow table: every request ranked, none pending, and when its figures were computed."""
    errors: list[str] = []
    page = _new_page(browser, errors)
    _login(page, live_server.url, "operator", "operator-pw")
    response = page.goto(live_server.url + "/dashboard/experiments/shadowed/")
    assert response is not None and response.status == 200
    page.wait_for_load_state("networkidle")
    text = page.inner_text("body")
    assert "Shadow variants (ranked on the same requests, never served)" in text
    assert "Computed " in text and "the minute's look reuses them for 600 s" in text
    shadow_row = page.inner_text("table:below(:text('Shadow variants')) >> nth=0")
    assert "thompson" in shadow_row and "24" in shadow_row  # every request ranked, none pending
    assert "not ranked yet" not in shadow_row
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "experiment.png"), full_page=True)
    assert not errors, errors
