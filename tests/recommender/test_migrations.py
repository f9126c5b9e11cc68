"""Migrations that move data, run forwards on a database that holds rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

# Each test migrates back to an old schema and forwards again. On SQLite, Django drops or
# alters a column by rebuilding the table, and going back across catalog's merged 0002
# leaves (and the tables of later apps that point at catalog_tool) leaves foreign keys that
# fail the commit and the in-memory database unusable for the tests after it. CI runs
# these on PostgreSQL, where the migrations run in production.
pytestmark = pytest.mark.skipif(
    connection.vendor == "sqlite", reason="migration round trips need PostgreSQL (see the comment above)"
)

BEFORE_MOVE = [
    ("catalog", "0001_initial"),
    ("feedback", "0002_couse_usertoolstats_recommendation_called_tool_ids_and_more"),
    ("recommender", "0004_memoryentry_embedding_model"),
    # the schema of keys and tools of that time (before tenants)
    ("access", "0001_initial"),
    ("catalog", "0001_initial"),
]


def _migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


@pytest.mark.django_db(transaction=True)
def test_moving_the_counts_to_the_learner_keeps_every_row() -> None:
    """ToolStats, UserToolStats and CoUse leave the feedback app for the learner's models:
    every row survives under the new tables, and the counts of what the learner has not
    learned yet are taken out (the learner adds them when it learns them)."""
    executor = _migrate(BEFORE_MOVE)
    old = executor.loader.project_state(BEFORE_MOVE).apps
    tool_model, key_model = old.get_model("catalog", "Tool"), old.get_model("access", "ApiKey")
    recommendation, impression = old.get_model("feedback", "Recommendation"), old.get_model("feedback", "Impression")
    usage_event = old.get_model("feedback", "UsageEvent")
    tools = [tool_model.objects.create(namespace="default", name=f"t{i}", content_hash=str(i)) for i in range(3)]
    key = key_model.objects.create(name="k", prefix="trk_x", key_hash="h")
    learned = recommendation.objects.create(api_key=key, snapshot_version=1, k=2, learned_at=timezone.now())
    pending = recommendation.objects.create(api_key=key, snapshot_version=1, k=2)
    for rec in (learned, pending):
        for rank, tool in enumerate(tools[:2], start=1):
            impression.objects.create(recommendation=rec, tool=tool, rank=rank, score=1.0)
    usage_event.objects.create(
        event_id="a", recommendation=learned, tool=tools[0], used=True, source="explicit", learned_at=timezone.now()
    )
    usage_event.objects.create(event_id="b", recommendation=pending, tool=tools[0], used=True, source="explicit")
    last_use = timezone.now() - timedelta(hours=1)
    old.get_model("feedback", "ToolStats").objects.bulk_create(
        [
            old.get_model("feedback", "ToolStats")(
                tool=tools[0], times_recommended=2, times_used=2, last_used_at=last_use
            ),
            old.get_model("feedback", "ToolStats")(tool=tools[1], times_recommended=2, times_used=0),
            old.get_model("feedback", "ToolStats")(tool=tools[2], times_recommended=0, times_used=0),
        ]
    )
    old.get_model("feedback", "UserToolStats").objects.create(user_id="ann", tool=tools[0], times_recommended=4)
    old.get_model("feedback", "CoUse").objects.create(after=tools[0], tool=tools[1], count=7)

    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    from recommender.learning.models import CoUse, ToolStats, UserToolStats

    assert ToolStats._meta.db_table == "recommender_toolstats"
    counts = {s.tool_id: (s.times_recommended, s.times_used, s.last_used_at) for s in ToolStats.objects.all()}
    assert counts == {tools[0].pk: (1, 1, last_use), tools[1].pk: (1, 0, None), tools[2].pk: (0, 0, None)}
    assert list(UserToolStats.objects.values_list("user_id", "times_recommended")) == [("ann", 4)]
    assert list(CoUse.objects.values_list("after_id", "tool_id", "count")) == [(tools[0].pk, tools[1].pk, 7)]
    assert "feedback_toolstats" not in connection.introspection.table_names()


@pytest.mark.django_db(transaction=True)
def test_existing_tools_get_distinct_function_names_the_older_keeping_its_name() -> None:
    before = [("catalog", "0001_initial")]
    executor = _migrate(before)
    tool_model = executor.loader.project_state(before).apps.get_model("catalog", "Tool")
    long = "a" * 70
    specs = [("default", "search"), ("other", "search"), ("default", long + "1"), ("default", long + "2")]
    for i, (namespace, name) in enumerate(specs):
        tool_model.objects.create(namespace=namespace, name=name, content_hash=str(i))

    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    from catalog.models import Tool

    names = dict(((t.namespace, t.name), t.function_name) for t in Tool.objects.all())
    assert names[("default", "search")] == "search" and names[("other", "search")].startswith("search_")
    assert names[("default", long + "1")] == "a" * 64 and names[("default", long + "2")] != "a" * 64
    assert all(len(n) <= 64 for n in names.values()) and len(set(names.values())) == 4


@pytest.mark.django_db
def test_migrate_writes_the_periodic_tasks_to_the_beat_schedule_once() -> None:
    """django-celery-beat's DatabaseScheduler reads these; operators pause them in the admin."""
    from django_celery_beat.models import PeriodicTask

    from toolrec_site.scheduling import PERIODIC_TASKS, periodic_tasks_sync

    entries = {t.name: t for t in PeriodicTask.objects.filter(name__in=PERIODIC_TASKS)}
    assert {name: (e.task, e.interval.every) for name, e in entries.items()} == {
        name: (task, every) for name, (task, every) in PERIODIC_TASKS.items()
    }
    assert all(0 < e.expire_seconds < e.interval.every for e in entries.values() if e.interval.every > 1)
    paused = entries["train-ranker"]
    paused.enabled = False
    paused.save(update_fields=["enabled"])
    assert periodic_tasks_sync() == []  # a second migrate creates nothing and keeps the pause
    assert not PeriodicTask.objects.get(name="train-ranker").enabled


