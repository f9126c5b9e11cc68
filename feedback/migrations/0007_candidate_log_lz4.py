# The candidate log is TOASTed (6-22 KB of float32 features per recommendation). PostgreSQL's
# default compression, pglz, cost its server 0.54 ms of CPU per insert of a 6 KB log and 1.14 ms
# of a 22 KB one (a shadowed request logs every candidate); lz4 costs 0.26 and 0.33 ms and
# stores the same size (15.9 MB against 15.5 MB for 1,800 real logs). Measured on the
# 2-core bench VM. New rows only: existing ones keep pglz, and both read back the same.
# A server built without lz4 (rare: PostgreSQL 14+ packages ship it) keeps pglz.

import logging

from django.db import migrations

log = logging.getLogger(__name__)


def lz4_set(apps, schema_editor):
    _compression_set(schema_editor, "lz4")


def pglz_set(apps, schema_editor):
    _compression_set(schema_editor, "pglz")


def _compression_set(schema_editor, method):
    connection = schema_editor.connection
    if connection.vendor != "postgresql" or connection.pg_version < 140000:
        return
    from django.db import DatabaseError, transaction

    try:
        with transaction.atomic(using=connection.alias):
            schema_editor.execute(
                f"ALTER TABLE feedback_recommendation ALTER COLUMN candidate_log SET COMPRESSION {method}"
            )
    except DatabaseError:
        log.warning("PostgreSQL has no %s compression; the candidate log keeps the default", method)


class Migration(migrations.Migration):
    dependencies = [("feedback", "0006_shadows_ranked_by_a_worker")]

    operations = [migrations.RunPython(lz4_set, pglz_set)]
