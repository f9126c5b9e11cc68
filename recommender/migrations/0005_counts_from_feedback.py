"""ToolStats, UserToolStats and CoUse move here from the feedback app, keeping every row:
the model state is created over the existing tables (feedback 0003 dropped it there), the
tables are renamed, and the content types follow (so admin permissions and history stay).

The per-tool counts are now kept by the learner, which adds each recommendation's shows
and uses when it learns them. The web processes used to add them when they were logged, so
the counts of what is not learned yet are taken out here; the learner adds them back once.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Count

MOVED = ("toolstats", "usertoolstats", "couse")


def _move_content_types(apps, schema_editor):
    content_type = apps.get_model("contenttypes", "ContentType")
    for model in MOVED:
        if not content_type.objects.filter(app_label="recommender", model=model).exists():
            content_type.objects.filter(app_label="feedback", model=model).update(app_label="recommender")


def _uncount_unlearned(apps, schema_editor):
    tool_stats = apps.get_model("recommender", "ToolStats")
    impression = apps.get_model("feedback", "Impression")
    usage_event = apps.get_model("feedback", "UsageEvent")
    shows = dict(
        impression.objects.filter(recommendation__learned_at__isnull=True)
        .values_list("tool_id")
        .annotate(n=Count("pk"))
    )
    uses = dict(
        usage_event.objects.filter(learned_at__isnull=True, used=True).values_list("tool_id").annotate(n=Count("pk"))
    )
    for stats in tool_stats.objects.filter(tool_id__in=set(shows) | set(uses)):
        stats.times_recommended = max(0, stats.times_recommended - shows.get(stats.tool_id, 0))
        stats.times_used = max(0, stats.times_used - uses.get(stats.tool_id, 0))
        stats.save(update_fields=["times_recommended", "times_used"])


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("catalog", "0001_initial"),
        ("feedback", "0003_counts_move_to_recommender"),
        ("recommender", "0004_memoryentry_embedding_model"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ToolStats",
                    fields=[
                        (
                            "tool",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                primary_key=True,
                                related_name="stats",
                                serialize=False,
                                to="catalog.tool",
                            ),
                        ),
                        ("times_recommended", models.PositiveIntegerField(default=0)),
                        ("times_used", models.PositiveIntegerField(default=0)),
                        ("last_recommended_at", models.DateTimeField(blank=True, null=True)),
                        ("last_used_at", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={"verbose_name_plural": "tool stats", "db_table": "feedback_toolstats"},
                ),
                migrations.CreateModel(
                    name="UserToolStats",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("user_id", models.CharField(max_length=200)),
                        ("times_recommended", models.PositiveIntegerField(default=0)),
                        ("times_used", models.PositiveIntegerField(default=0)),
                        ("last_used_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "tool",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="catalog.tool"
                            ),
                        ),
                    ],
                    options={
                        "verbose_name_plural": "user tool stats",
                        "db_table": "feedback_usertoolstats",
                        "constraints": [
                            models.UniqueConstraint(fields=("user_id", "tool"), name="user_tool_stats_unique")
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="CoUse",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("count", models.PositiveIntegerField(default=0)),
                        (
                            "after",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="catalog.tool"
                            ),
                        ),
                        (
                            "tool",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="catalog.tool"
                            ),
                        ),
                    ],
                    options={
                        "db_table": "feedback_couse",
                        "constraints": [models.UniqueConstraint(fields=("after", "tool"), name="co_use_unique")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name="toolstats", table=None),
        migrations.AlterModelTable(name="usertoolstats", table=None),
        migrations.AlterModelTable(name="couse", table=None),
        migrations.RunPython(_move_content_types, migrations.RunPython.noop),
        migrations.RunPython(_uncount_unlearned, migrations.RunPython.noop),
    ]
