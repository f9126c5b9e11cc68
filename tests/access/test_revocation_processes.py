"""A revoked key is refused by every process within about a second (each process keeps the
keys it read for API_KEY_CACHE_SECONDS, 1 s by default, and no longer)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from access.models import ApiKey
from access.services import api_key_create, api_key_revoke
from tests.conftest import in_ci

NEEDS = "needs PostgreSQL (DATABASE_URL): the processes share the database"
have_postgres = connection.vendor == "postgresql"
if in_ci() and not have_postgres:
    raise RuntimeError(f"CI must run the revocation process test: it {NEEDS}")
pytestmark = [pytest.mark.services, pytest.mark.skipif(not have_postgres, reason=NEEDS)]

# A web process: it asks with the key every 20 ms; it prints "ready" once the key is cached
# (a first 200), then the time of its first refusal.
WEB_PROCESS = textwrap.dedent(
    """
    import sys, time
    import django
    django.setup()
    from django.test import Client
    client = Client(HTTP_AUTHORIZATION="Bearer " + sys.argv[1])
    deadline = time.time() + 60
    ready = False
    while time.time() < deadline:
        status = client.get("/api/v1/tools", {"limit": 1}).status_code
        if status == 200 and not ready:
            ready = True
            print("ready", flush=True)
        elif status == 401:
            print("refused", time.time(), flush=True)
            sys.exit(0)
        time.sleep(0.02)
    sys.exit(1)
    """
)


@pytest.mark.django_db(transaction=True)
def test_a_revoked_key_is_refused_on_every_process_within_two_seconds(catalog: Any) -> None:
    catalog()
    api_key, raw = api_key_create(name="to revoke")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "toolrec_site.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "PYTHONPATH": str(settings.BASE_DIR),
        "API_KEY_CACHE_SECONDS": "1",
    }
    web = [
        subprocess.Popen([sys.executable, "-c", WEB_PROCESS, raw], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for process in web:
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    time.sleep(0.5)  # both now serve the key from their caches
    revoked_at = time.time()
    api_key_revoke(api_key=ApiKey.objects.get(pk=api_key.pk))
    delays = []
    for process in web:
        out, _ = process.communicate(timeout=30)
        assert process.returncode == 0
        delays.append(float(out.split()[-1]) - revoked_at)
    assert max(delays) <= 2.0, delays
