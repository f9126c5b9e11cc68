"""Tenants, scopes and tool policies. Every existing key joins a "default" tenant and keeps
what it could do before (recommend, feedback and catalog writes); no row is dropped."""

import django.db.models.deletion
from django.db import migrations, models

import access.models

EXISTING_KEY_SCOPES = ["recommend", "feedback", "catalog:write"]


def existing_keys_to_default_tenant(apps, schema_editor):
    tenant_model = apps.get_model("access", "Tenant")
    key_model = apps.get_model("access", "ApiKey")
    if not key_model.objects.exists():
        return
    tenant, _ = tenant_model.objects.get_or_create(name="default")
    key_model.objects.filter(tenant__isnull=True).update(tenant=tenant, scopes=EXISTING_KEY_SCOPES)


class Migration(migrations.Migration):
    dependencies = [("access", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="Tenant",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=100, unique=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.AddField(
            model_name="apikey",
            name="tenant",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="api_keys", to="access.tenant"
            ),
        ),
        migrations.AddField(
            model_name="apikey",
            name="scopes",
            field=models.JSONField(blank=True, default=access.models.default_scopes),
        ),
        migrations.AddField(
            model_name="apikey",
            name="allowed_namespaces",
            field=models.JSONField(
                blank=True, default=list, help_text="Only tools of these namespaces (and allowed tools); empty: all."
            ),
        ),
        migrations.AddField(
            model_name="apikey",
            name="allowed_tools",
            field=models.JSONField(blank=True, default=list, help_text="Also these tools (namespace/name)."),
        ),
        migrations.AddField(
            model_name="apikey",
            name="denied_tools",
            field=models.JSONField(blank=True, default=list, help_text="Never these tools (namespace/name)."),
        ),
        migrations.AddField(
            model_name="apikey",
            name="pinned_tools",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="Tools every answer includes, first (namespace/name; counted in k).",
            ),
        ),
        migrations.AddField(
            model_name="apikey",
            name="updated_at",
            field=models.DateTimeField(auto_now=True),
        ),
        migrations.RunPython(existing_keys_to_default_tenant, migrations.RunPython.noop),
    ]
