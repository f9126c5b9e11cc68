from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from access.models import ApiKey
from access.selectors import hash_key
from access.services import api_key_create
from catalog.importers import parse_tools
from catalog.services import tool_import
from recommender.indexing.snapshots import snapshot_build
from recommender.learning.learner import learning_publish_stats

EXAMPLE_CATALOG = Path(settings.BASE_DIR) / "catalog" / "data" / "example_tools.jsonl"


def _credentials_file() -> Path:
    return Path(settings.VAR_DIR) / "demo_credentials.json"


def demo_credentials() -> tuple[str | None, str]:
    """The admin password and API key made by the first run, made once and printed again on
    every later run (they used to be reset and added to on every `make run`). Kept, readable
    by the owner only, beside the rest of the embedded install in var/. The password is None
    when someone changed it since (it is not reset); a key revoked or deleted is replaced."""
    path = _credentials_file()
    saved: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    admin, created = get_user_model().objects.get_or_create(
        username="admin", defaults={"is_staff": True, "is_superuser": True}
    )
    password: str | None = saved.get("password")
    if created or not admin.has_usable_password():
        password = secrets.token_urlsafe(12)
        admin.set_password(password)
        admin.save(update_fields=["password"])
    elif password is None or not admin.check_password(password):
        password = None
    raw_key = saved.get("api_key", "")
    if not raw_key or not ApiKey.objects.filter(key_hash=hash_key(raw_key), is_active=True).exists():
        # the demo key may also add its own tools (POST /api/v1/tools); shared ones stay the admin's
        raw_key = api_key_create(name="demo agent", scopes=["recommend", "feedback", "catalog:write"])[1]
    if password is not None:
        saved["password"] = password
    saved["api_key"] = raw_key
    path.parent.mkdir(parents=True, exist_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        json.dump(saved, out)
    return password, raw_key


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
        password, raw_key = demo_credentials()
        base = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
        self.stdout.write(self.style.SUCCESS(f"\ntoolrec is ready on {base}"))
        shown = password or "(changed since it was made: `manage.py changepassword admin` sets another)"
        self.stdout.write(f"  admin:    {base}/admin/  user admin, password {shown}")
        self.stdout.write(f"  API key:  {raw_key}")
        self.stdout.write(f"  API docs: {base}/api/v1/docs")
        self.stdout.write(
            f'  try:     curl -s {base}/api/v1/recommendations -H "Authorization: Bearer {raw_key}" '
            '-H \'Content-Type: application/json\' -d \'{"messages": [{"role": "user", '
            '"content": "what is the weather in Paris tomorrow?"}], "k": 3}\'\n'
        )
