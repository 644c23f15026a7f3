"""A sparse index cut into shards (`odqa index --shards N`), built as Ray tasks and searched as
`odqa.distributed.sharded.ShardedIndex` (one Ray actor per shard).

The corpus is cut into passages exactly as `odqa index` cuts it; while the file is read, every run
of about `piece_passages` passages (whole documents) goes to a Ray analysis task, so the cluster's
cores are busy from the first seconds and, the pieces being small, stay busy to the end. The driver
merges the pieces' vocabularies and sums the statistics BM25 needs (document frequencies, passage
and document counts, token totals); the pieces are grouped into N contiguous shards of near-even
size (never splitting a document), and a second task per shard — placed on the node holding most
of its pieces' term counts, which never pass through the driver — weights its passages with those
*collection* statistics and saves a normal odqa sparse index (`shard-000/`, ...) that also keeps
the collection's per-term weight bounds. So a shard scores every passage it holds exactly as one
index over the whole collection would, and the sharded search — each shard's top k, merged by
(score, passage id) — returns the same ids and scores.

The shards are written under a temporary folder renamed into place when all are done."""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from odqa.distributed.sharded import FORMAT, FORMAT_VERSION, connect, document_numbers, shard_bounds
from odqa.errors import OdqaError
from odqa.types import Passage

# passages per analysis task: pieces this small keep every core busy to the end of the analysis
# (whole shards as tasks left one node idle while the other finished its heavier half)
PIECE_PASSAGES = 8_000


def _analyse_piece(texts: list[str], analyzer: dict, docs: np.ndarray) -> tuple[dict, object]:
    """A Ray task: one piece's passages (whole documents) analysed into what the collection sums
    (small, for the driver) and the term counts (large: they stay in the object store until their
    shard's `_build_shard` takes them)."""
    import ray

    from odqa.analysis.base import analyzer_from_dict
    from odqa.analysis.corpus import analyze_corpus
    from odqa.retrieval.postings import count_matrix, pooled_counts

    analysed = analyze_corpus(texts, analyzer_from_dict(analyzer), processes=1, quiet=True)
    lengths = np.diff(analysed.offsets)
    rows = np.repeat(np.arange(len(texts), dtype=np.int32), lengths)
    counts = count_matrix(rows, analysed.ids, len(texts), len(analysed.vocab))
    documents = int(docs.max()) + 1
    doc_counts = pooled_counts(counts, docs, documents)
    summary = {
        "vocab": analysed.vocab,
        "passage_len": lengths,
        "df": np.diff(counts.indptr),
        "doc_df": np.diff(doc_counts.indptr),
        "node": ray.get_runtime_context().get_node_id(),
    }
    return summary, counts


def group_pieces(sizes: Sequence[int], shards: int) -> list[int] | None:
    """Piece offsets [0, ..., len(sizes)] of `shards` contiguous groups, each cut at the piece
    boundary nearest an even split of the passages; None when the pieces are too few."""
    if len(sizes) < shards:
        return None
    ends = np.cumsum(sizes)
    cuts = [0]
    for i in range(1, shards):
        ideal = i * ends[-1] / shards
        lowest, highest = cuts[-1] + 1, len(sizes) - (shards - i)  # every group keeps at least one piece
        at = int(np.clip(np.argmin(np.abs(ends - ideal)) + 1, lowest, highest))
        cuts.append(at)
    cuts.append(len(sizes))
    return cuts


def _term_bounds(index, level: str) -> np.ndarray:
    """Each term's largest weight in this shard (the index's own bound), -inf for terms it lacks."""
    bounds = index._max_weights(level).copy()
    bounds[np.diff(np.asarray(index.arrays[f"{level}indptr"])) == 0] = -np.inf
    return bounds


def _build_shard(
    passage_len: np.ndarray,
    remaps: list[np.ndarray],
    vocab: list[str],
    collection: dict,
    passages: list,
    docs,
    settings: dict,
    folder: str,
    *pieces,
) -> dict:
    """A Ray task: one shard — its pieces' term counts (Ray hands them over from wherever they
    were analysed), each renumbered into the collection's vocabulary by its remap — weighted with
    the collection's statistics and saved as a sparse index; returns its per-term weight bounds
    (the driver keeps the collection's maximum)."""
    import scipy.sparse as sp

    from odqa.analysis.base import analyzer_from_dict
    from odqa.retrieval.scoring import ScoringConfig
    from odqa.retrieval.sparse import SparseIndex

    firsts = np.cumsum([0] + [piece.shape[0] for piece in pieces])
    rows = np.concatenate([piece.indices.astype(np.int64) + first for piece, first in zip(pieces, firsts)])
    terms = np.concatenate([np.repeat(remap, np.diff(piece.indptr)) for piece, remap in zip(pieces, remaps)])
    data = np.concatenate([piece.data for piece in pieces])
    counts = sp.csc_matrix((data, (rows, terms)), shape=(int(firsts[-1]), len(vocab)))
    del data, rows, terms
    counts.sort_indices()
    scoring = ScoringConfig(**settings["scoring"])
    index = SparseIndex.from_counts(
        counts,
        vocab,
        analyzer_from_dict(settings["analyzer"]),
        scoring,
        passages,
        settings["corpus"],
        docs,
        passage_len,
        collection,
    )
    index.manifest["shard"] = settings["shard"]
    index.save(folder, {"config.json": settings["config"]})
    bounds = {"max_weight": _term_bounds(index, "")}
    if scoring.document_weight > 0:
        bounds["doc_max_weight"] = _term_bounds(index, "doc_")
    return bounds


