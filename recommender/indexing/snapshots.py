"""Building, activating and loading index snapshots.

A build reads the enabled tools, reuses stored vectors whose text did not change (Qdrant),
embeds the rest, builds the retrieval index and writes it to a new folder; only then is the
snapshot row switched to active, in one transaction. Web processes poll the active version
cheaply (`recommender.serving.holders`) and swap a newly loaded snapshot in with one
reference assignment, so a request never sees a half-loaded index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from catalog.models import Tool
from recommender.engine.ann import AnnConfig
from recommender.engine.retrieval import RetrievalConfig, RetrievalIndex
from recommender.engine.text import embedding_text, text_hash
from recommender.engine.types import ToolDoc, find_sorted
from recommender.indexing.embedders import configured_model_name, get_embedder
from recommender.indexing.models import IndexSnapshot
from recommender.indexing.vector_store import open_vector_store
from toolrec_site import metrics

log = logging.getLogger(__name__)


def tool_doc(tool: Tool) -> ToolDoc:
    """The one place a Tool row becomes the engine's ToolDoc."""
    description = tool.description
    for_model = tool.extra.get("description_for_model") if isinstance(tool.extra, dict) else None
    if isinstance(for_model, str) and for_model and for_model not in description:
        description = f"{description}\n{for_model}" if description else for_model
    return ToolDoc(
        key=tool.key,
        name=str(tool.extra.get("display_name") or tool.name) if isinstance(tool.extra, dict) else tool.name,
        description=description,
        parameters=tool.parameters or None,
        category=tool.category,
        tags=tuple(tool.tags or ()),
        family=tool.family,
        namespace=tool.namespace,
    )


def catalog_fingerprint(rows: list[tuple[int, str, str]]) -> str:
    """Of (id, content hash, function name): the function names are served too, and the
    first rebuild after they became stored names must not be skipped."""
    digest = hashlib.sha256()
    for tool_id, content_hash, function_name in rows:
        digest.update(f"{tool_id}:{content_hash}:{function_name};".encode())
    return digest.hexdigest()


EMBED_CHUNK = 512  # tools embedded and stored per step: a crash keeps the finished chunks


def embed_tools(tools: list[Tool], docs: list[ToolDoc], model_name: str) -> tuple[np.ndarray, int, int]:
    """Vectors for the tools, reusing stored ones whose text hash still matches."""
    texts = [embedding_text(doc) for doc in docs]
    hashes = [text_hash(text) for text in texts]
    vectors: list[np.ndarray | None] = [None] * len(tools)
    with open_vector_store(model_name) as store:
        stored = store.fetch([t.pk for t in tools])
        stale = []
        for i, tool in enumerate(tools):
            found = stored.get(tool.pk)
            if found is not None and found.text_hash == hashes[i]:
                vectors[i] = found.vector
            else:
                stale.append(i)
        embedder = get_embedder(model_name)
        for start in range(0, len(stale), EMBED_CHUNK):
            chunk = stale[start : start + EMBED_CHUNK]
            fresh = embedder.embed([texts[i] for i in chunk])
            payloads = [
                {
                    "key": docs[i].key,
                    "namespace": docs[i].namespace,
                    "category": docs[i].category,
                    "tags": list(docs[i].tags),
                    "text_hash": hashes[i],
                }
                for i in chunk
            ]
            store.upsert([tools[i].pk for i in chunk], fresh, payloads)
            for row, i in enumerate(chunk):
                vectors[i] = fresh[row]
    done = [v for v in vectors if v is not None]
    assert len(done) == len(tools)
    return np.vstack(done).astype(np.float32), len(stale), len(tools) - len(stale)


def retrieval_config() -> RetrievalConfig:
    """The engine's tuned defaults, with the index-size switch from the settings."""
    return RetrievalConfig(ann=AnnConfig(flat_max_tools=settings.ANN_FLAT_MAX_TOOLS))


def build_index(tools: list[Tool], model_name: str) -> tuple[RetrievalIndex, int, int]:
    """The retrieval index over these tools: (index, tools embedded anew, vectors reused)."""
    docs = [tool_doc(t) for t in tools]
    if not tools:
        return RetrievalIndex.build(docs, np.zeros((0, 1), dtype=np.float32), retrieval_config()), 0, 0
    vectors, embedded, reused = embed_tools(tools, docs, model_name)
    return RetrievalIndex.build(docs, vectors, retrieval_config()), embedded, reused


