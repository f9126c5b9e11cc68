import numpy as np
import pytest

from recommender.engine.memory import ContextMemory


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def near(vector: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    v = vector + noise * rng.standard_normal(vector.shape).astype(np.float32)
    return v / np.linalg.norm(v)


def test_votes_go_to_the_tool_of_the_nearest_past_context() -> None:
    rng = np.random.default_rng(0)
    contexts = unit(rng, 50, 32)
    memory = ContextMemory(32, floor=0.2)
    memory.add(contexts, np.arange(100, 150))
    query = near(contexts[17], rng, 0.05)  # a new phrasing of past context 17

    votes = memory.votes(query, np.arange(100, 150), k=5)

    assert int(np.argmax(votes)) == 17
    assert votes[17] > 0.8
    assert np.sum(votes > 0) <= 5


def test_contexts_below_the_similarity_floor_give_no_votes() -> None:
    memory = ContextMemory(2, floor=0.5)
    memory.add(np.array([[1.0, 0.0], [0.0, 1.0]]), [1, 2])

    votes = memory.votes(np.array([0.8, 0.6]), [1, 2], k=5)  # sims 0.8 and 0.6

    assert votes[0] == pytest.approx(((0.8 - 0.5) / 0.5) ** 2)
    assert votes[1] == pytest.approx(((0.6 - 0.5) / 0.5) ** 2)
    assert memory.votes(np.array([-1.0, 0.1]), [1, 2]).tolist() == [0.0, 0.0]


def test_votes_add_up_over_past_contexts_that_used_the_same_tool() -> None:
    memory = ContextMemory(3, floor=0.0, power=1.0)
    memory.add(np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0]]), [7, 7, 8, 9])

    votes = memory.votes(np.array([1.0, 0.0, 0.0]), [7, 8, 9, 10], k=10)

    assert votes.tolist() == pytest.approx([2.0, 1.0, 0.0, 0.0])


def test_similar_tools_are_those_whose_past_contexts_resemble_the_request() -> None:
    rng = np.random.default_rng(3)
    topics = unit(rng, 3, 32)
    memory = ContextMemory(32, floor=0.3)
    memory.add(
        np.stack([near(topics[t], rng, 0.1) for t in (0, 0, 0, 1, 1, 2)]),
        [10, 10, 11, 20, 20, 30],  # tools 10 and 11 serve topic 0
    )

    found = memory.similar_tools(near(topics[0], rng, 0.05), n=5)

    assert found.tolist()[:2] in ([10, 11], [11, 10])
    assert 30 not in found.tolist()  # another topic, below the floor
    assert memory.similar_tools(topics[0], n=1).shape == (1,)
    assert memory.similar_tools(-topics[0], n=5).size == 0  # an unrelated request adds nothing
    restored = ContextMemory.from_bytes(memory.to_bytes())
    assert restored.similar_tools(topics[2], n=5).tolist() == memory.similar_tools(topics[2], n=5).tolist() == [30]
    assert ContextMemory.from_bytes(ContextMemory(32).to_bytes()).similar_tools(topics[0]).size == 0


def test_similar_tools_follow_a_tools_newest_contexts() -> None:
    """A tool whose use moved to another kind of request is found for the new kind."""
    old, new = np.eye(4, dtype=np.float32)[0], np.eye(4, dtype=np.float32)[1]
    memory = ContextMemory(4, floor=0.3, per_tool_limit=3)
    memory.add(np.stack([old, old, old]), [5, 5, 5])
    memory.add(np.stack([new, new, new, old]), [5, 5, 5, 6])

    assert memory.similar_tools(new).tolist() == [5]
    assert memory.similar_tools(old).tolist() == [6]


def test_only_the_k_nearest_contexts_vote() -> None:
    memory = ContextMemory(2, floor=0.0, power=1.0)
    angles = np.linspace(0, 1.2, 6)
    memory.add(np.c_[np.cos(angles), np.sin(angles)], [1, 2, 3, 4, 5, 6])

    votes = memory.votes(np.array([1.0, 0.0]), [1, 2, 3, 4, 5, 6], k=2)

    assert (votes > 0).tolist() == [True, True, False, False, False, False]


def test_votes_match_a_brute_force_scan_restricted_to_the_candidates() -> None:
    rng = np.random.default_rng(1)
    vectors = unit(rng, 3000, 16)
    tools = rng.integers(0, 300, 3000)
    memory = ContextMemory(16, floor=0.1, power=2.0)
    memory.add(vectors, tools)
    query = unit(rng, 1, 16)[0]
    candidates = rng.choice(300, 40, replace=False)

    votes = memory.votes(query, candidates, k=20)

    mask = np.isin(tools, candidates)
    sims = vectors[mask] @ query
    top = np.argsort(-sims)[:20]
    expected = np.zeros(40)
    for sim, tool in zip(sims[top], tools[mask][top]):
        expected[np.flatnonzero(candidates == tool)] += max(0.0, (sim - 0.1) / 0.9) ** 2
    np.testing.assert_allclose(votes, expected, rtol=1e-5, atol=1e-7)


