"""Corpus file → passages → analysis (cached) → sparse index on disk: what `odqa index` runs."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

from odqa.analysis.base import AnalyzerConfig, default_analyzer
from odqa.analysis.corpus import analyze_cached
from odqa.corpus import CorpusConfig, build_passages
from odqa.io.documents import read_documents
from odqa.retrieval.scoring import ScoringConfig
from odqa.retrieval.sparse import SparseIndex


def default_cache_dir() -> Path:
    return Path(os.environ.get("ODQA_CACHE", Path.home() / ".cache" / "odqa"))


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
    documents = read_documents(corpus)
    if limit:
        documents = itertools.islice(documents, limit)
    passages, stats = build_passages(documents, corpus_config)
    timings["passages_s"] = time.perf_counter() - start
    start = time.perf_counter()
    analyzed = analyze_cached([p.text for p in passages], stats["fingerprint"], analyzer, cache_dir, processes, quiet)
    timings["analysis_s"] = time.perf_counter() - start
    start = time.perf_counter()
    info = {"source": str(corpus), "config": corpus_config.model_dump(mode="json"), **stats}
    index = SparseIndex.from_analyzed(analyzed, analyzer, scoring, passages, info)
    timings["weighting_s"] = time.perf_counter() - start
    if out is not None:
        start = time.perf_counter()
        index.save(out)
        timings["save_s"] = time.perf_counter() - start
    return index, timings
