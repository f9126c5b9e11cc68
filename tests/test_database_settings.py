"""The PostgreSQL session settings the service's connections carry."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection

from toolrec_site.database_settings import database_settings


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL)")
@pytest.mark.django_db
def test_connections_run_without_the_jit_compiler() -> None:
    """JIT compiles a short query whose statistics are stale, at more cost than the query."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] != "0"  # the other options of the same string still apply


def test_db_jit_turns_it_back_on(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u@127.0.0.1:5432/db")
    assert "-c jit=off" in database_settings(tmp_path)["default"]["OPTIONS"]["options"]
    monkeypatch.setenv("DB_JIT", "on")
    assert "-c jit=on" in database_settings(tmp_path)["default"]["OPTIONS"]["options"]
