"""Tools get a stored, unique function name (catalog/naming.py).

Existing tools are named in the order they were created, so the older of two colliding
tools keeps the plain name it was already served under."""

from django.db import migrations, models


def name_existing_tools(apps, schema_editor):  # type: ignore[no-untyped-def]
    from catalog import naming

    Tool = apps.get_model("catalog", "Tool")
    taken: set[str] = set()
    batch = []
    for tool in Tool.objects.order_by("pk").only("pk", "namespace", "name").iterator(chunk_size=2000):
        (tool.function_name,) = naming.assign([(f"{tool.namespace}/{tool.name}", tool.name)], taken)
        batch.append(tool)
        if len(batch) >= 2000:
            Tool.objects.bulk_update(batch, ["function_name"])
            batch = []
    Tool.objects.bulk_update(batch, ["function_name"])


class Migration(migrations.Migration):
    dependencies = [("catalog", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="tool",
            name="function_name",
            field=models.CharField(default="", editable=False, max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(name_existing_tools, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="tool",
            name="function_name",
            field=models.CharField(editable=False, max_length=64, unique=True),
        ),
    ]