def test_the_oldest_contexts_are_dropped_beyond_the_maximum_size() -> None:
    memory = ContextMemory(2, max_size=3, floor=0.0)
    memory.add(np.array([[1.0, 0.0], [1.0, 0.0]]), [1, 2])
    memory.add(np.array([[1.0, 0.0], [1.0, 0.0]]), [3, 4])

    votes = memory.votes(np.array([1.0, 0.0]), [1, 2, 3, 4], k=10)

    assert len(memory) == 3
    assert votes.tolist() == [0.0, 1.0, 1.0, 1.0]


def test_a_popular_tool_votes_through_its_most_recent_contexts_only() -> None:
    memory = ContextMemory(2, floor=0.0, power=1.0, per_tool_limit=2)
    memory.add(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), [5, 5, 5])

    # the old, identical context of tool 5 is beyond the per-tool limit
    assert memory.votes(np.array([1.0, 0.0]), [5]).tolist() == [0.0]


def test_duplicate_candidates_get_the_same_votes() -> None:
    memory = ContextMemory(2, floor=0.0)
    memory.add(np.array([[1.0, 0.0]]), [4])

    votes = memory.votes(np.array([1.0, 0.0]), [4, 9, 4])

    assert votes.tolist() == [1.0, 0.0, 1.0]


def test_nearest_returns_the_most_similar_contexts_best_first() -> None:
    memory = ContextMemory(2)
    memory.add(np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), [1, 2, 3])

    sims, tools = memory.nearest(np.array([1.0, 0.1]), k=2)

    assert tools.tolist() == [2, 3]
    assert sims[0] > sims[1]


def test_memory_round_trips_through_bytes() -> None:
    rng = np.random.default_rng(2)
    memory = ContextMemory(8, max_size=100, floor=0.25, power=1.5, per_tool_limit=7)
    memory.add(unit(rng, 120, 8), rng.integers(0, 10, 120))
    query = unit(rng, 1, 8)[0]

    restored = ContextMemory.from_bytes(memory.to_bytes())

    assert len(restored) == 100
    assert (restored.floor, restored.power, restored.per_tool_limit) == (0.25, 1.5, 7)
    np.testing.assert_array_equal(restored.votes(query, np.arange(10)), memory.votes(query, np.arange(10)))


def test_an_empty_memory_votes_zero() -> None:
    votes = ContextMemory(4).votes(np.ones(4), [1, 2, 3])

    assert votes.tolist() == [0.0, 0.0, 0.0]


def test_it_rejects_vectors_of_the_wrong_dimension() -> None:
    with pytest.raises(ValueError):
        ContextMemory(4).add(np.ones((2, 3)), [1, 2])


def test_similar_tools_rank_by_the_mean_of_each_tools_newest_contexts() -> None:
    """Against a brute-force reading of the contract, on random contexts added in batches."""
    rng = np.random.default_rng(5)
    memory = ContextMemory(16, floor=0.0, per_tool_limit=8)
    added: list[tuple[np.ndarray, int]] = []
    for _ in range(6):
        vectors, tools = unit(rng, 50, 16), rng.integers(0, 20, 50)
        memory.add(vectors, tools)
        added += list(zip(vectors, tools.tolist()))
    query = unit(rng, 1, 16)[0]

    means = {}
    for tool in {t for _, t in added}:
        newest = [v for v, t in added if t == tool][-8:]
        mean = np.sum(newest, axis=0)
        means[tool] = float(mean @ query / np.linalg.norm(mean))
    expected = sorted((t for t, s in means.items() if s > 0), key=lambda t: -means[t])

    assert memory.similar_tools(query, n=50).tolist() == expected
    assert memory.similar_tools(query, n=3).tolist() == expected[:3]


def test_a_memory_serves_only_queries_of_its_own_model() -> None:
    memory = ContextMemory(4, model="local/a")
    memory.add(np.eye(4, dtype=np.float32)[:2], [1, 2])
    query = np.eye(4, dtype=np.float32)[0]

    assert memory.serves(query, "local/a") and not memory.serves(query, "hosted/b")
    assert not memory.serves(np.ones(8), "local/a")  # another dimension
    assert memory.serves(query)  # a caller that does not name its model: the dimension decides
    assert not ContextMemory(4, model="local/a").serves(query, "local/a")  # empty
    restored = ContextMemory.from_bytes(memory.to_bytes())
    assert restored.model == "local/a" and not restored.serves(query, "hosted/b")
