from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from access.models import Tenant
from catalog.importers import FORMATS, parse_tools
from catalog.models import Tool
from catalog.services import tool_import


class Command(BaseCommand):
    help = "Import tools from OpenAI tools JSON, an MCP tools/list result or JSONL (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--format", default="auto", choices=FORMATS)
        parser.add_argument("--namespace", default="default")
        parser.add_argument(
            "--tenant", default="", help="Import as this tenant's own tools (by name); default: shared tools."
        )
        parser.add_argument("--no-rebuild", action="store_true", help="Do not schedule an index rebuild afterwards.")

    def handle(self, *args: Any, **options: Any) -> None:
        path: Path = options["path"]
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        tenant_id = None
        if options["tenant"]:
            tenant = Tenant.objects.filter(name=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"no tenant named {options['tenant']!r} (create it with create_api_key --tenant)")
            tenant_id = tenant.pk
        report = tool_import(
            records=parse_tools(text, options["format"], source=path.name),
            namespace=options["namespace"],
            schedule_rebuild=not options["no_rebuild"],
            tenant_id=tenant_id,
        )
        if report.created and connection.vendor == "postgresql":
            # Fresh planner statistics for the grown catalog: with stale ones (autovacuum off
            # or not yet run) PostgreSQL planned joins on it as full scans.
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {Tool._meta.db_table}")
        for rejection in report.rejected:
            self.stderr.write(f"rejected {path.name} {rejection.position}: {rejection.reason}")
        self.stdout.write(
            f"{path.name}: created {report.created}, updated {report.updated}, "
            f"unchanged {report.unchanged}, rejected {len(report.rejected)}"
        )
