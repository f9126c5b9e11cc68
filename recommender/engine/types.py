"""Value types shared by the engine modules and the service that feeds them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def find_sorted(sorted_ids: npt.NDArray[np.integer], ids: npt.ArrayLike) -> tuple[IntArray, BoolArray]:
    """Where each of `ids` sits in the ascending `sorted_ids`, and whether it is there at
    all (positions of absent ids are clipped into range: read them only where found)."""
    wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
    if not len(sorted_ids):
        return np.zeros(wanted.shape[0], dtype=np.int64), np.zeros(wanted.shape[0], dtype=np.bool_)
    at = np.minimum(np.searchsorted(sorted_ids, wanted), len(sorted_ids) - 1).astype(np.int64)
    return at, sorted_ids[at] == wanted


@dataclass(frozen=True)
class ToolDoc:
    """One tool as the engine sees it: everything retrieval may read."""

    # "<namespace>/<name>": unique among the tools one request may see, not within a snapshot
    # (two tenants may each own "ns/name"; the caller's mask keeps one of them).
    key: str
    name: str
    description: str
    parameters: Mapping[str, Any] | None = None  # JSON schema object
    category: str = ""
    tags: tuple[str, ...] = ()
    family: str = ""  # the API / MCP server / toolkit the tool belongs to, "" if none
    namespace: str = "default"


@dataclass(frozen=True)
class ConversationContext:
    """What the recommender reads out of an OpenAI-style message list."""

    last_user_message: str
    context: str  # condensed recent conversation, newest last
    called_tools: tuple[str, ...] = ()  # function names already called, in order
    has_error: bool = False
    has_code: bool = False
    message_count: int = 0
    sub_queries: tuple[str, ...] = ()  # the separate needs of a multi-part request

    def queries(self) -> list[str]:
        """The texts to embed, in a fixed order: last message, sub-queries, context."""
        texts = [self.last_user_message, *self.sub_queries]
        if self.context and self.context != self.last_user_message:
            texts.append(self.context)
        return [t for t in texts if t]


@dataclass(frozen=True)
class ToolFilter:
    """Restrictions on which tools may be recommended. ``None`` means no restriction."""

    namespaces: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    tags: frozenset[str] | None = None  # any of these tags
    include: frozenset[str] | None = None  # only these tool keys or names
    exclude: frozenset[str] = field(default_factory=frozenset)  # never these keys or names

    @property
    def is_empty(self) -> bool:
        return (
            self.namespaces is None
            and self.categories is None
            and self.tags is None
            and self.include is None
            and not self.exclude
        )


@dataclass(frozen=True)
class Candidates:
    """Retrieval output: rows of the index, best first, with the scores behind the order."""

    rows: IntArray  # positions in the index (0..n-1)
    dense: FloatArray  # best cosine similarity over the queries
    sparse: FloatArray  # BM25 score (0 where the tool had no keyword hit)
    fused: FloatArray  # the retrieval score the rows are sorted by (descending)

    def __len__(self) -> int:
        return int(self.rows.shape[0])
