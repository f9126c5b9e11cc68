"""A new user's first steps (README): `/` leads to the API docs, `make run` (demo_setup)
keeps the admin password and API key it made the first time, and a catalog command run as
printed beside the embedded server gets its tools into a served snapshot before it exits."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from access.models import ApiKey
from recommender.indexing.models import IndexSnapshot
from tests.conftest import small_catalog_jsonl


def test_the_root_leads_to_the_api_docs() -> None:
    response = Client().get("/")
    assert response.status_code == 302 and response["Location"] == "/api/v1/docs"
    assert Client().get(response["Location"]).status_code == 200


def _demo_setup() -> tuple[str, str]:
    out = StringIO()
    call_command("demo_setup", stdout=out)
    password = re.search(r"user admin, password (\S+)", out.getvalue())
    key = re.search(r"API key:\s+(trk_\S+)", out.getvalue())
    assert password and key, out.getvalue()
    return password.group(1), key.group(1)


@pytest.mark.django_db
def test_make_run_keeps_the_admin_password_and_key_it_made_first(settings: object, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path  # type: ignore[attr-defined]
    password, key = _demo_setup()
    assert _demo_setup() == (password, key)
    assert ApiKey.objects.count() == 1
    assert get_user_model().objects.get(username="admin").check_password(password)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/tools").status_code == 200

    admin = get_user_model().objects.get(username="admin")
    admin.set_password("chosen by the user")
    admin.save(update_fields=["password"])
    _demo_setup()  # a password the user changed is not reset
    assert get_user_model().objects.get(username="admin").check_password("chosen by the user")

    ApiKey.objects.update(is_active=False)  # a revoked key is replaced, not printed again
    assert _demo_setup()[1] != key


def test_import_tools_as_printed_builds_the_snapshot_before_it_exits(tmp_path: Path) -> None:
    """No DEBUG, no SECRET_KEY, no broker: the README's command line in a fresh embedded
    install. The rebuild it schedules (debounced 10 s, on a background thread) used to die
    with the command."""
    models = Path(settings.VAR_DIR) / "models"
    if models.exists():  # the bundled model, already exported to ONNX by this test session
        (tmp_path / "models").symlink_to(models)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG", "DJANGO_SETTINGS_MODULE"}
    }
    env["TOOLREC_VAR_DIR"] = str(tmp_path)
    catalog = tmp_path / "tools.jsonl"
    catalog.write_text(small_catalog_jsonl())
    manage = [sys.executable, "manage.py"]
    for command in (["migrate", "-v0"], ["import_tools", str(catalog)]):
        done = subprocess.run([*manage, *command], cwd=settings.BASE_DIR, env=env, capture_output=True, timeout=600)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert b"created 12" in done.stdout
    with sqlite3.connect(tmp_path / "toolrec.sqlite3") as db:
        rows = db.execute(f"SELECT tool_count FROM {IndexSnapshot._meta.db_table} WHERE is_active").fetchall()
    assert rows == [(12,)]
