"""Votes of similar past contexts that led to a tool use.

Each stored row is the (L2-normalised) query vector of a past context and the integer id of
a tool the agent then called. For a new request, a candidate tool earns votes from the k
most similar stored contexts that used a candidate tool, each weighted by
``((sim - floor) / (1 - floor)) ** power`` (0 below the floor, 1 for an identical context).
This is what lets the ranker map a new phrasing to the tools past phrasings needed, even when
neither the tool text nor BM25 connects them.

Why the search is restricted to the candidates' rows: an exact scan of 50k x 384 float32
vectors is ~77 MB of memory traffic per request, several times the engine's budget for
votes (bench/memory_votes.py measures both). Votes are only ever read for the candidates, so we scan the
rows whose tool is a candidate (one contiguous block per tool, at most the
``per_tool_limit`` most recent rows of each): still exact for the question asked, typically
a few thousand rows. The difference from a global k-NN is deliberate: a neighbour that used
a tool retrieval did not return cannot be voted for anyway, and its slot goes to the next
neighbour whose tool can be recommended.

Votes can only rank the candidates retrieval returned. ``similar_tools`` widens them: each
tool's stored contexts (the newest ``per_tool_limit``) are summarised by their normalised
mean, and the tools whose mean is nearest the query join the candidates, so a tool that
agents keep calling for requests its description does not match is learned into recall, not
only into order. One row per used tool: cheaper to scan than the contexts themselves, and in
`bench/learning_ceiling.py` the nearest 10 means found the same tools as the tools of the
nearest 20 contexts (expected hit rate 80.8 against 80.9, and 79.3 without either).

The memory is mutable (``add``) and meant to be built by the learner and shipped as bytes;
``votes`` only reads, so one loaded instance can serve concurrent requests (but not while
another thread calls ``add`` on it).
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import scipy.sparse as sparse

from recommender.engine.types import FloatArray, IntArray

_FORMAT = 2  # 2 added the embedding model's name; format 1 reads as an unnamed model


def _normalise(vectors: npt.ArrayLike) -> FloatArray:
    v = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class ContextMemory:
    """A bounded FIFO of (context vector, used tool id), stored grouped by tool.

    Rows are kept sorted by (tool id, insertion number), so the contexts of one tool are one
    contiguous block, newest last: a request reads a slice per candidate tool instead of
    gathering scattered rows (a 4 MB gather costs more here than the dot products). ``add``
    re-sorts, O(n log n) plus a copy of the vectors: add in batches, as the learner does.
    """

    def __init__(
        self,
        dim: int,
        max_size: int = 50_000,
        *,
        floor: float = 0.3,
        power: float = 2.0,
        per_tool_limit: int = 256,
        model: str = "",
    ) -> None:
        if dim < 1 or max_size < 1 or per_tool_limit < 1:
            raise ValueError("dim, max_size and per_tool_limit must be >= 1")
        if not 0.0 <= floor < 1.0 or power <= 0:
            raise ValueError("floor must be in [0, 1) and power > 0")
        self.dim = dim
        self.model = model  # the embedding model of the stored contexts; "" when not known
        self.max_size = max_size
        self.floor = floor
        self.power = power
        self.per_tool_limit = per_tool_limit
        self._vectors: FloatArray = np.empty((0, dim), dtype=np.float32)
        self._tool_ids: IntArray = np.empty(0, dtype=np.int64)  # sorted
        self._seq: IntArray = np.empty(0, dtype=np.int64)  # insertion number, for FIFO
        self._summary_tools: IntArray = np.empty(0, dtype=np.int64)  # each stored tool once, sorted
        self._summaries: FloatArray = np.empty((0, dim), dtype=np.float32)  # their normalised mean context

    def __len__(self) -> int:
        return int(self._tool_ids.shape[0])

    def serves(self, query_vector: npt.ArrayLike, model: str = "") -> bool:
        """Whether this memory can answer for a query embedded by `model`: it holds contexts
        of that model (not so after a change of embedding model, until new contexts arrive;
        vectors of two models are not comparable even when their dimensions agree). An
        unnamed model on either side is judged by the dimension alone."""
        same_model = not (model and self.model) or model == self.model
        return len(self) > 0 and same_model and np.shape(query_vector)[-1] == self.dim

    def add(self, vectors: npt.ArrayLike, tool_ids: npt.ArrayLike) -> None:
        """Append contexts (normalised here) and the tool each led to; drop the oldest."""
        v = _normalise(vectors)
        ids = np.asarray(tool_ids, dtype=np.int64).reshape(-1)
        if v.shape != (ids.shape[0], self.dim):
            raise ValueError(f"vectors must be (m, {self.dim}) with one tool id per row")
        if ids.size == 0:
            return
        first = int(self._seq.max()) + 1 if len(self) else 0
        seq = np.concatenate([self._seq, np.arange(first, first + ids.shape[0])])
        tools = np.concatenate([self._tool_ids, ids])
        keep = np.flatnonzero(seq >= int(seq.max()) - self.max_size + 1)  # the newest rows
        order = keep[np.lexsort((seq[keep], tools[keep]))]
        all_vectors = np.concatenate([self._vectors, v])
        self._vectors = all_vectors[order]
        self._tool_ids = tools[order]
        self._seq = seq[order]
        self._summarise()

    def _summarise(self) -> None:
        """Per stored tool, the normalised sum of its newest per_tool_limit contexts.

        One sparse (tools x rows) indicator product: scipy sums the blocks in one pass,
        where numpy's ``add.reduceat`` over the row blocks was an order of magnitude slower
        (bench/results/design_notes.json)."""
        tools = np.unique(self._tool_ids)
        if not tools.size:
            self._summary_tools, self._summaries = tools, np.empty((0, self.dim), dtype=np.float32)
            return
        _, starts, ends = self._blocks(tools)
        lengths = np.subtract(ends, starts)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        rows = np.repeat(np.asarray(starts, dtype=np.int64) - indptr[:-1], lengths) + np.arange(indptr[-1])
        indicator = sparse.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), rows, indptr), shape=(tools.size, len(self))
        )
        self._summaries = _normalise(indicator @ self._vectors)
        self._summary_tools = tools

    def _blocks(self, tools: IntArray) -> tuple[list[int], list[int], list[int]]:
        """For the (unique) tools with stored rows: their index, first and end row, keeping
        at most the newest per_tool_limit rows of each."""
        ends = np.searchsorted(self._tool_ids, tools, side="right")
        starts = np.maximum(np.searchsorted(self._tool_ids, tools, side="left"), ends - self.per_tool_limit)
        present = np.flatnonzero(ends > starts)
        return present.tolist(), starts[present].tolist(), ends[present].tolist()

    def votes(self, query_vector: npt.ArrayLike, candidate_tool_ids: npt.ArrayLike, k: int = 20) -> FloatArray:
        """Per candidate, the summed weights of the k nearest stored contexts that used it."""
        cands = np.asarray(candidate_tool_ids, dtype=np.int64).reshape(-1)
        out = np.zeros(cands.shape[0], dtype=np.float32)
        if cands.size == 0 or len(self) == 0 or k < 1:
            return out
        q = _normalise(query_vector)[0]
        if q.shape[0] != self.dim:
            raise ValueError(f"query vector must have dimension {self.dim}")
        tools, inverse = np.unique(cands, return_inverse=True)
        present, starts, ends = self._blocks(tools)
        if not present:
            return out
        # one contiguous slice per candidate tool: no gather copy
        sims = np.concatenate([self._vectors[s:e] @ q for s, e in zip(starts, ends)])
        owner = np.repeat(np.asarray(present, dtype=np.int64), np.subtract(ends, starts))
        if sims.shape[0] > k:
            top = np.argpartition(sims, -k)[-k:]
            sims, owner = sims[top], owner[top]
        per_tool = np.bincount(owner, weights=self._weight(sims), minlength=tools.shape[0])
        out[:] = per_tool[inverse.reshape(-1)]
        return out

    def similar_tools(self, query_vector: npt.ArrayLike, n: int = 10) -> IntArray:
        """The (up to) n stored tools whose contexts are most like the query, best first;
        only tools above the vote floor, so an unrelated request adds nothing."""
        if n < 1 or not self._summary_tools.size:
            return np.empty(0, dtype=np.int64)
        q = _normalise(query_vector)[0]
        if q.shape[0] != self.dim:
            raise ValueError(f"query vector must have dimension {self.dim}")
        sims = self._summaries @ q
        top = np.flatnonzero(sims > self.floor)
        if top.size > n:
            top = top[np.argpartition(-sims[top], n - 1)[:n]]
        top = top[np.argsort(-sims[top], kind="stable")]
        return self._summary_tools[top]

    def _weight(self, sims: FloatArray) -> npt.NDArray[np.float64]:
        scaled = np.maximum(sims.astype(np.float64) - self.floor, 0.0) / (1.0 - self.floor)
        out: npt.NDArray[np.float64] = np.minimum(scaled, 1.0) ** self.power
        return out

    def nearest(self, query_vector: npt.ArrayLike, k: int = 5) -> tuple[FloatArray, IntArray]:
        """The k most similar stored contexts overall (exact full scan; for explanations
        and tests, not the request path): their similarities and tool ids, best first."""
        if len(self) == 0 or k < 1:
            return np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
        sims = self._vectors @ _normalise(query_vector)[0]
        k = min(k, sims.shape[0])
        top = np.argpartition(sims, -k)[-k:]
        top = top[np.argsort(-sims[top], kind="stable")]
        return sims[top].astype(np.float32), self._tool_ids[top]

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        params = np.array([self.floor, self.power], dtype=np.float64)
        sizes = np.array([_FORMAT, self.dim, self.max_size, self.per_tool_limit], dtype=np.int64)
        np.savez(
            buf,
            sizes=sizes,
            params=params,
            model=np.array(self.model),
            vectors=self._vectors,
            tool_ids=self._tool_ids,
            seq=self._seq,
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ContextMemory:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            fmt, dim, max_size, per_tool_limit = (int(x) for x in z["sizes"])
            if fmt not in (1, _FORMAT):
                raise ValueError(f"unknown context memory format {fmt}")
            floor, power = (float(x) for x in z["params"])
            model = str(z["model"]) if fmt >= 2 else ""
            memory = cls(dim, max_size, floor=floor, power=power, per_tool_limit=per_tool_limit, model=model)
            memory._vectors = z["vectors"].astype(np.float32)
            memory._tool_ids = z["tool_ids"].astype(np.int64)
            memory._seq = z["seq"].astype(np.int64)
        memory._summarise()
        return memory
