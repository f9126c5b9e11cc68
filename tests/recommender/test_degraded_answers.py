"""Faults on the recommendation path degrade the answer instead of failing it: the
database answers a JSON 503 with Retry-After, unreadable learned signals and a failing
ranker fall back to the semantic policy, a failing embedder to keyword retrieval."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import OperationalError, connection
from django.db.backends.signals import connection_created
from django.test import Client
from rest_framework.test import APIClient

from recommender.indexing import embedders
from recommender.learning.learner import learning_batch
from recommender.learning.models import RankerModel

REC = "/api/v1/recommendations"


def _ask(api: APIClient, text: str, **extra: Any) -> Any:
    return api.post(REC, {"messages": [{"role": "user", "content": text}], **extra}, format="json")


class FailingQueries:
    """A database that fails the statements naming one of `tables` (or every statement)."""

    def __init__(self, tables: tuple[str, ...] = ()) -> None:
        self.tables, self.failed = tables, 0

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if not self.tables or any(table in sql for table in self.tables):
            self.failed += 1
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)


@pytest.fixture
def failing_tables() -> Iterator[Callable[[tuple[str, ...]], FailingQueries]]:
    """Install the fault on this thread's connection and on every connection opened while
    the test runs (on PostgreSQL the request's signals are read in a thread pool)."""
    faults: list[FailingQueries] = []

    def on_connect(sender: Any, connection: Any, **kwargs: Any) -> None:
        connection.execute_wrappers.extend(faults)

    connection_created.connect(on_connect)

    def install(tables: tuple[str, ...]) -> FailingQueries:
        fault = FailingQueries(tables)
        faults.append(fault)
        connection.execute_wrappers.append(fault)
        return fault

    yield install
    connection_created.disconnect(on_connect)
    for fault in faults:
        if fault in connection.execute_wrappers:
            connection.execute_wrappers.remove(fault)


def test_a_database_error_answers_503_in_the_error_shape_with_retry_after(
    api: APIClient, indexed: None, failing_tables: Callable[[tuple[str, ...]], FailingQueries]
) -> None:
    failing_tables(())
    response = _ask(api, "send an email to Bob")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "database_unavailable"
    assert int(response["Retry-After"]) > 0


def test_unreadable_learned_signals_serve_the_semantic_policy(
    api: APIClient, indexed: None, settings: Any, failing_tables: Callable[[tuple[str, ...]], FailingQueries]
) -> None:
    settings.RECOMMEND_POLICY = {"name": "bandit", "exploration": "ucb", "alpha": 0.2}
    assert _ask(api, "send an email to Bob", user_id="u1").json()["policy"] == "bandit"

    fault = failing_tables(("usertoolstats", "couse"))
    response = _ask(api, "send an email to Bob", user_id="u1")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["policy"] == "semantic" and fault.failed >= 1
    assert body["tools"][0]["name"] in {"mail_send", "mail_search"}


def test_a_broken_ranker_falls_back_to_the_semantic_policy(api: APIClient, indexed: None, settings: Any) -> None:
    assert _ask(api, "send an email to Bob").status_code == 200
    assert learning_batch(delay_seconds=0) is not None  # a learned state exists
    RankerModel.objects.create(model_text="not a LightGBM model", is_active=True)
    settings.RECOMMEND_POLICY = {"name": "ltr", "exploration": "none"}
    response = _ask(api, "send an email to Bob")
    assert response.status_code == 200, response.json()
    assert response.json()["policy"] == "semantic"
    assert response.json()["tools"][0]["name"] in {"mail_send", "mail_search"}


class TimingOutEmbedder:
    """A hosted embedding model that does not answer (the provider is the outside world)."""

    def embed(self, texts: list[str]) -> Any:
        raise TimeoutError("the embedding provider did not answer in time")


def test_a_failing_embedder_answers_from_keyword_retrieval(
    api: APIClient, indexed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recommender.serving.holders import snapshots

    snapshot = snapshots.get()
    assert snapshot is not None
    monkeypatch.setitem(embedders._embedders, snapshot.embedding_model, TimingOutEmbedder())
    response = _ask(api, "convert 100 dollars to euros at the exchange rate", k=3)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["policy"] == "semantic"
    assert body["tools"][0]["name"] == "currency_convert"
    assert b'toolrec_recommendation_fallbacks_total{reason="embedding"}' in Client().get("/metrics").content
