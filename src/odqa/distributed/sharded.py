"""A sparse index cut into shards, built as Ray tasks and searched through one Ray actor per shard.

Building (`build_sharded_index`): the corpus is cut into passages exactly as `odqa index` cuts it;
while the file is read, every run of about `piece_passages` passages (whole documents) goes to a Ray
analysis task, so the cluster's cores are busy from the first seconds and, the pieces being small,
stay busy to the end. The driver merges the pieces' vocabularies and sums the statistics BM25 needs
(document frequencies, passage and document counts, token totals); the pieces are grouped into N
contiguous shards of near-even size (never splitting a document), and a second task per shard —
placed on the node holding most of its pieces' term counts, which never pass through the driver —
weights its passages with those *collection* statistics and saves a normal odqa sparse index
(`shard-000/`, ...) that also keeps the collection's per-term weight bounds. So a shard scores every
passage it holds exactly as one index over the whole collection would, and the sharded search
(`ShardedIndex`) — each shard's top k from its actor, merged by (score, passage id) — returns the
same ids and scores.

The shards are written under a temporary folder renamed into place when all are done; a
sharded index needs its folder where every node can read it (one machine, or a shared file
system). Actors restart when their node dies (on any node with room) and calls to them are
retried; a call that gets no answer within `timeout` seconds fails with a clear error."""

from __future__ import annotations

import collections
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from odqa.errors import OdqaError
from odqa.retrieval.base import arrays_to_hits, check_k, check_queries
from odqa.types import Hit, Passage

FORMAT = "odqa.sharded"
FORMAT_VERSION = 1
DEFAULT_TIMEOUT_S = 300.0
# passages per analysis task: pieces this small keep every core busy to the end of the analysis
# (whole shards as tasks left one node idle while the other finished its heavier half)
PIECE_PASSAGES = 8_000


def _ray():
    try:
        import ray
    except ImportError:
        raise OdqaError("sharded indexes run on Ray: pip install 'odqa[ray]'") from None
    return ray


