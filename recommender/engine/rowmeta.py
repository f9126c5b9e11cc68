"""Per-row tool metadata kept beside the vectors: filter masks and family groups.

Filters become boolean masks over rows with vectorised lookups (integer codes per
namespace/category/family, an inverted list per tag), so a filter costs O(rows) numpy
work, not a Python loop over tools. Categories and tags compare case-insensitively
("Finance" == "finance"); namespaces, keys and names are identifiers and compare exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.engine.types import BoolArray, FloatArray, IntArray, ToolDoc, ToolFilter


def _codes(values: Sequence[str]) -> tuple[dict[str, int], IntArray]:
    vocabulary: dict[str, int] = {}
    codes = np.fromiter(
        (vocabulary.setdefault(v, len(vocabulary)) for v in values),
        dtype=np.int64,
        count=len(values),
    )
    return vocabulary, codes


@dataclass(frozen=True)
class RowMeta:
    keys: list[str]
    names: list[str]
    families: list[str]
    namespaces: list[str]
    categories: list[str]
    tags: list[list[str]]

    @classmethod
    def from_docs(cls, docs: Sequence[ToolDoc]) -> RowMeta:
        return cls(
            keys=[d.key for d in docs],
            names=[d.name for d in docs],
            families=[d.family for d in docs],
            namespaces=[d.namespace for d in docs],
            categories=[d.category for d in docs],
            tags=[list(d.tags) for d in docs],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "names": self.names,
            "families": self.families,
            "namespaces": self.namespaces,
            "categories": self.categories,
            "tags": self.tags,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RowMeta:
        return cls(
            keys=[str(v) for v in data["keys"]],
            names=[str(v) for v in data["names"]],
            families=[str(v) for v in data["families"]],
            namespaces=[str(v) for v in data["namespaces"]],
            categories=[str(v) for v in data["categories"]],
            tags=[[str(t) for t in row] for row in data["tags"]],
        )


class RowLookup:
    """Vectorised views of RowMeta for filtering and family grouping."""

    def __init__(self, meta: RowMeta) -> None:
        self.n = len(meta.keys)
        # A key may repeat across tenants: filters match every row of it (a tenant mask then
        # keeps the one the caller sees); row_by_key keeps the first, for lookups by key.
        self._rows_by_key: dict[str, list[int]] = {}
        for i, key in enumerate(meta.keys):
            self._rows_by_key.setdefault(key, []).append(i)
        self.row_by_key = {key: rows[0] for key, rows in self._rows_by_key.items()}
        self._rows_by_name: dict[str, list[int]] = {}
        for i, name in enumerate(meta.names):
            self._rows_by_name.setdefault(name, []).append(i)
        self._namespace_ids, self._namespace_codes = _codes(meta.namespaces)
        self._category_ids, self._category_codes = _codes([c.casefold() for c in meta.categories])
        self._rows_by_tag: dict[str, list[int]] = {}
        for i, tags in enumerate(meta.tags):
            for tag in {t.casefold() for t in tags}:
                self._rows_by_tag.setdefault(tag, []).append(i)
        # Family code per row, -1 for a tool that belongs to no family.
        family_ids, codes = _codes(meta.families)
        none_code = family_ids.get("")
        if none_code is not None:
            codes = np.where(codes == none_code, -1, codes)
        self.family_codes: IntArray = codes
        self.n_families = len(family_ids)

    def family_best(self, rows: IntArray, scores: FloatArray) -> FloatArray:
        """Per row, the best score among the rows of its family.

        A tool without a family is its own family (its own score), so a boost by this
        shifts family-less tools as much as the best endpoint of an API and only lifts
        siblings.
        """
        codes = self.family_codes[rows]
        best = scores.copy()
        in_family = codes >= 0
        if in_family.any():
            family_best = np.full(self.n_families, -np.inf, dtype=np.float32)
            np.maximum.at(family_best, codes[in_family], scores[in_family])
            best[in_family] = family_best[codes[in_family]]
        return best

    def _rows_matching(self, identifiers: Iterable[str]) -> IntArray:
        rows: list[int] = []
        for ident in identifiers:
            rows.extend(self._rows_by_key.get(ident, ()))
            rows.extend(self._rows_by_name.get(ident, ()))
        return np.asarray(rows, dtype=np.int64)

    def mask(self, flt: ToolFilter) -> BoolArray | None:
        if flt.is_empty:
            return None
        allowed = np.ones(self.n, dtype=np.bool_)
        if flt.namespaces is not None:
            wanted = [self._namespace_ids[v] for v in flt.namespaces if v in self._namespace_ids]
            allowed &= np.isin(self._namespace_codes, wanted)
        if flt.categories is not None:
            wanted = [self._category_ids[c] for c in {v.casefold() for v in flt.categories} if c in self._category_ids]
            allowed &= np.isin(self._category_codes, wanted)
        if flt.tags is not None:
            tagged = np.zeros(self.n, dtype=np.bool_)
            for tag in {t.casefold() for t in flt.tags}:
                tagged[self._rows_by_tag.get(tag, [])] = True
            allowed &= tagged
        if flt.include is not None:
            included = np.zeros(self.n, dtype=np.bool_)
            included[self._rows_matching(flt.include)] = True
            allowed &= included
        if flt.exclude:
            allowed[self._rows_matching(flt.exclude)] = False
        return allowed
