"""Analysing a whole corpus on every core into token ids, cached by fingerprint.

Workers return token ids against a vocabulary of their own; the parent merges vocabularies and
remaps with one numpy gather, so no token string crosses a process boundary twice."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from odqa.analysis.base import ANALYSIS_VERSION, AnalyzerConfig, analyzer_from_dict, analyzer_libraries
from odqa.io.atomic import atomic_dir
from odqa.progress import progress

_CHUNK = 1000
_worker_analyzer = None


@dataclass
class AnalyzedCorpus:
    """Token ids of every text: `ids[offsets[i]:offsets[i+1]]` is text i; `vocab[id]` its token."""

    ids: np.ndarray  # int32
    offsets: np.ndarray  # int64, len = texts + 1
    vocab: list[str]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def tokens(self, i: int) -> list[str]:
        return [self.vocab[t] for t in self.ids[self.offsets[i] : self.offsets[i + 1]]]

    def save(self, folder: Path) -> None:
        np.save(folder / "ids.npy", self.ids)
        np.save(folder / "offsets.npy", self.offsets)
        (folder / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> AnalyzedCorpus:
        vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        return cls(np.load(folder / "ids.npy"), np.load(folder / "offsets.npy"), vocab)


def _init_worker(config: dict) -> None:
    global _worker_analyzer
    _worker_analyzer = analyzer_from_dict(config).build()


def _analyze_chunk(texts: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    vocab: dict[str, int] = {}
    ids: list[int] = []
    lengths = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        tokens = _worker_analyzer(text)
        lengths[i] = len(tokens)
        ids.extend([vocab.setdefault(t, len(vocab)) for t in tokens])
    return list(vocab), np.asarray(ids, dtype=np.int32), lengths


def analyze_corpus(
    texts: Sequence[str],
    config: AnalyzerConfig,
    processes: int | None = None,
    quiet: bool = False,
    chunk: int = _CHUNK,
) -> AnalyzedCorpus:
    """Every text analysed into term ids (a shared vocabulary) and offsets, `chunk` texts at a
    time in `processes` worker processes (the results do not depend on either)."""
    processes = processes or os.cpu_count() or 1
    chunks = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    config_dict = config.model_dump(mode="json")
    vocab: dict[str, int] = {}
    id_parts: list[np.ndarray] = []
    length_parts: list[np.ndarray] = []
    bar = progress(total=len(texts), desc=f"analyzing ({config.name})", unit="passage", quiet=quiet)

    def merge(result: tuple[list[str], np.ndarray, np.ndarray]) -> None:
        local_vocab, local_ids, lengths = result
        remap = np.fromiter(
            (vocab.setdefault(t, len(vocab)) for t in local_vocab), dtype=np.int32, count=len(local_vocab)
        )
        id_parts.append(remap[local_ids] if len(local_ids) else local_ids)
        length_parts.append(lengths)
        bar.update(len(lengths))

    if processes <= 1 or len(chunks) <= 1:
        _init_worker(config_dict)
        for chunk in chunks:
            merge(_analyze_chunk(chunk))
    else:
        # fork: workers start instantly and a user script needs no __main__ guard
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        with ctx.Pool(processes, initializer=_init_worker, initargs=(config_dict,)) as pool:
            for result in pool.imap(_analyze_chunk, chunks):
                merge(result)
    bar.close()
    lengths = np.concatenate(length_parts) if length_parts else np.zeros(0, dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int32)
    return AnalyzedCorpus(ids, offsets, list(vocab))


def passage_side(config: AnalyzerConfig) -> dict:
    """The config less its query-only options: what determines how passages are analysed."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "query_stopwords"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return strip(config.model_dump(mode="json"))


def analysis_key(corpus_fingerprint: str, config: AnalyzerConfig) -> str:
    payload = json.dumps(
        [ANALYSIS_VERSION, corpus_fingerprint, passage_side(config), analyzer_libraries(config)], sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def analyze_cached(
    texts: Sequence[str],
    corpus_fingerprint: str,
    config: AnalyzerConfig,
    cache_dir: Path | None,
    processes: int | None = None,
    quiet: bool = False,
) -> AnalyzedCorpus:
    """Analysis of `texts`, reused from `cache_dir` when the same corpus was analysed the same way."""
    if cache_dir is None:
        return analyze_corpus(texts, config, processes, quiet)
    folder = Path(cache_dir) / f"analysis-{analysis_key(corpus_fingerprint, config)}"
    if (folder / "meta.json").exists():
        return AnalyzedCorpus.load(folder)
    analyzed = analyze_corpus(texts, config, processes, quiet)
    with atomic_dir(folder) as tmp:
        analyzed.save(tmp)
        meta = {
            "analysis_version": ANALYSIS_VERSION,
            "corpus": corpus_fingerprint,
            "analyzer": config.model_dump(mode="json"),
            "libraries": analyzer_libraries(config),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), encoding="utf-8")
    return analyzed
