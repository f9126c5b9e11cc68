from __future__ import annotations

from django.db import models


class ApiKey(models.Model):
    """One key per agent or application. Only a SHA-256 of the key is stored."""

    name = models.CharField(max_length=100, help_text="The agent or application using this key.")
    prefix = models.CharField(max_length=12, help_text="The key's first characters, to recognise it.")
    # Authentication looks a key up by its hash on every API request: unique index.
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"
