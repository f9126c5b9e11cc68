"""Hybrid retrieval: candidates, fusion, families, filters, ANN choice, persistence."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import pytest

from recommender.engine.ann import AnnConfig, DenseIndex
from recommender.engine.retrieval import RetrievalConfig, RetrievalIndex
from recommender.engine.text import embedding_text, text_hash
from recommender.engine.types import ConversationContext, FloatArray, ToolDoc, ToolFilter

DIM = 16
PLAIN = RetrievalConfig(hub_weight=0.0, family_boost=0.0, peak_exponent=0.0)


def _unit(rows: np.ndarray) -> FloatArray:
    rows = np.atleast_2d(rows).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _random_catalog(n: int, seed: int = 0) -> tuple[list[ToolDoc], FloatArray]:
    rng = np.random.default_rng(seed)
    docs = [
        ToolDoc(
            key=f"ns{i % 3}/tool_{i}",
            name=f"tool_{i}",
            description=f"does thing number {i}",
            category=("Finance", "Weather", "Sports")[i % 3],
            tags=("beta",) if i % 5 == 0 else (),
            family=f"api{i // 4}",
            namespace=f"ns{i % 3}",
        )
        for i in range(n)
    ]
    return docs, _unit(rng.normal(size=(n, DIM)))


def _ctx(text: str, *subs: str) -> ConversationContext:
    return ConversationContext(last_user_message=text, context=text, sub_queries=subs)


def test_the_tool_whose_vector_matches_the_query_comes_first() -> None:
    docs, vectors = _random_catalog(200)
    index = RetrievalIndex.build(docs, vectors, PLAIN)
    result = index.search(_ctx("zzz"), vectors[[17]], n_candidates=20)
    assert result.rows[0] == 17
    assert len(result) == 20
    assert np.all(np.diff(result.fused) <= 0)
    assert result.dense[0] == pytest.approx(1.0, abs=1e-5)


def test_a_keyword_match_is_found_even_when_the_vectors_disagree() -> None:
    docs, vectors = _random_catalog(200)
    docs[42] = dataclasses.replace(docs[42], name="getTideTimes", description="Tide tables for harbours")
    index = RetrievalIndex.build(docs, vectors, PLAIN)
    query = _unit(vectors[3] + 0.01)  # dense points elsewhere
    result = index.search(_ctx("When is high tide in the harbour?"), query, n_candidates=10)
    assert 42 in result.rows.tolist()
    assert result.sparse[result.rows.tolist().index(42)] > 0


def test_each_sub_query_retrieves_its_own_tool() -> None:
    rng = np.random.default_rng(1)
    vectors = _unit(rng.normal(size=(300, 64)))
    docs = [ToolDoc(key=f"t{i}", name=f"t{i}", description="x") for i in range(300)]
    # The whole request leans to the first need; each sub-query names one need.
    queries = np.concatenate([_unit(3 * vectors[10] + vectors[250]), vectors[[10]], vectors[[250]]])
    ctx = _ctx("book a table and order a taxi", "book a table", "order a taxi")
    with_subs = RetrievalIndex.build(docs, vectors, PLAIN).search(ctx, queries, n_candidates=3)
    assert {10, 250} <= set(with_subs.rows.tolist())
    without = RetrievalIndex.build(docs, vectors, dataclasses.replace(PLAIN, use_sub_queries=False))
    assert 250 not in without.search(ctx, queries, n_candidates=3).rows.tolist()


def test_a_family_boost_lifts_the_sibling_of_the_best_tool() -> None:
    basis = np.eye(DIM, dtype=np.float32)
    rng = np.random.default_rng(2)
    # best tool X (family F), an unrelated Z a bit closer than X's sibling X2, noise tools
    sims = {"X": 1.0, "Z": 0.8, "X2": 0.7}
    vectors = [_unit(s * basis[0] + np.sqrt(1 - s**2) * basis[i + 1])[0] for i, s in enumerate(sims.values())]
    noise = _unit(rng.normal(size=(40, DIM)) * np.r_[0.05, np.ones(DIM - 1)])
    docs = [
        ToolDoc(key="X", name="alpha", description="one", family="F"),
        ToolDoc(key="Z", name="beta", description="two"),
        ToolDoc(key="X2", name="gamma", description="three", family="F"),
        *[ToolDoc(key=f"n{i}", name=f"noise{i}", description="noise", family=f"G{i}") for i in range(40)],
    ]
    all_vectors = np.concatenate([np.stack(vectors), noise])
    query = basis[[0]]
    plain = RetrievalIndex.build(docs, all_vectors, PLAIN).search(_ctx("qqq"), query, n_candidates=3)
    assert plain.rows.tolist() == [0, 1, 2]
    boosted = RetrievalIndex.build(docs, all_vectors, dataclasses.replace(PLAIN, family_boost=1.0))
    assert boosted.search(_ctx("qqq"), query, n_candidates=3).rows.tolist() == [0, 2, 1]


def test_the_hubness_correction_prefers_a_distinct_tool_over_a_crowd_of_near_duplicates() -> None:
    rng = np.random.default_rng(3)
    basis = np.eye(DIM, dtype=np.float32)
    crowd = _unit(basis[0] + 0.05 * basis[1] + 0.01 * rng.normal(size=(10, DIM)))
    distinct = basis[[1]]
    others = _unit(rng.normal(size=(40, DIM)) * np.r_[0.0, 0.0, np.ones(DIM - 2)])
    vectors = np.concatenate([crowd, distinct, others])
    docs = [ToolDoc(key=f"t{i}", name=f"t{i}", description="x") for i in range(len(vectors))]
    query = _unit(basis[0] + basis[1])
    plain = RetrievalIndex.build(docs, vectors, PLAIN).search(_ctx("q"), query, n_candidates=11)
    assert plain.rows.tolist().index(10) == 10  # behind all ten near-duplicates
    corrected = RetrievalIndex.build(docs, vectors, dataclasses.replace(PLAIN, hub_weight=0.5))
    assert corrected.search(_ctx("q"), query, n_candidates=11).rows[0] == 10


def test_kept_rows_join_the_candidates_below_the_cut_and_obey_the_filter() -> None:
    docs, vectors = _random_catalog(200)
    index = RetrievalIndex.build(docs, vectors, PLAIN)
    plain = index.search(_ctx("zzz"), vectors[[17]], n_candidates=10)
    far = [int(r) for r in np.argsort(vectors @ vectors[17])[:3]]  # the least similar rows
    allowed = np.ones(200, dtype=np.bool_)
    allowed[far[2]] = False

    result = index.search(
        _ctx("zzz"), vectors[[17]], n_candidates=10, allowed=allowed, keep_rows=np.array([far[0], far[1], far[2], 999])
    )

    assert result.rows[:10].tolist() == plain.rows.tolist()
    assert sorted(result.rows[10:].tolist()) == sorted(far[:2])  # not the filtered row, not a bad one
    assert np.all(np.diff(result.fused) <= 0)
    assert result.dense[10:] == pytest.approx((vectors[result.rows[10:]] @ vectors[17]).tolist(), abs=1e-4)


def test_a_selective_filter_still_returns_k_allowed_tools() -> None:
    docs, vectors = _random_catalog(1000)
    index = RetrievalIndex.build(docs, vectors, RetrievalConfig())
    allowed = np.zeros(1000, dtype=np.bool_)
    allowed[[5, 500, 999]] = True
    result = index.search(_ctx("does thing"), vectors[[1]], n_candidates=3, allowed=allowed)
    assert sorted(result.rows.tolist()) == [5, 500, 999]
    assert len(index.search(_ctx("does thing"), vectors[[1]], n_candidates=10, allowed=allowed)) == 3


@pytest.mark.parametrize("exact_filter_max_rows", [0, 4096])
def test_hnsw_with_a_filter_returns_k_allowed_tools(exact_filter_max_rows: int) -> None:
    docs, vectors = _random_catalog(3000, seed=4)
    config = dataclasses.replace(
        RetrievalConfig(), ann=AnnConfig(flat_max_tools=1000, exact_filter_max_rows=exact_filter_max_rows)
    )
    index = RetrievalIndex.build(docs, vectors, config)
    assert index.ann_kind == "hnsw"
    rng = np.random.default_rng(5)
    allowed = np.zeros(3000, dtype=np.bool_)
    allowed[rng.choice(3000, size=25, replace=False)] = True
    result = index.search(_ctx("zzz"), vectors[[7]], n_candidates=20, allowed=allowed)
    assert len(result) == 20
    assert allowed[result.rows].all()


def test_the_flat_scan_ranks_as_the_exact_float32_scores_with_bias_and_filter() -> None:
    rng = np.random.default_rng(9)
    vectors = _unit(rng.normal(size=(2000, 384)))
    bias = rng.uniform(0.1, 0.35, size=2000).astype(np.float32)
    dense = DenseIndex.build(vectors, AnnConfig())
    allowed = rng.random(2000) < 0.3
    queries = _unit(rng.normal(size=(3, 384)))
    scores, rows = dense.search(queries, 50, allowed, bias)
    exact = queries @ vectors.T - bias
    exact[:, ~allowed] = -np.inf
    for j in range(3):
        expected = np.argsort(-exact[j])[:50]
        assert len(set(rows[j].tolist()) & set(expected.tolist())) >= 49  # fp16 may swap a tie at the cut
        np.testing.assert_allclose(scores[j], exact[j, rows[j]], atol=2e-3)
        assert allowed[rows[j]].all()


def test_a_small_catalog_uses_an_exact_flat_index() -> None:
    docs, vectors = _random_catalog(50)
    assert RetrievalIndex.build(docs, vectors).ann_kind == "flat"


def test_masks_filter_by_namespace_category_tag_include_and_exclude() -> None:
    docs, vectors = _random_catalog(30)
    index = RetrievalIndex.build(docs, vectors)
    assert index.mask(ToolFilter()) is None

    def rows(flt: ToolFilter) -> list[int]:
        mask = index.mask(flt)
        assert mask is not None
        return np.flatnonzero(mask).tolist()

    assert rows(ToolFilter(namespaces=frozenset({"ns1"}))) == list(range(1, 30, 3))
    assert rows(ToolFilter(categories=frozenset({"weather"}))) == list(range(1, 30, 3))
    assert rows(ToolFilter(tags=frozenset({"BETA"}))) == list(range(0, 30, 5))
    assert rows(ToolFilter(include=frozenset({"tool_3", "ns1/tool_4"}))) == [3, 4]
    assert rows(ToolFilter(namespaces=frozenset({"ns0"}), exclude=frozenset({"ns0/tool_0", "tool_3"}))) == list(
        range(6, 30, 3)
    )
    assert rows(ToolFilter(categories=frozenset({"no such category"}))) == []


def test_save_and_load_give_the_same_results_from_plain_files(tmp_path: pathlib.Path) -> None:
    docs, vectors = _random_catalog(120, seed=6)
    index = RetrievalIndex.build(docs, vectors, RetrievalConfig())
    index.save(tmp_path)
    loaded = RetrievalIndex.load(tmp_path)
    ctx = _ctx("does thing number 7 and also thing number 9", "does thing number 7", "thing number 9")
    queries = vectors[[7, 7, 9]]
    flt = ToolFilter(categories=frozenset({"Finance"}))
    before = index.search(ctx, queries, n_candidates=15, allowed=index.mask(flt))
    after = loaded.search(ctx, queries, n_candidates=15, allowed=loaded.mask(flt))
    assert before.rows.tolist() == after.rows.tolist()
    np.testing.assert_allclose(before.fused, after.fused, rtol=1e-5)
    assert loaded.keys == index.keys and loaded.row_of("ns1/tool_7") == 7 and loaded.row_of("nope") is None
    for path in tmp_path.iterdir():  # numpy arrays without pickles, JSON, a faiss index
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        else:
            assert path.suffix == ".faiss"
    meta = json.loads((tmp_path / "index.json").read_text())
    assert meta["rows"]["families"][5] == "api1" and meta["rows"]["tags"][5] == ["beta"]


def test_search_rejects_query_vectors_that_do_not_match_the_queries() -> None:
    docs, vectors = _random_catalog(20)
    index = RetrievalIndex.build(docs, vectors)
    with pytest.raises(ValueError):
        index.search(_ctx("a", "b c d", "e f g"), vectors[[1]])


def test_an_empty_conversation_or_an_empty_filter_gives_no_candidates() -> None:
    docs, vectors = _random_catalog(20)
    index = RetrievalIndex.build(docs, vectors)
    empty = ConversationContext(last_user_message="", context="")
    assert len(index.search(empty, np.zeros((0, DIM), np.float32))) == 0
    nothing = np.zeros(20, dtype=np.bool_)
    assert len(index.search(_ctx("x"), vectors[[0]], allowed=nothing)) == 0


def test_embedding_text_splits_identifiers_and_stays_short() -> None:
    doc = ToolDoc(
        key="k",
        name="getWeatherForecast",
        description="Forecast. " * 300,
        family="open_meteo",
        category="Weather",
        parameters={"type": "object", "properties": {"cityName": {"type": "string", "description": "City"}}},
    )
    text = embedding_text(doc)
    assert text.startswith("get Weather Forecast (open meteo)")
    assert len(text) <= 1000
    short = embedding_text(dataclasses.replace(doc, description="Daily forecast"))
    assert "Category: Weather" in short and "city Name: City" in short
    assert text_hash(text) != text_hash(short) and len(text_hash(text)) == 64
