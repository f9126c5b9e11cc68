import io

import numpy as np

from recommender.engine.candidate_log import _fast_npz, candidate_log, read_candidate_log


def test_a_log_reads_back_what_was_logged_the_top_candidates_and_every_shown_one() -> None:
    rng = np.random.default_rng(0)
    tool_ids = np.arange(30, dtype=np.int64) * 7
    features = rng.uniform(0, 1, (30, 5)).astype(np.float32)
    retrieval = np.linspace(1, 0, 30).astype(np.float32)
    data = candidate_log(tool_ids, features, np.array([2, 25]), retrieval, 10)
    logged = read_candidate_log(data)
    assert _fast_npz(data, ("features",))[0].shape == (11, 5)  # not numpy's slower reader
    keep = [*range(10), 25]
    np.testing.assert_array_equal(logged.tool_ids, tool_ids[keep])
    np.testing.assert_array_equal(logged.features, features[keep])
    np.testing.assert_array_equal(logged.retrieval, retrieval[keep])
    empty = read_candidate_log(candidate_log(tool_ids[:0], features[:0], np.array([], np.int64), retrieval[:0], 10))
    assert empty.features.shape == (0, 5) and empty.tool_ids.shape == (0,)


def test_a_log_in_another_layout_is_read_by_numpy() -> None:
    """Big-endian, float64 and Fortran-ordered arrays are not what `candidate_log` writes; the
    fast reader leaves them to numpy's."""
    buffer = io.BytesIO()
    features = np.asfortranarray(np.arange(12, dtype=">f8").reshape(4, 3))
    np.savez(buffer, tool_ids=np.arange(4, dtype=">i8"), retrieval=np.ones(4), features=features)
    logged = read_candidate_log(buffer.getvalue())
    np.testing.assert_array_equal(logged.features, np.arange(12).reshape(4, 3))
    assert logged.tool_ids.tolist() == [0, 1, 2, 3] and logged.features.dtype == np.float32
