# Shadow-pending recommendations move from a flag on Recommendation to a narrow queue table:
# clearing the flag rewrote the wide row and all its indexes.

import django.db.models.deletion
from django.db import migrations, models


def flags_to_rows(apps, schema_editor):
    recommendation = apps.get_model("feedback", "Recommendation")
    pending = apps.get_model("feedback", "ShadowPending")
    rows = recommendation.objects.filter(shadow_pending=True).order_by("created_at").values_list("pk", "experiment_key")
    pending.objects.bulk_create(
        (pending(recommendation_id=pk, experiment_key=key) for pk, key in rows.iterator()), batch_size=5000
    )


def rows_to_flags(apps, schema_editor):
    recommendation = apps.get_model("feedback", "Recommendation")
    pending = apps.get_model("feedback", "ShadowPending")
    ids = pending.objects.values_list("recommendation_id", flat=True)
    recommendation.objects.filter(pk__in=ids).update(shadow_pending=True)


class Migration(migrations.Migration):
    dependencies = [
        ("feedback", "0007_candidate_log_lz4"),
    ]

    operations = [
        migrations.CreateModel(
            name="ShadowPending",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("experiment_key", models.CharField(max_length=100)),
                (
                    "recommendation",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="feedback.recommendation"
                    ),
                ),
            ],
        ),
        migrations.RunPython(flags_to_rows, rows_to_flags),
    ]
