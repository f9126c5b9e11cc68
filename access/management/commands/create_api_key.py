from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from access.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for an agent and print it (it is stored hashed, shown once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The agent or application the key is for.")

    def handle(self, *args: Any, **options: Any) -> None:
        _, raw_key = api_key_create(name=options["name"])
        self.stdout.write(raw_key)