def _save_bounds(folder: str, bounds: dict) -> None:
    """A Ray task: the collection's per-term weight bounds written into a shard (the order a
    query's terms are summed in, so every shard adds them as one index would)."""
    for name, values in bounds.items():
        tmp = Path(folder) / f".{name}.tmp.npy"
        np.save(tmp, values)
        os.replace(tmp, Path(folder) / f"{name}.npy")


def build_sharded_index(
    corpus: str | Path,
    out: str | Path,
    shards: int,
    corpus_config=None,
    analyzer=None,
    scoring=None,
    limit: int | None = None,
    quiet: bool = False,
    address: str | None = None,
    piece_passages: int = PIECE_PASSAGES,
) -> tuple[dict, dict]:
    """Build a sharded index of `corpus` into `out` (replaced atomically) on the Ray cluster at
    `address` (default: the one joined, $RAY_ADDRESS, or a local one); returns (manifest, timings).
    `piece_passages`: passages per analysis task (the shards do not depend on it beyond where they
    are cut; a corpus too small for even shards of such pieces is analysed one piece per shard)."""
    from odqa.analysis.base import default_analyzer
    from odqa.config import IndexConfig
    from odqa.corpus import CorpusConfig
    from odqa.io.atomic import atomic_dir
    from odqa.retrieval.build import read_passages
    from odqa.retrieval.scoring import ScoringConfig

    corpus_config = corpus_config or CorpusConfig()
    analyzer = analyzer or default_analyzer()
    scoring = scoring or ScoringConfig()
    if shards < 1:
        raise OdqaError(f"--shards must be at least 1, got {shards}")
    timings: dict[str, float] = {}
    ray = connect(address)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    analyzer_dict = analyzer.model_dump(mode="json")
    task = ray.remote(num_cpus=1, max_retries=2, num_returns=2)(_analyse_piece)

    def analyse(texts: list[str], docs: np.ndarray):
        return task.remote(texts, analyzer_dict, docs)

    start = time.perf_counter()
    # the first pieces are analysed while the rest of the file is read
    pieces = _Pieces(analyse, piece_passages)
    passages, _, info, _ = read_passages(corpus, corpus_config, limit, quiet, pieces.between_documents)
    if not passages:
        raise OdqaError(f"{corpus} holds no text to index")
    pieces.cut(passages, len(passages))
    groups = group_pieces(pieces.sizes, shards)
    if groups is None or not _even(pieces.cuts, groups, len(passages)):
        # too few pieces to make even shards of: one piece per shard, cut between documents
        pieces.cancel(ray)
        cuts = shard_bounds(document_numbers(passages), shards)
        pieces = _Pieces(analyse, None)
        for end in cuts[1:].tolist():
            pieces.cut(passages, end)
        groups = list(range(shards + 1))
    passage_docs = np.concatenate(pieces.docs)
    spans = [(pieces.cuts[g], pieces.cuts[h]) for g, h in zip(groups, groups[1:])]
    timings["passages_s"] = time.perf_counter() - start

    # the summaries come to the driver as they are done and are merged in piece order (the
    # vocabulary numbered by first appearance, as one index numbers it); the counts stay put
    start = time.perf_counter()
    summaries: list[dict | None] = [None] * len(pieces.refs)
    waiting = {summary: i for i, (summary, _) in enumerate(pieces.refs)}
    terms: dict[str, int] = {}
    remaps: list[np.ndarray] = []
    while waiting:
        done, _ = ray.wait(list(waiting), num_returns=1)
        summaries[waiting.pop(done[0])] = ray.get(done[0])
        while len(remaps) < len(summaries) and summaries[len(remaps)] is not None:
            vocab_of = summaries[len(remaps)]["vocab"]
            remaps.append(
                np.fromiter((terms.setdefault(t, len(terms)) for t in vocab_of), dtype=np.int64, count=len(vocab_of))
            )
    vocab = list(terms)
    df, doc_df = np.zeros(len(vocab), dtype=np.int64), np.zeros(len(vocab), dtype=np.int64)
    for part, remap in zip(summaries, remaps):
        df[remap] += part["df"]
        doc_df[remap] += part["doc_df"]
    passage_len = np.concatenate([part["passage_len"] for part in summaries])
    tokens = int(passage_len.sum())
    collection = {
        "passages": len(passages),
        "tokens": tokens,
        "df": df,
        "documents": int(passage_docs[-1]) + 1,
        "doc_tokens": tokens,
        "doc_df": doc_df,
    }
    timings["analysis_s"] = time.perf_counter() - start

    start = time.perf_counter()
    config_text = json.dumps(
        IndexConfig(corpus=corpus_config, analyzer=analyzer, scoring=scoring).to_dict(), ensure_ascii=False, indent=2
    )
    build = ray.remote(num_cpus=1, max_retries=2)(_build_shard)
    vocab_ref, collection_ref = ray.put(vocab), ray.put(collection)
    with atomic_dir(out) as tmp:
        folders = [str(tmp / f"shard-{i:03d}") for i in range(shards)]
        jobs = []
        for i, ((a, b), first, last) in enumerate(zip(spans, groups, groups[1:])):
            held = collections.Counter()  # passages whose counts each node holds
            for j in range(first, last):
                held[summaries[j]["node"]] += int(pieces.sizes[j])
            settings = {
                "scoring": scoring.model_dump(mode="json"),
                "analyzer": analyzer_dict,
                "corpus": info,
                "config": config_text,
                "shard": {"index": i, "shards": shards, "first_passage": a, "passages": b - a},
            }
            jobs.append(
                build.options(
                    # where most of its counts are (any node with room when that one has none)
                    scheduling_strategy=NodeAffinitySchedulingStrategy(held.most_common(1)[0][0], soft=True)
                ).remote(
                    passage_len[a:b],
                    remaps[first:last],
                    vocab_ref,
                    collection_ref,
                    passages[a:b],
                    passage_docs[a:b] - passage_docs[a],
                    settings,
                    folders[i],
                    *[counts for _, counts in pieces.refs[first:last]],
                )
            )
        bounds = ray.get(jobs)
        collection_bounds = {}
        for name in bounds[0]:
            highest = np.max(np.stack([b[name] for b in bounds]), axis=0)
            highest[np.isneginf(highest)] = 0.0  # a term no passage holds: no weight, as one index has it
            collection_bounds[name] = highest
        ray.get([ray.remote(num_cpus=0)(_save_bounds).remote(folder, collection_bounds) for folder in folders])
        manifest = _collection_manifest(analyzer_dict, scoring, info, collection, len(vocab), spans)
        (tmp / "config.json").write_text(config_text, encoding="utf-8")
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    timings["weighting_s"] = time.perf_counter() - start
    return manifest, timings


