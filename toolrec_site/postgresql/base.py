"""Django's PostgreSQL backend (settings.py selects it for every postgres:// URL), with one
addition: a thread serving a request does not start connecting in the last second before
its database deadline, or after it (toolrec_site/db_deadline.py).

The deadline's watchdog can cut a connection that is waiting for an answer, not one that
is still being made; connecting to an unanswering server waits `connect_timeout` (2 s, libpq's
least). A request whose kept connection was cut at its deadline and then replaced (the
holders' checks close a broken connection) waited both: 3 s + 2 s. Refusing to connect so
late bounds every API request's wait on the database at the deadline plus one second.
"""

from __future__ import annotations

import time
from typing import Any

from django.db.backends.postgresql import base

from toolrec_site.db_deadline import request_deadline

LAST_CONNECT_MARGIN_SECONDS = 1.0


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        due = request_deadline()
        if due is not None and time.monotonic() > due - LAST_CONNECT_MARGIN_SECONDS:
            raise self.Database.OperationalError(
                "not connecting to the database: the request is at its deadline (DB_REQUEST_DEADLINE_SECONDS)"
            )
        return super().get_new_connection(conn_params)
