"""The candidates of a request: its query texts embedded (through the cache), retrieval
over the snapshot, and the tools that similar past requests used (learned recall).

`retrieve` is also what `evaluate_retrieval` runs, so the benchmark measures what is served.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.conf import settings

from recommender.engine.conversation import previous_user_texts
from recommender.engine.memory import ContextMemory
from recommender.engine.policy import PolicyConfig
from recommender.engine.retrieval import query_roles
from recommender.engine.types import BoolArray, Candidates, ConversationContext, FloatArray, IntArray, ToolFilter
from recommender.indexing.embedders import embed_cached
from recommender.indexing.snapshots import LoadedSnapshot
from recommender.learning.state import LearnedState


def embed_queries(
    context: ConversationContext, messages: list[dict[str, Any]], model_name: str | None = None
) -> FloatArray:
    """Vectors for `context.queries()`, in order.

    The condensed context is not embedded as one long text: a transformer's cost grows
    with the square of the length. It is the normalised mean of the vectors of the recent user turns and
    the last message; each earlier turn was the last message of an earlier request of the
    conversation, so its vector usually comes from the cache.
    """
    texts, roles = context.queries(), query_roles(context)
    direct = [t for t, role in zip(texts, roles) if role != "context"]
    history = previous_user_texts(messages) if "context" in roles else []
    vectors = embed_cached(direct + history, model_name=model_name)
    rows, direct_row = [], 0
    for role in roles:
        if role == "context":
            mean = np.vstack([vectors[len(direct) :], vectors[:1]]).mean(axis=0)
            rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        else:
            rows.append(vectors[direct_row])
            direct_row += 1
    return np.vstack(rows).astype(np.float32)


def retrieve(
    snapshot: LoadedSnapshot,
    context: ConversationContext,
    vectors: FloatArray,
    *,
    k: int,
    tool_filter: ToolFilter | None = None,
    learned_tool_ids: IntArray | None = None,
    visible: BoolArray | None = None,
    pinned_rows: IntArray | None = None,
) -> Candidates:
    """Candidates for a read conversation whose query texts are embedded.

    `visible` (the rows the key may see, `recommender.serving.visibility`) applies before
    anything is scored. `learned_tool_ids` (tools similar past requests used) join the
    candidates even when retrieval ranks them below the cut; the filters still apply to
    them. `pinned_rows` (visible by construction) join whatever the request's filter says."""
    allowed = snapshot.index.mask(tool_filter) if tool_filter is not None else None
    if visible is not None:
        allowed = visible if allowed is None else allowed & visible
    keep = snapshot.rows_of(learned_tool_ids) if learned_tool_ids is not None else None
    if pinned_rows is not None and pinned_rows.size:
        keep = pinned_rows if keep is None else np.union1d(keep, pinned_rows)
        if allowed is not None:
            allowed = allowed.copy()
            allowed[pinned_rows] = True
    return snapshot.index.search(
        context, vectors, n_candidates=max(settings.RECOMMEND_CANDIDATES, k), allowed=allowed, keep_rows=keep
    )


def serving_memory(state: LearnedState | None, query_vector: FloatArray, model: str) -> ContextMemory | None:
    """The memory of past requests if it can answer this one (it holds contexts of the
    query's embedding model), else None: one check for learned recall and for the votes."""
    if state is None or not state.memory.serves(query_vector, model):
        return None
    return state.memory


def learned_candidates(memory: ContextMemory | None, config: PolicyConfig, query_vector: FloatArray) -> IntArray | None:
    """Tools whose past contexts resemble this request, for the policies that learn (the
    semantic policy stays retrieval alone: it is the baseline the others are measured on)."""
    if memory is None or config.name == "semantic" or settings.MEMORY_CANDIDATES == 0:
        return None
    return memory.similar_tools(query_vector, settings.MEMORY_CANDIDATES)
