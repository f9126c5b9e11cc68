"""Settings for the test suite: the real, environment-driven settings plus a few test
defaults (a secret, a private var folder, a private cache prefix and Celery queue, so that
test runs never see each other's state on a shared PostgreSQL or Redis)."""

import os
import tempfile
import uuid

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("TOOLREC_VAR_DIR", tempfile.mkdtemp(prefix="toolrec-test-"))
os.environ.setdefault("CACHE_KEY_PREFIX", f"toolrec-test-{uuid.uuid4().hex[:8]}")
os.environ.setdefault("CELERY_QUEUE", f"toolrec-test-{uuid.uuid4().hex[:8]}")
os.environ.setdefault("TOOLREC_WARMUP", "false")

from toolrec_site.settings import *  # noqa: F403

SNAPSHOT_CHECK_SECONDS = 0.0  # tests see a new snapshot at once
LEARNING_CHECK_SECONDS = 0.0
BACKGROUND_THREADS = False  # run background work inline, where the test can see it
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_AUTOREFRESH = True  # no collectstatic in tests
