"""Corpus file → passages → analysis (cached) → sparse index on disk: what `odqa index` runs."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from odqa.analysis.base import AnalyzerConfig, default_analyzer
from odqa.analysis.corpus import analyze_cached
from odqa.corpus import CorpusConfig, PassageBuilder
from odqa.io.documents import read_documents
from odqa.progress import progress
from odqa.retrieval.scoring import ScoringConfig
from odqa.retrieval.sparse import SparseIndex
from odqa.types import Passage


def _counted(items, bar):
    for item in items:
        bar.update()
        yield item


def _between(items, call):
    for item in items:
        call()
        yield item


def default_cache_dir() -> Path:
    return Path(os.environ.get("ODQA_CACHE", Path.home() / ".cache" / "odqa"))


def read_passages(
    corpus: str | Path,
    corpus_config: CorpusConfig,
    limit: int | None = None,
    quiet: bool = False,
    between_documents: Callable[[list[Passage]], None] | None = None,
):
    """The corpus file cut into passages, with its stats, the `corpus` record an index manifest
    keeps (what every index built from the same file and config shares) and the (id, title) of
    every document read, in order, and their digests (the PassageBuilder). `between_documents`,
    when given, sees the passages cut so far before each document is read (to start work on them
    while the rest of the file is read; a later duplicate may still add a source to one of them,
    never change its text)."""
    documents = read_documents(corpus)
    if limit:
        documents = itertools.islice(documents, limit)
    bar = progress(desc="reading documents", unit="doc", quiet=quiet)
    builder = PassageBuilder(corpus_config)
    if between_documents is not None:
        documents = _between(documents, lambda: between_documents(builder.passages))
    try:
        passages, stats = builder.build(_counted(documents, bar))
    finally:
        bar.close()  # before any error line, so the two do not interleave
    info = {"source": source_stamp(corpus, limit), "config": corpus_config.model_dump(mode="json"), **stats}
    return passages, stats, info, builder


def build_sparse_index(
    corpus: str | Path,
    out: str | Path | None,
    corpus_config: CorpusConfig | None = None,
    analyzer: AnalyzerConfig | None = None,
    scoring: ScoringConfig | None = None,
    cache_dir: Path | None = None,
    processes: int | None = None,
    limit: int | None = None,
    quiet: bool = False,
) -> tuple[SparseIndex, dict]:
    """Build (and with `out`, save) an index; returns it with timings in seconds."""
    corpus_config = corpus_config or CorpusConfig()
    analyzer = analyzer or default_analyzer()
    scoring = scoring or ScoringConfig()
    timings: dict[str, float] = {}
    start = time.perf_counter()
    passages, stats, info, builder = read_passages(corpus, corpus_config, limit, quiet)
    timings["passages_s"] = time.perf_counter() - start
    start = time.perf_counter()
    analyzed = analyze_cached([p.text for p in passages], stats["fingerprint"], analyzer, cache_dir, processes, quiet)
    timings["analysis_s"] = time.perf_counter() - start
    start = time.perf_counter()
    index = SparseIndex.from_analyzed(analyzed, analyzer, scoring, passages, info)
    timings["weighting_s"] = time.perf_counter() - start
    if out is not None:
        start = time.perf_counter()
        from odqa.config import IndexConfig
        from odqa.retrieval.change import DOCUMENTS, document_list_text, passage_table

        config = IndexConfig(corpus=corpus_config, analyzer=analyzer, scoring=scoring)
        index.arrays |= passage_table(passages, builder.documents, builder.digests)  # what updates need
        index.save(
            out,
            {
                "config.json": json.dumps(config.to_dict(), ensure_ascii=False, indent=2),
                DOCUMENTS: document_list_text(builder.documents),
            },
        )
        timings["save_s"] = time.perf_counter() - start
    return index, timings


def source_stamp(corpus: str | Path, limit: int | None) -> dict:
    """What identifies the corpus file cheaply: its resolved path, size, modification time."""
    stat = Path(corpus).stat()
    return {"path": str(Path(corpus).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "limit": limit}


def is_current(out: str | Path, corpus: str | Path, config, limit: int | None = None) -> bool:
    """Whether `out` holds an index of this corpus file built with this config by this odqa."""
    from odqa.analysis.base import analyzer_libraries
    from odqa.errors import OdqaError
    from odqa.retrieval.sparse import read_manifest

    try:
        manifest = read_manifest(Path(out))
    except OdqaError:
        return False
    same_config = (
        manifest["corpus"].get("config") == config.corpus.model_dump(mode="json")
        and manifest["analyzer"] == config.analyzer.model_dump(mode="json")
        and manifest["scoring"] == config.scoring.model_dump(mode="json")
        and manifest.get("analyzer_libraries") == analyzer_libraries(config.analyzer)
    )
    return same_config and Path(corpus).exists() and manifest["corpus"].get("source") == source_stamp(corpus, limit)


def build_dense_index(
    corpus: str | Path,
    out: str | Path | None,
    encoder_path: str,
    corpus_config: CorpusConfig | None = None,
    faiss: str = "flat",
    limit: int | None = None,
    device: str | None = None,
    quiet: bool = False,
    shards: int = 1,
    shard: int | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    workers: int | None = None,
    precision: str = "fp32",
):
    """Passages cut exactly as `build_sparse_index` cuts them (same config → same passage ids and
    corpus fingerprint, so the two indexes can be fused), encoded into a FAISS index.

    With `shards`, passages are encoded in that many contiguous parts, each saved on its own under
    `OUT.shards/` as soon as it is done: a killed run resumes at the first missing part, and with
    `shard=i` one process (or machine) encodes only part i; the run without `shard` merges.

    With `ray`, the parts are encoded by a Ray Data job (`odqa.distributed.jobs.encode_on_ray`):
    `workers` encoder actors over the cluster, each part in the chunks `DenseEncoder.encode` would
    make of it, every chunk saved as it arrives — the same vectors as the run without Ray.

    `precision="bf16"` encodes with the encoder's weights in bfloat16 (faster on GPUs and on CPUs
    with AVX512-BF16 or AMX); the index records it, and queries are then encoded in bf16 too."""

    from odqa.errors import OdqaError
    from odqa.retrieval.dense import DenseIndex, check_memory
    from odqa.retrieval.encoder import DenseEncoder

    if shard is not None and not 0 <= shard < shards:
        raise OdqaError(f"shard {shard} does not exist: shards are numbered 0 to {shards - 1}")
    if (shards > 1 or ray) and out is None:
        raise OdqaError("sharded or Ray encoding needs an output folder")
    corpus_config = corpus_config or CorpusConfig()
    timings: dict[str, float] = {}
    start = time.perf_counter()
    passages, stats, info, _ = read_passages(corpus, corpus_config, limit, quiet)
    timings["passages_s"] = time.perf_counter() - start
    start = time.perf_counter()
    encoder = DenseEncoder.load(encoder_path, device=device, precision=precision)
    if shard is None:  # the process that merges holds every vector and the index
        check_memory(len(passages), encoder.dim, faiss)
    vectors = None
    if shards > 1 or ray:
        vectors = encode_in_parts(
            passages,
            stats["fingerprint"],
            out,
            encoder_path,
            encoder,
            quiet,
            shards,
            shard,
            ray,
            ray_address,
            workers=workers,
            device=device,
        )
        if shard is not None:
            return None, timings  # this process's part is done; a run without `shard` merges
    index = DenseIndex.build(passages, encoder, faiss, str(encoder_path), info, progress=not quiet, vectors=vectors)
    timings["encoding_s"] = time.perf_counter() - start
    if out is not None:
        index.save(out)
        if shards > 1 or ray:
            import shutil

            shutil.rmtree(Path(f"{out}.shards"), ignore_errors=True)
    return index, timings


def encode_in_parts(
    passages,
    fingerprint: str,
    out: str | Path,
    encoder_path: str,
    encoder,
    quiet: bool = False,
    shards: int = 1,
    shard: int | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    workers: int | None = None,
    device: str | None = None,
):
    """The passages' vectors, encoded in `shards` contiguous parts each saved under `OUT.shards/`
    when done (on Ray: in the chunks `DenseEncoder.encode` makes of a part, each saved as it
    arrives), so a killed run resumes; None when only part `shard` was asked for."""
    import hashlib

    import numpy as np

    from odqa.retrieval.encoder import ENCODE_CHUNK

    identity = [fingerprint, str(Path(encoder_path).resolve()), encoder.config.to_dict()]
    if encoder.precision != "fp32":  # parts encoded in another precision are not this run's (fp32 keeps its names)
        identity.append(encoder.precision)
    identity = json.dumps(identity, sort_keys=True)
    folder = Path(f"{out}.shards")
    folder.mkdir(parents=True, exist_ok=True)
    stem = hashlib.sha256(identity.encode()).hexdigest()[:16]
    bounds = np.linspace(0, len(passages), shards + 1).astype(int)
    chosen = range(shards) if shard is None else [shard]
    parts = [[folder / f"{stem}-{i}-of-{shards}.npy"] for i in chosen]
    if ray:
        from odqa.distributed.jobs import encode_on_ray
        from odqa.progress import progress

        chunks = []
        for at, i in enumerate(chosen):
            if parts[at][0].exists():  # encoded whole by a run without Ray
                continue
            starts = range(int(bounds[i]), int(bounds[i + 1]), ENCODE_CHUNK)
            named = [(f"{stem}-{i}-of-{shards}.at{lo}.npy", lo, min(lo + ENCODE_CHUNK, bounds[i + 1])) for lo in starts]
            chunks += named
            parts[at] = [folder / name for name, _, _ in named]
        texts = [p.text for p in passages]
        left = sum(hi - lo for name, lo, hi in chunks if not (folder / name).exists())
        with progress(total=left, desc="encoding passages on Ray", unit="passage", quiet=quiet) as bar:
            encode_on_ray(
                texts,
                chunks,
                folder,
                str(encoder_path),
                encoder.dim,
                device,
                ray_address,
                workers,
                on_chunk=bar.update,
                precision=encoder.precision,
            )
    else:
        for (file,), i in zip(parts, chosen):
            if not file.exists():
                part = encoder.encode(
                    [p.text for p in passages[bounds[i] : bounds[i + 1]]], "passage", progress=not quiet
                )
                tmp = folder / f".{file.name}.tmp.npy"
                np.save(tmp, part)
                os.replace(tmp, file)
    if shard is not None:
        return None
    return np.concatenate([np.load(f) for files in parts for f in files])
