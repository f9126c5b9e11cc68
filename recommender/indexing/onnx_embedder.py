"""all-MiniLM-L6-v2 on ONNX Runtime: the same model and pooling as sentence-transformers,
several times faster per short query on one thread (bench/results/design_notes.json).

Why our own code: sentence-transformers' ONNX backend needs `optimum`, whose current
releases require transformers 4 while sentence-transformers 6 requires transformers 5. So
the bundled model is exported once with `torch.onnx` (about a second) into
`VAR_DIR/models/`, then served with onnxruntime and the model's own fast tokenizer. The
export is checked against sentence-transformers (cosine > 0.9999) before it is kept.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import warnings
from pathlib import Path
from typing import cast

import numpy as np

from recommender.engine.types import FloatArray

log = logging.getLogger(__name__)
_CHECK_TEXTS = ["What's the weather in Paris tomorrow?", "send the quarterly report to the finance team by email"]


def _export(model_dir: Path, target: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(model_dir), device="cpu")
    bert = cast(torch.nn.Module, reference[0].auto_model).eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(
            self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
        ) -> torch.Tensor:
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = reference.tokenizer(_CHECK_TEXTS, padding=True, return_tensors="pt")
    axes = {0: "batch", 1: "tokens"}
    partial = target.with_suffix(f".{os.getpid()}.partial")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shapes the dynamic axes cover
        torch.onnx.export(
            LastHiddenState(),
            (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
            str(partial),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "last_hidden_state": axes},
            opset_version=17,
            dynamo=False,
        )
    expected = reference.encode(_CHECK_TEXTS, normalize_embeddings=True)
    got = OnnxMiniLM(model_dir, partial, threads=1).embed(list(_CHECK_TEXTS))
    agreement = float((expected * got).sum(axis=1).min())
    if agreement < 0.9999:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"ONNX export disagrees with sentence-transformers (cosine {agreement:.5f})")
    partial.replace(target)  # atomic: a concurrent process sees no file or a whole one
    log.info("exported %s to ONNX at %s", model_dir.name, target)


class OnnxMiniLM:
    def __init__(self, model_dir: Path, onnx_path: Path, *, threads: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        max_length = json.loads((model_dir / "sentence_bert_config.json").read_text()).get("max_seq_length", 256)
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.enable_padding()
        self._lock = threading.Lock()

    def _run(self, texts: list[str]) -> FloatArray:
        encoded = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        with self._lock:
            hidden = self._session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)  # mean pooling, as the model's
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def embed(self, texts: list[str]) -> FloatArray:
        """One run per text, never a padded batch. With one thread a batch is no faster even
        when sorted by length (it was slower on tool texts), and the int8 model quantises its
        activations with one scale per run, so in a batch a text's vector would depend on the
        texts beside it."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.vstack([self._run([t]) for t in texts])


def _quantize(source: Path, target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = target.with_suffix(f".{os.getpid()}.partial")
    logging.disable(logging.INFO)  # the quantiser logs a line per tensor on the root logger
    try:
        quantize_dynamic(str(source), str(partial), weight_type=QuantType.QInt8)
    finally:
        logging.disable(logging.NOTSET)
    partial.replace(target)


def load(model_dir: Path, cache_dir: Path, *, threads: int, int8: bool = False) -> OnnxMiniLM:
    """The exported model (int8: its dynamically quantised copy, faster again on long texts
    but not the float model's vectors, so it is a model of its own name).

    Per-channel weight scales bring the int8 vectors closer to the float ones at the same
    speed, but did not retrieve better, so the served model stays as it is (changing it
    re-embeds every catalog); bench/results/design_notes.json has the figures."""
    target = cache_dir / f"{model_dir.parent.name}-{model_dir.name}.onnx"
    if not target.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        _export(model_dir, target)
    if int8:
        quantized = target.with_name(target.stem + "-int8.onnx")
        if not quantized.exists():
            _quantize(target, quantized)
        target = quantized
    return OnnxMiniLM(model_dir, target, threads=threads)
