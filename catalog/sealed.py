"""Secrets kept encrypted at rest: the headers and environment an MCP server needs
(bearer tokens, API keys). Fernet (cryptography, already installed with the MCP SDK) with a
key derived from SECRET_KEY, or from MCP_SECRETS_KEY when set, so rotating SECRET_KEY need
not lose them. A database dump or the admin never shows them in clear."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class SecretUnreadable(Exception):
    """The sealed value was made with another key (SECRET_KEY or MCP_SECRETS_KEY changed)."""


def _fernet() -> Fernet:
    secret = settings.MCP_SECRETS_KEY or settings.SECRET_KEY
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(f"toolrec-mcp-secrets:{secret}".encode()).digest()))


def seal(value: dict[str, Any]) -> str:
    return "" if not value else _fernet().encrypt(json.dumps(value, sort_keys=True).encode()).decode()


def unseal(token: str) -> dict[str, Any]:
    if not token:
        return {}
    try:
        value: dict[str, Any] = json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise SecretUnreadable("The stored secrets cannot be decrypted with this key; enter them again.") from exc
    return value
