# Shadow slates are ranked by a Celery task now, which a redelivery may run twice: one slate
# per (recommendation, variant). Slates logged before could not repeat, but a duplicate would
# fail the constraint, so any is removed first (the oldest is kept).

from django.db import migrations, models
from django.db.models import Min


def duplicates_remove(apps, schema_editor):
    ShadowSlate = apps.get_model("experiments", "ShadowSlate")
    repeated = (
        ShadowSlate.objects.values("recommendation_id", "variant")
        .annotate(first=Min("pk"), n=models.Count("pk"))
        .filter(n__gt=1)
    )
    for row in repeated:
        ShadowSlate.objects.filter(recommendation_id=row["recommendation_id"], variant=row["variant"]).exclude(
            pk=row["first"]
        ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0006_isolated_learning"),
        ("feedback", "0005_merge_20261206_0307"),
    ]

    operations = [
        migrations.RunPython(duplicates_remove, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="shadowslate",
            constraint=models.UniqueConstraint(fields=("recommendation", "variant"), name="shadow_slate_once"),
        ),
    ]
