from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from access.services import api_key_create
from catalog.importers import parse_tools
from catalog.services import tool_import
from recommender.indexing.snapshots import snapshot_build
from recommender.learning.learner import learning_publish_stats

EXAMPLE_CATALOG = Path(settings.BASE_DIR) / "catalog" / "data" / "example_tools.jsonl"


class Command(BaseCommand):
    help = "Migrate, import the example catalog, build the index, create an admin and an API key."

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", verbosity=0)
        report = tool_import(records=parse_tools(EXAMPLE_CATALOG.read_text(), "jsonl"), schedule_rebuild=False)
        self.stdout.write(
            f"example catalog: created {report.created}, updated {report.updated}, unchanged {report.unchanged}"
        )
        snapshot = snapshot_build()
        if snapshot:
            learning_publish_stats()  # what the rebuild task hands on: the new catalog's counts
            self.stdout.write(f"index: snapshot v{snapshot.pk}, {snapshot.tool_count} tools")
        user_model = get_user_model()
        password = secrets.token_urlsafe(12)
        admin, _ = user_model.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        admin.set_password(password)
        admin.save(update_fields=["password"])
        # the demo key may also add its own tools (POST /api/v1/tools); shared ones stay the admin's
        _, raw_key = api_key_create(name="demo agent", scopes=["recommend", "feedback", "catalog:write"])
        base = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
        self.stdout.write(self.style.SUCCESS(f"\ntoolrec is ready on {base}"))
        self.stdout.write(f"  admin:    {base}/admin/  user admin, password {password}")
        self.stdout.write(f"  API key:  {raw_key}")
        self.stdout.write(f"  API docs: {base}/api/v1/docs")
        self.stdout.write(
            f'  try:     curl -s {base}/api/v1/recommendations -H "Authorization: Bearer {raw_key}" '
            '-H \'Content-Type: application/json\' -d \'{"messages": [{"role": "user", '
            '"content": "what is the weather in Paris tomorrow?"}], "k": 3}\'\n'
        )
