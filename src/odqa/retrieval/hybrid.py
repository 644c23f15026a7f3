"""Opening any index folder by its manifest, fusing several retrievers over the same passages,
re-scoring the fused top N with a bi-encoder on the fly (`odqa.retrieval.rescore`), and reranking
the candidates with a cross-encoder: the one retriever the rest of odqa uses.

    retriever = open_retriever(["indexes/kowiki-bm25", "indexes/kowiki-dense"], fusion="combsum", weights=[1, 0.5],
                               rerank="runs/reranker-1", rerank_top=50, rerank_weight=0.5)
    retriever = open_retriever("indexes/kowiki-bm25", rescore="models/me5-small", rescore_weight=1, rescore_top=20)
    retriever.search(["질문"], k=20, fetch=True)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from odqa.errors import OdqaError
from odqa.retrieval.base import check_k, check_queries, hits_to_arrays
from odqa.retrieval.fusion import FUSIONS, fuse
from odqa.retrieval.manifest import read_manifest
from odqa.types import Hit

HYBRID_FORMAT = "odqa.hybrid"


def load_index(path: str | Path, device: str | None = None):
    """A SparseIndex or a DenseIndex, by the format its manifest names."""
    manifest = read_manifest(path)
    kind = manifest["format"]
    if kind == HYBRID_FORMAT:
        if not isinstance(manifest.get("retriever"), dict):
            raise OdqaError(f"{path}/manifest.json does not say which indexes to fuse; save the hybrid again")
        return retriever_from_dict(manifest["retriever"], device)
    if kind == "odqa.dense":
        from odqa.retrieval.dense import DenseIndex

        return DenseIndex.load(path, device=device)
    if kind == "odqa.sharded":
        from odqa.distributed.sharded import ShardedIndex

        return ShardedIndex.load(path)
    from odqa.retrieval.sparse import SparseIndex

    return SparseIndex.load(path)


class HybridRetriever:
    """Several retrievers over the same passages, fused; optionally re-scored by a bi-encoder
    (`rescorer`, a `DenseRescorer`: its top N) and then reranked by a cross-encoder."""

    def __init__(
        self,
        retrievers: Sequence,
        fusion: str = "combsum",
        weights: Sequence[float] | None = None,
        depth: int = 100,
        reranker=None,
        rerank_top: int = 50,
        rescorer=None,
    ):
        if not retrievers:
            raise OdqaError("a hybrid retriever needs at least one index")
        if fusion not in FUSIONS:
            raise OdqaError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
        counts = {r.n_passages for r in retrievers}
        fingerprints = {r.manifest.get("corpus", {}).get("fingerprint") for r in retrievers} - {None}
        if len(counts) > 1 or len(fingerprints) > 1:
            raise OdqaError(
                "the indexes to fuse were built over different passages (counts or corpus fingerprints differ); "
                "build them from the same corpus and config"
            )
        self.retrievers, self.fusion, self.weights, self.depth = list(retrievers), fusion, weights, depth
        self.reranker, self.rerank_top, self.rescorer = reranker, rerank_top, rescorer
        self.passages = retrievers[0].passages
        self.manifest = retrievers[0].manifest
        self.path: Path | None = None

    @property
    def n_passages(self) -> int:
        return self.retrievers[0].n_passages

    def to_dict(self) -> dict:
        """The indexes (by folder), fusion and reranker: `retriever_from_dict` opens it again."""
        rerank = None
        if self.reranker is not None:
            rerank = getattr(self.reranker, "path", None)
            if rerank is None:
                raise OdqaError("this hybrid's reranker lives only in memory; save it and load it from its folder")
        return {
            "kind": "hybrid",
            "retrievers": [r.to_dict() for r in self.retrievers],
            "fusion": self.fusion,
            "weights": list(self.weights) if self.weights is not None else None,
            "depth": self.depth,
            "rerank": str(rerank) if rerank else None,
            "rerank_top": self.rerank_top,
            "rerank_weight": getattr(self.reranker, "weight", None),
            "rerank_fusion": getattr(self.reranker, "fusion", "combsum"),
            "rerank_precision": getattr(self.reranker, "precision", "fp32"),
            "rescore": self.rescorer.to_dict() if self.rescorer is not None else None,
        }

    def save(self, path: str | Path) -> None:
        """A hybrid index folder: a manifest naming its indexes' folders (absolute), its fusion and
        reranker; `load_index`/`open_retriever` open it like any index. The indexes stay where they are."""
        import time

        from odqa import __version__
        from odqa.io.atomic import atomic_dir

        described = self.to_dict()
        for part in described["retrievers"]:
            part["path"] = str(Path(part["path"]).resolve())
        if described["rerank"]:
            described["rerank"] = str(Path(described["rerank"]).resolve())
        if described["rescore"]:
            described["rescore"]["encoder"] = str(Path(described["rescore"]["encoder"]).resolve())
        manifest = {
            "format": HYBRID_FORMAT,
            "format_version": 1,
            "odqa_version": __version__,
            "retriever": described,
            "corpus": self.manifest.get("corpus", {}),
            "counts": {"passages": self.n_passages},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        with atomic_dir(path) as tmp:
            (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
        self.path = Path(path)

    def warm_up(self) -> HybridRetriever:
        for retriever in self.retrievers:
            retriever.warm_up()
        return self

    def search(self, queries: Sequence[str], k: int = 10, fetch: bool = False) -> list[list[Hit]]:
        queries = check_queries(queries)
        check_k(k)
        depth = max(k, self.depth, self.rerank_top if self.reranker else 0, self.rescorer.top if self.rescorer else 0)
        if len(self.retrievers) == 1:
            fused = self.retrievers[0].search(list(queries), k=depth)
        else:
            runs = [r.search(list(queries), k=depth) for r in self.retrievers]
            fused = [fuse([run[q] for run in runs], depth, self.fusion, self.weights) for q in range(len(queries))]
        stages = [(self.rescorer, getattr(self.rescorer, "top", 0)), (self.reranker, self.rerank_top)]
        for stage, top_n in [(stage, top_n) for stage, top_n in stages if stage is not None]:
            top = [
                [Hit(h.passage_id, h.score, h.rank, h.passage or self.passages[h.passage_id]) for h in hits[:top_n]]
                for hits in fused
            ]
            fused = [resorted + hits[top_n:] for resorted, hits in zip(stage.rerank(queries, top), fused)]
        out = []
        for hits in fused:
            hits = hits[:k]
            out.append(
                [
                    Hit(h.passage_id, h.score, rank, (h.passage or self.passages[h.passage_id]) if fetch else None)
                    for rank, h in enumerate(hits, 1)
                ]
            )
        return out

    def search_arrays(self, queries: Sequence[str], k: int, threads: int | None = None):
        return hits_to_arrays(self.search(queries, k), k)


def tune_fusion(
    retrievers: Sequence,
    questions: Sequence,
    ks: Sequence[int] = (1, 5, 20),
    methods: Sequence[str] = tuple(FUSIONS),
    grid: Sequence[float] = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0),
    depth: int = 100,
    qrels: dict | None = None,
) -> dict:
    """Choose the fusion method and weights on (training, never evaluation) questions. Each
    retriever searches once; every candidate — each method with the first retriever's weight at 1
    and each other's over `grid` — is fused from those runs and scored by has-answer top-k (by
    article recall with `qrels`). The best has the highest mean over the cut-offs ≥ 5, then top-1.
    Returns {"candidates": [{fusion, weights, top1, …}], "best": {...}}."""
    import itertools

    from odqa.evaluation import score_rankings

    if len(retrievers) < 2:
        raise OdqaError("tuning fusion needs at least two indexes")
    HybridRetriever(retrievers)  # refuses indexes over different passages
    if not questions:
        raise OdqaError("no questions to tune fusion on")
    texts = [q.text for q in questions]
    runs = [r.search(texts, k=max(depth, *ks)) for r in retrievers]
    k_max = max(ks)
    candidates = []
    for method in methods:
        for others in itertools.product(grid, repeat=len(retrievers) - 1):
            weights = (1.0, *others)
            fused = [fuse([run[q] for run in runs], k_max, method, weights) for q in range(len(questions))]
            metrics = score_rankings(hits_to_arrays(fused, k_max)[1], questions, retrievers[0].passages, ks, qrels)
            if qrels is not None:
                scores = {
                    f"recall@{k_max}": metrics["qrels"][f"recall@{k_max}"],
                    f"mrr@{k_max}": metrics["qrels"][f"mrr@{k_max}"],
                }
                key = (scores[f"recall@{k_max}"], scores[f"mrr@{k_max}"])
            else:
                if "has_answer" not in metrics:
                    raise OdqaError("the tuning questions have no answers: give SQuAD-format questions or --qrels")
                scores = {f"top{k}": metrics["has_answer"][f"top{k}"] for k in ks}
                wide = [scores[f"top{k}"] for k in ks if k >= 5] or [scores[f"top{k_max}"]]
                key = (sum(wide) / len(wide), scores[f"top{min(ks)}"])
            candidates.append({"fusion": method, "weights": list(weights), **scores, "_key": key})
    best = max(candidates, key=lambda c: c["_key"])
    for c in candidates:
        c.pop("_key")
    return {"questions": len(questions), "candidates": candidates, "best": best}


def retriever_from_dict(data: dict, device: str | None = None):
    """A retriever from its `to_dict()`: {"kind": "sparse"|"dense"|"sharded", "path"} or {"kind": "hybrid", ...}."""
    if not isinstance(data, dict) or data.get("kind") not in ("sparse", "dense", "sharded", "hybrid"):
        kind = data.get("kind") if isinstance(data, dict) else data
        raise OdqaError(f"unknown retriever {kind!r}: a retriever is described as sparse, dense, sharded or hybrid")
    if data["kind"] in ("sparse", "dense", "sharded"):
        if not isinstance(data.get("path"), str):
            raise OdqaError(f"a {data['kind']} retriever is described by its folder ('path')")
        index = load_index(data["path"], device)
        if index.manifest["format"] != f"odqa.{data['kind']}":
            raise OdqaError(f"{data['path']} is not a {data['kind']} index")
        return index
    parts = data.get("retrievers")
    if not isinstance(parts, list) or not parts:
        raise OdqaError("a hybrid retriever lists the retrievers it fuses ('retrievers')")
    reranker = None
    if data.get("rerank"):
        from odqa.retrieval.rerank import Reranker

        reranker = Reranker.load(
            data["rerank"],
            device=device,
            weight=data.get("rerank_weight"),
            fusion=data.get("rerank_fusion", "combsum"),
            precision=data.get("rerank_precision", "fp32"),
        )
    rescorer = None
    if data.get("rescore"):
        rescorer = _rescorer(data["rescore"], device)
    return HybridRetriever(
        [retriever_from_dict(part, device) for part in parts],
        data.get("fusion", "combsum"),
        data.get("weights"),
        data.get("depth", 100),
        reranker,
        data.get("rerank_top", 50),
        rescorer,
    )


def _rescorer(described: dict, device: str | None):
    from odqa.retrieval.rescore import DenseRescorer

    if not isinstance(described, dict) or not isinstance(described.get("encoder"), str):
        raise OdqaError("a re-scorer is described by its encoder's folder ('encoder')")
    settings = {key: described[key] for key in ("weight", "top", "fusion", "precision") if key in described}
    return DenseRescorer.load(described["encoder"], device=device, **settings)


def open_retriever(
    paths: Sequence[str | Path] | str | Path,
    fusion: str = "combsum",
    weights=None,
    depth: int = 100,
    rerank: str | None = None,
    rerank_top: int = 50,
    device: str | None = None,
    rescore: str | None = None,
    rescore_weight: float = 1.0,
    rescore_top: int = 20,
    rescore_precision: str = "fp32",
    rerank_weight: float | None = None,
    rerank_fusion: str = "combsum",
    rerank_precision: str = "fp32",
):
    """One index as it is, or several fused (and/or re-scored by a bi-encoder, reranked by a
    cross-encoder) as a HybridRetriever. `rerank_weight`: the cross-encoder's score fused with the
    first stage's at this weight (None: re-sorted by the cross-encoder alone); `rerank_precision`
    and `rescore_precision`: "bf16" scores in bfloat16."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    indexes = [load_index(p, device) for p in paths]
    reranker = rescorer = None
    if rerank:
        from odqa.retrieval.rerank import Reranker

        reranker = Reranker.load(
            rerank, device=device, weight=rerank_weight, fusion=rerank_fusion, precision=rerank_precision
        )
    if rescore:
        described = {"encoder": str(rescore), "weight": rescore_weight, "top": rescore_top}
        rescorer = _rescorer(described | {"precision": rescore_precision}, device)
    if len(indexes) == 1 and reranker is None and rescorer is None:
        return indexes[0]
    return HybridRetriever(indexes, fusion, weights, depth, reranker, rerank_top, rescorer)
