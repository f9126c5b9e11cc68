"""Function names: the name a model calls a tool by.

Providers accept only ``^[a-zA-Z0-9_-]{1,64}$`` (OpenAI, Anthropic), and a model can only
say the name back, so the name must pick out exactly one tool: two namespaces may hold
``search``, and two long names may agree on their first 64 characters. Each tool's name is
chosen once, when it is created, and stored under a unique index: the first tool keeps its
cleaned name, a later one that would collide gets a short hash of its key appended. Stored
rather than derived from the catalog at serving time, so adding a tool never renames
another (an agent may still hold an older answer and call by the name it got).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator

MAX_LENGTH = 64
VALID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_NOT_FUNCTION_CHARS = re.compile(r"[^a-zA-Z0-9_-]+")
_HASH_CHARS = 8


def cleaned(name: str) -> str:
    """The name with every run of characters a provider refuses turned into one ``_``."""
    return _NOT_FUNCTION_CHARS.sub("_", name).strip("_")[:MAX_LENGTH] or "tool"


def candidates(key: str, name: str) -> Iterator[str]:
    """Names to try for the tool with this key, best first: the cleaned name, then the
    cleaned name cut short with a hash of the key (then of the key and a counter, should
    even that be taken)."""
    base = cleaned(name)
    yield base
    stem = base[: MAX_LENGTH - _HASH_CHARS - 1].rstrip("_-") or "tool"
    for attempt in range(1000):
        salted = key if attempt == 0 else f"{key}#{attempt}"
        yield f"{stem}_{hashlib.sha256(salted.encode()).hexdigest()[:_HASH_CHARS]}"
    raise RuntimeError(f"no free function name for {key!r}")  # pragma: no cover


def assign(new: Iterable[tuple[str, str]], taken: set[str]) -> list[str]:
    """Function names for the new tools ``(key, name)``, none in `taken` nor repeated;
    `taken` grows by the names handed out."""
    names = []
    for key, name in new:
        chosen = next(c for c in candidates(key, name) if c not in taken)
        taken.add(chosen)
        names.append(chosen)
    return names
