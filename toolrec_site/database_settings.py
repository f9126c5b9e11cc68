"""The `DATABASES` setting, from DATABASE_URL and the DB_* variables (settings.py imports it;
kept apart so settings.py stays readable)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url

from toolrec_site.env import env_bool, env_int, env_str


def database_settings(var_dir: Path) -> dict[str, Any]:
    url = env_str("DATABASE_URL")
    if not url:
        var_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{var_dir / 'toolrec.sqlite3'}"
    default: dict[str, Any] = dict(
        dj_database_url.parse(
            url,
            conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
            # A kept connection the database dropped (a restart, a failover) is noticed and
            # replaced before a request uses it, instead of failing that request.
            conn_health_checks=True,
        )
    )
    if default["ENGINE"] == "django.db.backends.postgresql":
        default["ENGINE"] = "toolrec_site.postgresql"  # Django's, not connecting past a request's deadline
        default["OPTIONS"] = {**_postgresql_options(), **default.get("OPTIONS", {})}
    elif default["ENGINE"] == "django.db.backends.sqlite3":
        # WAL lets the dev server read while a rebuild writes; the timeout waits out short locks.
        default["OPTIONS"] = {
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        }
    return {"default": default}


def _postgresql_options() -> dict[str, Any]:
    """Bounded waits on PostgreSQL (each a libpq option): connecting (refused or unanswered),
    a statement the server runs too long, and a connection whose packets are dropped (the
    kernel gives up on unacknowledged data after tcp_user_timeout; keepalives find a dead
    idle one). Workers running long statements can raise DB_STATEMENT_TIMEOUT_MS. A session
    left idle in a transaction (its process frozen or cut off) is ended by the server after
    DB_IDLE_IN_TRANSACTION_TIMEOUT_MS: the learner's transaction holds its advisory lock, and
    a stranded one stopped all learning. What none of these covers, a server that takes the
    bytes and never answers, the request deadline does (toolrec_site/db_deadline.py).

    JIT compilation is off unless DB_JIT=on: every query here is short (an index lookup, a
    small batch), and PostgreSQL compiles one only when its estimated cost is high, which
    for these queries means the statistics are stale (a table grown since the last ANALYZE).
    Then the compiling costs more than the query: seen here, 7 ms of JIT on a shadow run's
    served-slate query that takes 4.6 ms with fresh statistics."""
    statement_ms = env_int("DB_STATEMENT_TIMEOUT_MS", 15_000, minimum=0)
    idle_ms = env_int("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", 60_000, minimum=0)
    jit = "on" if env_bool("DB_JIT") else "off"
    return {
        "connect_timeout": env_int("DB_CONNECT_TIMEOUT", 2, minimum=1),
        "options": f"-c statement_timeout={statement_ms} -c idle_in_transaction_session_timeout={idle_ms} -c jit={jit}",
        "tcp_user_timeout": env_int("DB_TCP_USER_TIMEOUT_MS", 3_000, minimum=0),
        "keepalives": 1,
        # Probing after 2 s idle (one small packet per connection) finds a dropped connection
        # within about 5 s even while a query waits for its answer; tcp_user_timeout caps it.
        "keepalives_idle": 2,
        "keepalives_interval": 1,
        "keepalives_count": 2,
    }
