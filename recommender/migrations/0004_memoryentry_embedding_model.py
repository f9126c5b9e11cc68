from django.db import migrations, models


def name_existing_entries(apps, schema_editor):  # type: ignore[no-untyped-def]
    """Entries written before this field came from the model of the snapshot being served
    (the newest ready one): name them after it, so an upgrade keeps the learned memory. Any
    of another dimension stay set aside by the loader, as before."""
    snapshot = apps.get_model("recommender", "IndexSnapshot")
    entry = apps.get_model("recommender", "MemoryEntry")
    serving = (
        snapshot.objects.filter(status="ready").order_by("-is_active", "-pk").values_list("embedding_model", flat=True)
    ).first()
    if serving:
        entry.objects.filter(embedding_model="").update(embedding_model=serving)


class Migration(migrations.Migration):
    dependencies = [
        ("recommender", "0003_learningstate_tool_stats"),
    ]

    operations = [
        migrations.AddField(
            model_name="memoryentry",
            name="embedding_model",
            field=models.CharField(blank=True, default="", max_length=200),
        ),
        migrations.RunPython(name_existing_entries, migrations.RunPython.noop),
    ]
