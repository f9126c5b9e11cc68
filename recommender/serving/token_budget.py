"""Counting what tool definitions cost a model, offline, and fitting a slate in a budget.

The count is tiktoken's `o200k_base` (the GPT-4o / GPT-5 / o-series encoding) over the
compact JSON of each definition in the answer's format. Providers wrap tools in their own
prompt template, so this is the definitions' own cost, not the exact bill; the same count
for every format keeps the budget comparable across formats.

tiktoken downloads encodings on first use. LiteLLM ships the o200k_base file in its package
(`litellm_core_utils/tokenizers`, named by the SHA-1 of the download URL, as tiktoken's
cache expects), so pointing `TIKTOKEN_CACHE_DIR` there counts with no network and without
importing LiteLLM (4 s). A `TIKTOKEN_CACHE_DIR` set by the operator wins.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

ENCODING = "o200k_base"
_lock = threading.Lock()


def _litellm_tokenizers_dir() -> str | None:
    spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "litellm_core_utils" / "tokenizers"
    return str(folder) if folder.is_dir() else None


@lru_cache(maxsize=1)
def _encoding() -> Any:
    with _lock:
        if not os.environ.get("TIKTOKEN_CACHE_DIR"):
            folder = _litellm_tokenizers_dir()
            if folder is not None:
                os.environ["TIKTOKEN_CACHE_DIR"] = folder
        import tiktoken

        return tiktoken.get_encoding(ENCODING)


@lru_cache(maxsize=4096)  # popular definitions repeat across answers; ~2 KB a key
def text_tokens(text: str) -> int:
    return len(_encoding().encode(text, disallowed_special=()))


def definition_tokens(entry: dict[str, Any]) -> int:
    """Tokens of one tools entry, as compact JSON (what an SDK sends)."""
    return text_tokens(json.dumps(entry, ensure_ascii=False, separators=(",", ":")))


def fit_in_budget(costs: Sequence[int], budget: int | None) -> list[int]:
    """Positions of the slate kept under `budget` tokens: in rank order, a tool that does not
    fit in what is left is skipped and the next ones still get their chance, so one huge
    schema does not empty the answer (the largest slate that fits, best ranked first)."""
    if budget is None:
        return list(range(len(costs)))
    kept, left = [], budget
    for position, cost in enumerate(costs):
        if cost <= left:
            kept.append(position)
            left -= cost
    return kept
