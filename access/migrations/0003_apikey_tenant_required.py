"""Every key belongs to a tenant (0002 gave existing keys one). A migration of its own:
PostgreSQL cannot alter a table with the data migration's deferred FK checks pending."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("access", "0002_tenants_scopes_policies")]

    operations = [
        migrations.AlterField(
            model_name="apikey",
            name="tenant",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="api_keys", to="access.tenant"
            ),
        ),
    ]
