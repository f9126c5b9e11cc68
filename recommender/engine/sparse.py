"""BM25 keyword scores over tool documents (bm25s builds and stores the index).

bm25s precomputes every (document, term) BM25 contribution into a CSC matrix; a query's
scores are the sum of its terms' columns. We score with one ``np.bincount`` over the
concatenated columns instead of bm25s' per-term ``np.add.at`` loop: same numbers, a few
times faster, and it returns the score of every document, which fusion needs.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence

import bm25s
import numpy as np

from recommender.engine.types import FloatArray

_PARAMS_FILE = "sparse.json"


class SparseIndex:
    """BM25 over pre-tokenised documents; ``scores`` gives one float per document."""

    def __init__(
        self,
        n_docs: int,
        vocab: dict[str, int],
        data: FloatArray,
        indices: np.ndarray,
        indptr: np.ndarray,
    ) -> None:
        self.n_docs = n_docs
        self.vocab = vocab
        self._data = data
        self._indices = indices
        self._indptr = indptr

    @classmethod
    def build(cls, documents: Sequence[Sequence[str]], *, k1: float, b: float) -> SparseIndex:
        n_docs = len(documents)
        if not any(documents):  # bm25s cannot index an empty vocabulary
            return cls(n_docs, {}, np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(1, np.int64))
        bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        bm25.index([list(doc) for doc in documents], show_progress=False)
        scores = bm25.scores
        vocab = {str(t): int(i) for t, i in bm25.vocab_dict.items() if t}
        return cls(
            n_docs,
            vocab,
            np.asarray(scores["data"], dtype=np.float32),
            np.asarray(scores["indices"]),
            np.asarray(scores["indptr"], dtype=np.int64),
        )

    def term_ids(self, tokens: Sequence[str]) -> np.ndarray:
        """Vocabulary ids of the distinct known tokens (a repeated query word counts once)."""
        n_terms = self._indptr.shape[0] - 1
        ids = {self.vocab[t] for t in tokens if t in self.vocab}
        return np.fromiter((i for i in ids if i < n_terms), dtype=np.int64)

    def scores(self, tokens: Sequence[str]) -> FloatArray:
        """BM25 score of every document for the query tokens (zeros when nothing matches)."""
        ids = self.term_ids(tokens)
        if ids.size == 0:
            return np.zeros(self.n_docs, dtype=np.float32)
        positions = self._positions(ids)
        summed = np.bincount(self._indices[positions], weights=self._data[positions], minlength=self.n_docs)
        return summed.astype(np.float32)

    def _positions(self, term_ids: np.ndarray) -> np.ndarray:
        """Positions in the CSC arrays of the given terms' columns, term after term."""
        starts, ends = self._indptr[term_ids], self._indptr[term_ids + 1]
        return np.concatenate([np.arange(s, e) for s, e in zip(starts.tolist(), ends.tolist(), strict=True)])

    def save(self, directory: pathlib.Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "bm25_data.npy", self._data, allow_pickle=False)
        np.save(directory / "bm25_indices.npy", self._indices, allow_pickle=False)
        np.save(directory / "bm25_indptr.npy", self._indptr, allow_pickle=False)
        (directory / _PARAMS_FILE).write_text(
            json.dumps({"n_docs": self.n_docs, "vocab": self.vocab}), encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: pathlib.Path) -> SparseIndex:
        params = json.loads((directory / _PARAMS_FILE).read_text(encoding="utf-8"))
        return cls(
            int(params["n_docs"]),
            {str(t): int(i) for t, i in params["vocab"].items()},
            np.load(directory / "bm25_data.npy", allow_pickle=False),
            np.load(directory / "bm25_indices.npy", allow_pickle=False),
            np.load(directory / "bm25_indptr.npy", allow_pickle=False),
        )