def snapshot_build(*, force: bool = False) -> IndexSnapshot | None:
    """Build and activate a snapshot of the enabled tools. None when nothing changed."""
    started = time.perf_counter()
    model_name = configured_model_name()
    tools = list(Tool.objects.filter(enabled=True).order_by("id"))
    fingerprint = catalog_fingerprint([(t.pk, t.content_hash, t.function_name) for t in tools])
    active = IndexSnapshot.objects.filter(is_active=True).first()
    if (
        not force
        and active is not None
        and active.catalog_fingerprint == fingerprint
        and active.embedding_model == model_name
        and Path(active.path).exists()
    ):
        return None
    snapshot = IndexSnapshot.objects.create(embedding_model=model_name, catalog_fingerprint=fingerprint)
    try:
        directory = settings.SNAPSHOT_DIR / f"v{snapshot.pk}"
        index, embedded, reused = build_index(tools, model_name)
        partial = directory.with_name(directory.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        (partial / "index").mkdir(parents=True)
        index.save(partial / "index")
        _write_tools(partial / "tools.json", tools)
        shutil.rmtree(directory, ignore_errors=True)  # a leftover of a build whose row was rolled back
        partial.rename(directory)  # the folder appears whole or not at all
    except Exception as exc:
        IndexSnapshot.objects.filter(pk=snapshot.pk).update(
            status=IndexSnapshot.Status.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now()
        )
        raise
    with transaction.atomic():
        IndexSnapshot.objects.filter(is_active=True).update(is_active=False)
        IndexSnapshot.objects.filter(pk=snapshot.pk).update(
            status=IndexSnapshot.Status.READY,
            is_active=True,
            path=str(directory),
            tool_count=len(tools),
            embedded_count=embedded,
            reused_count=reused,
            index_kind=index.ann_kind,
            build_seconds=time.perf_counter() - started,
            finished_at=timezone.now(),
        )
    _prune_old_snapshots()
    snapshot.refresh_from_db()
    log.info(
        "snapshot v%s: %s tools (%s embedded, %s reused) in %.1fs",
        snapshot.pk,
        len(tools),
        embedded,
        reused,
        snapshot.build_seconds,
    )
    return snapshot


def _tool_rows(tools: list[Tool]) -> list[dict[str, Any]]:
    return [
        {
            "id": t.pk,
            "tenant_id": t.tenant_id,  # None: shared
            "key": t.key,
            "name": t.name,
            "function_name": t.function_name,
            "definition": t.function_definition(),
        }
        for t in tools
    ]


def _write_tools(path: Path, tools: list[Tool]) -> None:
    path.write_text(json.dumps(_tool_rows(tools), ensure_ascii=False))


def _prune_old_snapshots() -> None:
    keep = set(IndexSnapshot.objects.order_by("-id").values_list("id", flat=True)[: settings.SNAPSHOTS_KEPT])
    for old in IndexSnapshot.objects.exclude(id__in=keep).exclude(is_active=True).exclude(path=""):
        shutil.rmtree(old.path, ignore_errors=True)
        IndexSnapshot.objects.filter(pk=old.pk).update(path="")


@dataclass(frozen=True)
class LoadedSnapshot:
    version: int
    index: RetrievalIndex
    tool_ids: np.ndarray  # row -> Tool.pk
    definitions: list[dict[str, Any]]  # row -> OpenAI function definition
    keys: list[str]
    function_names: list[str]  # row -> the name a model calls the tool by
    # function name -> its rows: one among the tools any key sees (shared and its tenant's),
    # but two tenants' tools may share one (the caller's visibility picks)
    rows_by_function_name: dict[str, list[int]]
    embedding_model: str  # queries are embedded with the model of the tool vectors
    # row -> owning tenant's id, 0 for a shared tool (the serving stage masks rows by it)
    tenant_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # a tool's own name -> every row of that name (clients may call a tool by it; names repeat
    # across namespaces and tenants, so serving takes it only when the key sees one such tool)
    rows_by_tool_name: dict[str, list[int]] = field(default_factory=dict, repr=False)
    sorted_tool_ids: np.ndarray = field(init=False, repr=False)  # for rows_of
    rows_by_tool_id: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        order = np.argsort(self.tool_ids, kind="stable")
        object.__setattr__(self, "rows_by_tool_id", order)
        object.__setattr__(self, "sorted_tool_ids", self.tool_ids[order])

    def rows_of(self, tool_ids: np.ndarray) -> np.ndarray:
        """The rows of the given Tool.pks, in order; ids not in this snapshot are dropped."""
        at, found = find_sorted(self.sorted_tool_ids, tool_ids)
        return self.rows_by_tool_id[at[found]].astype(np.int64)

    @classmethod
    def load(cls, version: int, path: Path, embedding_model: str) -> LoadedSnapshot:
        return cls.from_rows(
            version,
            RetrievalIndex.load(path / "index", retrieval_config()),
            json.loads((path / "tools.json").read_text()),
            embedding_model,
        )

    @classmethod
    def in_memory(cls, index: RetrievalIndex, tools: list[Tool]) -> LoadedSnapshot:
        """A snapshot that never touched the disk (evaluation, simulation)."""
        return cls.from_rows(0, index, _tool_rows(tools), configured_model_name())

    @classmethod
    def from_rows(
        cls, version: int, index: RetrievalIndex, rows: list[dict[str, Any]], embedding_model: str
    ) -> LoadedSnapshot:
        return cls(
            version=version,
            index=index,
            tool_ids=np.asarray([r["id"] for r in rows], dtype=np.int64),
            definitions=[r["definition"] for r in rows],
            keys=[r["key"] for r in rows],
            function_names=[r["function_name"] for r in rows],
            rows_by_function_name=_rows_by(r["function_name"] for r in rows),
            embedding_model=embedding_model,
            # snapshots written before tenants have no tenant_id: every tool was shared then
            tenant_ids=np.asarray([r.get("tenant_id") or 0 for r in rows], dtype=np.int64),
            rows_by_tool_name=_rows_by(r["name"] for r in rows),
        )


def _rows_by(names: Iterable[str]) -> dict[str, list[int]]:
    by_name: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        by_name.setdefault(name, []).append(i)
    return by_name


def active_snapshot_load(current: LoadedSnapshot | None) -> LoadedSnapshot | None:
    """The active snapshot, loaded; `current` if it is the active one or nothing is active,
    or if the active one cannot be read (logged)."""
    active = IndexSnapshot.objects.filter(is_active=True).values_list("id", "path", "embedding_model").first()
    if active is None:
        return current
    version, path, embedding_model = active
    if current is not None and current.version == version:
        return current
    try:
        loaded = LoadedSnapshot.load(version, Path(path), embedding_model)
    except (OSError, ValueError, KeyError):
        log.exception("could not load snapshot v%s; keeping v%s", version, getattr(current, "version", None))
        return current
    metrics.SNAPSHOT_VERSION.set(version)
    metrics.ACTIVE_TOOLS.set(len(loaded.keys))
    return loaded
