"""The running counts (ToolStats, UserToolStats, CoUse) are the learner's and move to the
recommender app (recommender/learning/models.py). Only Django's model state changes here;
the tables and every row are kept and renamed by recommender 0005."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("feedback", "0002_couse_usertoolstats_recommendation_called_tool_ids_and_more"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="CoUse"),
                migrations.DeleteModel(name="UserToolStats"),
                migrations.DeleteModel(name="ToolStats"),
            ],
            database_operations=[],
        ),
    ]
