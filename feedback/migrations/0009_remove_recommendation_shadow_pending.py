# The flag's rows were copied to ShadowPending (0008), in a transaction of their own: an
# ALTER TABLE after the copy's deferred foreign-key checks could meet "pending trigger events".

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("feedback", "0008_shadow_pending_table"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="recommendation", name="rec_shadow_pending"),
        migrations.RemoveField(model_name="recommendation", name="shadow_pending"),
    ]
