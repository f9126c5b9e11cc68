"""Two web processes swap learned states while a learner publishes them, and never serve a
torn one (a bandit from one version with the memory or counts of another, or going back)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from django.conf import settings
from django.db import connection

from catalog.models import Tool
from recommender.engine.bandit import LinearBanditState
from recommender.learning.models import LearningState, MemoryEntry
from tests.conftest import in_ci

NEEDS = "needs PostgreSQL (DATABASE_URL): processes share the database"
have_postgres = connection.vendor == "postgresql"
if in_ci() and not have_postgres:
    raise RuntimeError(f"CI must run the state swap test: it {NEEDS}")
pytestmark = [pytest.mark.services, pytest.mark.skipif(not have_postgres, reason=NEEDS)]

D = 23
READER = textwrap.dedent(
    """
    import json, os, sys, time
    import django
    django.setup()
    import numpy as np
    from django.conf import settings
    settings.LEARNING_CHECK_SECONDS = float(sys.argv[2])  # 0: check on every read; > 0: background thread
    from recommender.serving.holders import LearningHolder
    holder, seen, last, deadline = LearningHolder(), 0, 0, time.monotonic() + float(sys.argv[1])
    while time.monotonic() < deadline:
        state = holder.get()
        if state is None:
            continue
        b = state.bandit
        version_mark = b.n_updates
        # Published states are consistent by construction: b = n * ones, A_inv = I / n, and
        # the memory holds at least n entries. Anything else is a torn read.
        assert np.all(b.b == version_mark) and np.allclose(np.diag(b.A_inv), 1 / version_mark), "torn bandit"
        assert len(state.memory) >= version_mark, "memory older than the bandit"
        assert version_mark >= last, "went back to an older state"
        last, seen = version_mark, seen + 1
    print(json.dumps({"reads": seen, "last": last}))
    """
)


def _state(n: int) -> bytes:
    return LinearBanditState(d=D, A_inv=np.eye(D) / n, b=np.full(D, float(n)), n_updates=n, version=n).to_bytes()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("check_seconds", ["0", "0.02"])
def test_web_processes_never_see_a_torn_state(check_seconds: str) -> None:
    tool = Tool.objects.create(name="t", function_name="t", content_hash="x")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "toolrec_site.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "PYTHONPATH": str(settings.BASE_DIR),
    }
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, "8", check_seconds], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    vector = np.ones(384, dtype=np.float32).tobytes()
    time.sleep(1.0)
    published, deadline = 0, time.monotonic() + 5
    while time.monotonic() < deadline:
        published += 1
        # What the learner does: memory rows first, then the state that counts them, in one transaction.
        from django.db import transaction

        with transaction.atomic():
            MemoryEntry.objects.bulk_create([MemoryEntry(tool=tool, vector=vector)])
            LearningState.objects.create(bandit=_state(published))
    results = []
    for reader in readers:
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err.decode()[-2000:]
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    assert published > 50
    for result in results:
        assert result["reads"] > 100
        assert result["last"] == published  # publishing stopped 2 s before the readers did