# The catalog just before tenants (stored function names came first).
BEFORE_TENANTS = [("access", "0001_initial"), ("catalog", "0002_tool_function_name")]


@pytest.mark.django_db(transaction=True)
def test_tenants_arrive_with_every_key_in_a_default_tenant_and_every_tool_shared() -> None:
    """Existing keys keep working as before (default tenant, the scopes they had in effect),
    existing tools become shared (every key still sees them), and no row is lost."""
    # Back to before both (a plan is only backwards or only forwards), then forwards to it.
    _migrate([("access", "0001_initial"), ("catalog", "0001_initial")])
    executor = _migrate(BEFORE_TENANTS)
    old = executor.loader.project_state(BEFORE_TENANTS).apps
    tool_model, key_model = old.get_model("catalog", "Tool"), old.get_model("access", "ApiKey")
    tools = [
        tool_model.objects.create(namespace=f"ns{i % 2}", name=f"t{i}", function_name=f"t{i}", content_hash=str(i))
        for i in range(5)
    ]
    keys = [key_model.objects.create(name=f"k{i}", prefix="trk_x", key_hash=f"h{i}") for i in range(3)]
    key_model.objects.filter(pk=keys[2].pk).update(is_active=False)

    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    from access.models import ApiKey, Tenant
    from catalog.models import Tool

    assert list(Tenant.objects.values_list("name", flat=True)) == ["default"]
    migrated = ApiKey.objects.order_by("pk")
    assert [k.pk for k in migrated] == [k.pk for k in keys]
    assert {k.tenant.name for k in migrated} == {"default"}
    assert all(k.scopes == ["recommend", "feedback", "catalog:write"] for k in migrated)
    assert [k.is_active for k in migrated] == [True, True, False]
    assert sorted(Tool.objects.values_list("pk", "namespace", "name", "tenant_id")) == [
        (t.pk, t.namespace, t.name, None) for t in tools
    ]


BEFORE_ISOLATION = [("recommender", "0006_learningstate_match_model"), ("experiments", "0005_thompson_allocation")]


@pytest.mark.django_db(transaction=True)
def test_isolated_learning_migrates_back_and_forth_keeping_the_variants() -> None:
    """Back: the isolated states' table and the variants' `learning` go, the variants stay;
    forwards: every existing variant learns in the shared state, as it always did."""
    executor = _migrate(BEFORE_ISOLATION)
    tables = connection.introspection.table_names()
    assert "recommender_isolatedlearningstate" not in tables
    old = executor.loader.project_state(BEFORE_ISOLATION).apps
    experiment = old.get_model("experiments", "Experiment").objects.create(key="old", name="old")
    old.get_model("experiments", "Variant").objects.create(experiment=experiment, name="a", policy={"name": "bandit"})

    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    from experiments.models import Variant
    from recommender.learning.models import IsolatedLearningState

    assert list(Variant.objects.values_list("name", "learning")) == [("a", "shared")]
    IsolatedLearningState.objects.create(experiment_key="old", variant="a", bandit=b"x", seed_bandit=b"x")
    _migrate(BEFORE_ISOLATION)  # a table with rows goes back too
    assert "recommender_isolatedlearningstate" not in connection.introspection.table_names()
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert Variant.objects.get().learning == "shared"


BEFORE_QUEUE = [("feedback", "0007_candidate_log_lz4")]


@pytest.mark.django_db(transaction=True)
def test_shadow_pending_flags_become_queue_rows_and_back() -> None:
    """The flag on Recommendation moves to the ShadowPending queue table: a recommendation
    pending before the migration is still ranked after it, and one already ranked is not."""
    executor = _migrate(BEFORE_QUEUE)
    old = executor.loader.project_state(BEFORE_QUEUE).apps
    tenant = old.get_model("access", "Tenant").objects.create(name="q")
    key = old.get_model("access", "ApiKey").objects.create(name="k", prefix="trk_q", key_hash="hq", tenant=tenant)
    recommendation = old.get_model("feedback", "Recommendation")
    pending = recommendation.objects.create(
        api_key=key, snapshot_version=1, k=2, experiment_key="e", shadow_pending=True
    )
    recommendation.objects.create(api_key=key, snapshot_version=1, k=2, experiment_key="e")

    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    from feedback.models import ShadowPending

    assert list(ShadowPending.objects.values_list("recommendation_id", "experiment_key")) == [(pending.pk, "e")]
    _migrate(BEFORE_QUEUE)
    back = executor.loader.project_state(BEFORE_QUEUE).apps.get_model("feedback", "Recommendation")
    assert list(back.objects.filter(shadow_pending=True).values_list("pk", flat=True)) == [pending.pk]
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
