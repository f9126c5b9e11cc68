"""Settings for the test suite: the real, environment-driven settings plus a few test
defaults (a secret, a private var folder, a private cache prefix and Celery queue, so that
test runs never see each other's state on a shared PostgreSQL or Redis)."""

import os
import tempfile
import uuid

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-" + "x" * 40)  # 50+ characters with DEBUG off
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")  # the test client speaks plain HTTP
os.environ.setdefault("TOOLREC_VAR_DIR", tempfile.mkdtemp(prefix="toolrec-test-"))
os.environ.setdefault("CACHE_KEY_PREFIX", f"toolrec-test-{uuid.uuid4().hex[:8]}")
os.environ.setdefault("CELERY_QUEUE", f"toolrec-test-{uuid.uuid4().hex[:8]}")
os.environ.setdefault("TOOLREC_WARMUP", "false")
# pytest-django holds each test in one transaction, and some tests spend minutes of Python
# (embedding a catalog) inside it: the server must not end it as idle.
os.environ.setdefault("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "0")

from toolrec_site.settings import *  # noqa: F403

# Each run its own test database (two runs on one PostgreSQL collided on "test_toolrec"), and
# no connection kept past its unit of work, so that background readers (the request-signal
# pool) let the test database be dropped at the end.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
DATABASES["default"].setdefault("TEST", {})["NAME"] = (  # noqa: F405
    None if DATABASES["default"]["ENGINE"].endswith("sqlite3") else f"test_toolrec_{uuid.uuid4().hex[:8]}"  # noqa: F405
)

SNAPSHOT_CHECK_SECONDS = 0.0  # tests see a new snapshot at once
METRICS_REFRESH_SECONDS = 0  # each scrape recomputes the success gauges (no figures cached from an earlier test)
LEARNING_CHECK_SECONDS = 0.0
BACKGROUND_THREADS = False  # run background work inline, where the test can see it
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_AUTOREFRESH = True  # no collectstatic in tests