class _Pieces:
    """Runs of whole documents' passages handed to analysis as they are read: a cut is made
    between two documents once `size` passages have gathered since the last one (with no `size`,
    only where `cut` is called)."""

    def __init__(self, analyse, size: int | None):
        self.analyse, self.size = analyse, size
        self.cuts = [0]
        self.docs: list[np.ndarray] = []  # each piece's passages' documents, numbered by first appearance
        self.refs: list = []  # each piece's (summary, counts) from its analysis task
        self._numbers: dict[str, int] = {}

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.cuts)

    def between_documents(self, passages: list[Passage]) -> None:
        if self.size and len(passages) - self.cuts[-1] >= self.size:
            self.cut(passages, len(passages))

    def cut(self, passages: list[Passage], end: int) -> None:
        run = passages[self.cuts[-1] : end]
        if not run:
            return
        docs = document_numbers(run, self._numbers)
        self.refs.append(self.analyse([p.text for p in run], docs - docs[0]))
        self.docs.append(docs)
        self.cuts.append(end)

    def cancel(self, ray) -> None:
        for summary, _ in self.refs:
            ray.cancel(summary)


def _even(cuts: list[int], groups: list[int], n: int, tolerance: float = 0.05) -> bool:
    """Whether shards made of these groups of pieces are each within `tolerance` of an even share."""
    sizes = np.diff([cuts[g] for g in groups])
    return bool(np.abs(sizes - n / len(sizes)).max() <= tolerance * n / len(sizes))


def _collection_manifest(analyzer: dict, scoring, info: dict, collection: dict, n_terms: int, spans) -> dict:
    import platform

    from odqa import __version__
    from odqa.analysis.base import ANALYSIS_VERSION

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "odqa_version": __version__,
        "analysis_version": ANALYSIS_VERSION,
        "analyzer": analyzer,
        "scoring": scoring.model_dump(mode="json"),
        "corpus": info,
        "counts": {
            "passages": collection["passages"],
            "documents": collection["documents"],
            "tokens": collection["tokens"],
            "vocab": n_terms,
            "shards": len(spans),
        },
        "shards": [{"path": f"shard-{i:03d}", "first_passage": a, "passages": b - a} for i, (a, b) in enumerate(spans)],
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
    }