def connect(address: str | None = None):
    """Ray, connected: to the cluster at `address` (or $RAY_ADDRESS), to the one this process has
    already joined, or else to a local cluster started here on this machine's cores."""
    ray = _ray()
    if not ray.is_initialized():
        # a local cluster's token is made and kept by Ray itself: its notice is nothing a user acts on
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        try:
            ray.init(
                address=address or os.environ.get("RAY_ADDRESS"),
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise OdqaError(
                f"cannot reach the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: {e}"
            ) from None
    return ray


# --- building ---------------------------------------------------------------------------------


def document_numbers(passages: Sequence[Passage], numbers: dict[str, int] | None = None) -> np.ndarray:
    """Each passage's document, numbered by first appearance (as the embedded index numbers them);
    `numbers` carries the numbering on from earlier passages."""
    numbers = {} if numbers is None else numbers
    return np.fromiter(
        (numbers.setdefault(p.sources[0].doc_id, len(numbers)) for p in passages), dtype=np.int64, count=len(passages)
    )


def shard_bounds(passage_docs: np.ndarray, shards: int) -> np.ndarray:
    """Passage offsets [0, ..., n] of `shards` contiguous runs, cut only where a document starts,
    each cut at the document start nearest an even split."""
    n = len(passage_docs)
    if shards < 1:
        raise OdqaError(f"--shards must be at least 1, got {shards}")
    if len(passage_docs) and np.any(np.diff(passage_docs) < 0):
        raise OdqaError("the passages are not in document order, so they cannot be cut into shards by document")
    documents = int(passage_docs.max()) + 1 if n else 0
    if shards > documents:
        raise OdqaError(f"{shards} shards need at least {shards} documents; the corpus has {documents}")
    starts = np.nonzero(np.diff(passage_docs))[0] + 1  # where each document after the first begins
    cuts = [0]
    for i in range(1, shards):
        ideal = i * n / shards
        at = np.clip(np.searchsorted(starts, ideal), 1, len(starts) - 1) if len(starts) > 1 else 0
        near = starts[max(at - 1, 0) : at + 1]
        near = near[near > cuts[-1]]
        if not len(near):
            raise OdqaError(f"cannot cut {documents} documents into {shards} non-empty shards")
        cuts.append(int(near[np.argmin(np.abs(near - ideal))]))
    cuts.append(n)
    if any(b <= a for a, b in zip(cuts, cuts[1:])):
        raise OdqaError(f"cannot cut {documents} documents into {shards} non-empty shards")
    return np.asarray(cuts, dtype=np.int64)


def _analyse_piece(texts: list[str], analyzer: dict, docs: np.ndarray) -> tuple[dict, object]:
    """A Ray task: one piece's passages (whole documents) analysed into what the collection sums
    (small, for the driver) and the term counts (large: they stay in the object store until their
    shard's `_build_shard` takes them)."""
    import ray

    from odqa.analysis.base import analyzer_from_dict
    from odqa.analysis.corpus import analyze_corpus
    from odqa.retrieval.sparse import _pooled_counts, count_matrix

    analysed = analyze_corpus(texts, analyzer_from_dict(analyzer), processes=1, quiet=True)
    lengths = np.diff(analysed.offsets)
    rows = np.repeat(np.arange(len(texts), dtype=np.int32), lengths)
    counts = count_matrix(rows, analysed.ids, len(texts), len(analysed.vocab))
    documents = int(docs.max()) + 1
    doc_counts = _pooled_counts(counts, docs, documents)
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


# --- searching --------------------------------------------------------------------------------


def worker_nodes(ray) -> list[str]:
    """The ids of the live nodes that offer CPUs (a head started with none only schedules), or of
    every live node when none does."""
    alive = [n for n in ray.nodes() if n.get("Alive")]
    working = [n for n in alive if n.get("Resources", {}).get("CPU", 0) > 0] or alive
    return [n["NodeID"] for n in working]


class ShardServer:
    """One shard in a Ray actor: its index memory-mapped, searched with local passage ids — a
    sparse shard by query texts, a dense one by query vectors (it loads no encoder)."""

    def __init__(self, folder: str, kind: str = "sparse"):
        if kind == "dense":
            from odqa.retrieval.dense import DenseIndex

            self.index = DenseIndex.load(folder, with_encoder=False)
        else:
            from odqa.retrieval.sparse import SparseIndex

            self.index = SparseIndex.load(folder).warm_up()

    def search_arrays(self, queries: list[str], k: int):
        return self.index.search_arrays(queries, k)

    def search_vectors(self, vectors: np.ndarray, k: int):
        return self.index.search_vectors(vectors, k)

    def passages(self, ids: list[int]) -> list[Passage]:
        return [self.index.passages[i] for i in ids]

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def stats(self) -> dict:
        """Where this shard runs and the memory its process holds (resident and peak, MB)."""
        import resource

        try:
            with open("/proc/self/statm") as f:
                rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError):
            rss = None
        return {
            "node": self.node(),
            "pid": os.getpid(),
            "passages": self.index.n_passages,
            "postings": self.index.manifest["counts"].get("postings"),
            "rss_mb": rss,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


def _check_shard(path: Path, manifest: dict, i: int, entry: dict, own: dict) -> None:
    """Refuse a shard that is not the one this collection's manifest lists in slot `i`: another
    slot or build of the collection, another corpus, other analysis or scoring settings."""
    slot = {"index": i, "shards": len(manifest["shards"]), "first_passage": entry["first_passage"]}
    slot["passages"] = entry["passages"]
    differs = []
    if own.get("shard") != slot:
        differs.append(f"it is {_slot_name(own.get('shard'))}, not shard {i} of {slot['shards']}")
    fingerprint = (manifest.get("corpus") or {}).get("fingerprint")
    if fingerprint and (own.get("corpus") or {}).get("fingerprint") != fingerprint:
        differs.append("it was built from another corpus")
    for key in ("analyzer", "scoring"):
        if key in manifest and own.get(key) != manifest[key]:
            differs.append(f"its {key} settings differ")
    if differs:
        raise OdqaError(
            f"sharded index {path}: {entry['path']} does not belong to it ({'; '.join(differs)}); "
            "rebuild the sharded index"
        )


def _slot_name(slot) -> str:
    if not isinstance(slot, dict):
        return "no shard of a sharded index"
    return f"shard {slot.get('index')} of {slot.get('shards')} (passages from {slot.get('first_passage')})"


class ShardedPassages(Sequence):
    """The collection's passages by global id, fetched from the shard that holds each."""

    def __init__(self, index: ShardedIndex):
        self.index = index

    def __len__(self) -> int:
        return self.index.n_passages

    def __getitem__(self, passage_id):
        if isinstance(passage_id, slice):
            return [self[i] for i in range(*passage_id.indices(len(self)))]
        return self.index.fetch([int(passage_id)])[int(passage_id)]


class ShardedIndex:
    """The retriever over a sharded index (the contract of `odqa.retrieval.base.Retriever`): each
    query batch goes to every shard's actor, and their top k are merged exactly."""

    def __init__(self, path: str | Path, manifest: dict, address: str | None = None, timeout: float | None = None):
        self.path = Path(path)
        self.manifest = manifest
        self.address = address
        self.timeout = timeout or float(os.environ.get("ODQA_SHARD_TIMEOUT", DEFAULT_TIMEOUT_S))
        self.offsets = np.asarray([s["first_passage"] for s in manifest["shards"]] + [self.n_passages], dtype=np.int64)
        self.passages = ShardedPassages(self)
        self.kind = manifest.get("kind", "sparse")
        self.encoder = None  # a dense index's query encoder, loaded here: queries are encoded once
        self._actors: list | None = None

    @classmethod
    def load(cls, path: str | Path, address: str | None = None, timeout: float | None = None) -> ShardedIndex:
        from odqa.retrieval.manifest import read_manifest

        path = Path(path)
        manifest = read_manifest(path, FORMAT)
        shards = manifest.get("shards")
        if not isinstance(shards, list) or not shards:
            raise OdqaError(f"{path}/manifest.json lists no shards; rebuild it with `odqa index --shards N`")
        for i, shard in enumerate(shards):
            if not (path / shard["path"] / "manifest.json").is_file():
                raise OdqaError(f"sharded index {path} is incomplete: {shard['path']} is missing; rebuild it")
            _check_shard(path, manifest, i, shard, read_manifest(path / shard["path"]))
        return cls(path, manifest, address, timeout)

    @property
    def n_passages(self) -> int:
        return int(self.manifest["counts"]["passages"])

    def warm_up(self) -> ShardedIndex:
        """Start one actor per shard (spread over the cluster's nodes) and wait until each has loaded."""
        if self.kind == "dense" and self.encoder is None:
            from odqa.distributed.dense_shards import query_encoder

            self.encoder = query_encoder(self.manifest, self.path)
        if self._actors is None:
            ray = connect(self.address)
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            server = ray.remote(ShardServer)
            nodes = worker_nodes(ray)
            self._actors = [
                server.options(
                    num_cpus=0.01,  # a token share: Ray ignores node affinity for actors that ask for nothing
                    max_restarts=-1,
                    max_task_retries=-1,
                    # shard i on node i mod n; soft: a shard whose node is gone restarts on another
                    scheduling_strategy=NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=True),
                ).remote(str(self.path / shard["path"]), self.kind)
                for i, shard in enumerate(self.manifest["shards"])
            ]
            self._gather("node")
        return self

    def _gather(self, method: str, *args, shards: Sequence[int] | None = None) -> list:
        """`method(*args)` on each shard's actor (or those in `shards`), waiting at most `timeout`."""
        if self._actors is None:
            self.warm_up()
        ray = _ray()
        from ray.exceptions import GetTimeoutError, RayError

        chosen = range(len(self._actors)) if shards is None else shards
        refs = [getattr(self._actors[i], method).remote(*args) for i in chosen]
        try:
            return ray.get(refs, timeout=self.timeout)
        except GetTimeoutError:
            raise OdqaError(
                f"sharded index {self.path}: a shard did not answer within {self.timeout:.0f} s "
                "(its node may be down with no other node free to take it); try again"
            ) from None
        except RayError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise OdqaError(f"sharded index {self.path}: a shard failed: {first}") from None

    def nodes(self) -> list[str]:
        """The Ray node id each shard's actor runs on, by shard."""
        return self._gather("node")

    def stats(self) -> list[dict]:
        """Per shard: its node, process, passages, postings and memory (`ShardServer.stats`)."""
        return self._gather("stats")

    def search_arrays(self, queries: Sequence[str], k: int, threads: int | None = None):
        check_k(k)
        queries = check_queries(queries)
        if not queries:
            return np.zeros((0, k), dtype=np.float32), np.zeros((0, k), dtype=np.int64)
        if self.kind == "dense":
            self.warm_up()
            parts = self._gather("search_vectors", self.encoder.encode(queries, "query"), k)
        else:
            parts = self._gather("search_arrays", queries, k)
        scores = np.concatenate([s for s, _ in parts], axis=1)
        ids = np.concatenate(
            [np.where(i >= 0, i + offset, -1) for (_, i), offset in zip(parts, self.offsets[:-1])], axis=1
        )
        pad = -np.inf if self.kind == "dense" else 0.0  # as the embedded index of the kind pads
        out_scores = np.full((len(queries), k), pad, dtype=np.float32)
        out_ids = np.full((len(queries), k), -1, dtype=np.int64)
        for row in range(len(queries)):
            found = ids[row] >= 0
            row_scores, row_ids = scores[row][found], ids[row][found]
            order = np.lexsort((row_ids, -row_scores))[:k]  # best score first, ties by the smaller id
            out_scores[row, : len(order)] = row_scores[order]
            out_ids[row, : len(order)] = row_ids[order]
        return out_scores, out_ids

    def fetch(self, ids: Sequence[int]) -> dict[int, Passage]:
        """Passages by global id, each from its shard (with its global id)."""
        ids = sorted(set(int(i) for i in ids))
        for i in ids:
            if not 0 <= i < self.n_passages:
                raise IndexError(f"passage id {i} out of range 0..{self.n_passages - 1}")
        by_shard: dict[int, list[int]] = {}
        for i in ids:
            by_shard.setdefault(int(np.searchsorted(self.offsets, i, side="right")) - 1, []).append(i)
        found: dict[int, Passage] = {}
        for shard, wanted in by_shard.items():
            offset = int(self.offsets[shard])
            fetched = self._gather("passages", [i - offset for i in wanted], shards=[shard])[0]
            found.update({i: replace(p, id=i) for i, p in zip(wanted, fetched)})
        return found

    def search(self, queries: Sequence[str], k: int = 10, fetch: bool = False) -> list[list[Hit]]:
        scores, ids = self.search_arrays(queries, k)
        passages = self.fetch(ids[ids >= 0].tolist()) if fetch and ids.size else None
        return arrays_to_hits(scores, ids, passages.__getitem__ if passages is not None else None)

    def save(self, path: str | Path) -> None:
        """A copy of the sharded index at `path` (written atomically)."""
        from odqa.io.atomic import atomic_dir

        if Path(path).resolve() == self.path.resolve():
            return
        with atomic_dir(path) as tmp:
            for item in self.path.iterdir():
                (shutil.copytree if item.is_dir() else shutil.copyfile)(item, tmp / item.name)

    def to_dict(self) -> dict:
        return {"kind": "sharded", "path": str(self.path)}

    def close(self) -> None:
        """Stop the shard actors."""
        if self._actors is not None:
            ray = _ray()
            for actor in self._actors:
                ray.kill(actor, no_restart=True)
            self._actors = None
