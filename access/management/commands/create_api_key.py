from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from access.models import Scope, Tenant
from access.services import api_key_create
from toolrec_site.errors import ToolrecError


class Command(BaseCommand):
    help = "Create an API key for an agent and print it (it is stored hashed, shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The agent or application the key is for.")
        parser.add_argument(
            "--tenant", default="default", help="The tenant (project) the key belongs to; created if new."
        )
        parser.add_argument(
            "--scopes",
            default="recommend,feedback",
            help=f"Comma-separated, of: {', '.join(Scope.values)} (default: recommend,feedback).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        tenant, _ = Tenant.objects.get_or_create(name=options["tenant"])
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        try:
            _, raw_key = api_key_create(name=options["name"], tenant=tenant, scopes=scopes)
        except ToolrecError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(raw_key)
