"""Dense re-scoring of a first stage's top N, on the fly: the bi-encoder encodes each question and
only the passages the first stage returned for it, and its similarity is fused with the first
stage's score. Hybrid-like ranking without a dense index of the collection — a few dozen passage
encodings per question instead of hours of encoding a whole corpus on a CPU
(benchmarks/rescore_ko.py measures it against BM25 alone on the full kowiki sample).

    rescorer = DenseRescorer.load("models/me5-small", weight=1.0, top=20)  # precision="bf16": faster on bf16 CPUs
    retriever = HybridRetriever([SparseIndex.load("indexes/kowiki-bm25")], rescorer=rescorer)

Passage vectors are kept in a bounded cache (passage id → vector), so a passage that many
questions retrieve is encoded once per process."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from odqa.errors import OdqaError
from odqa.retrieval.fusion import FUSIONS, fuse
from odqa.types import Hit


class DenseRescorer:
    """Re-sorts each query's first-stage hits by `fusion` of the first stage's score (weight 1) and
    the encoder's similarity (`weight`); `weight=inf` ranks by the encoder alone."""

    def __init__(self, encoder, weight: float = 1.0, top: int = 20, fusion: str = "combsum", cache_size: int = 50_000):
        if fusion not in FUSIONS:
            raise OdqaError(f"unknown fusion {fusion!r} for re-scoring; choose one of {', '.join(FUSIONS)}")
        if not weight >= 0:
            raise OdqaError(f"the re-scoring weight must be ≥ 0 (inf: the encoder alone), got {weight}")
        if top < 1:
            raise OdqaError(f"re-scoring needs at least one candidate per query, got top={top}")
        self.encoder, self.weight, self.top, self.fusion = encoder, float(weight), int(top), fusion
        self.cache_size = cache_size
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self.path: Path | None = None  # the encoder's folder, when loaded from one

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, precision: str = "fp32", **settings) -> DenseRescorer:
        """`precision="bf16"` encodes in bfloat16 (`DenseEncoder`): faster where bf16 computes fast."""
        from odqa.retrieval.encoder import DenseEncoder

        rescorer = cls(DenseEncoder.load(path, device=device, precision=precision), **settings)
        rescorer.path = Path(path)
        return rescorer

    def to_dict(self) -> dict:
        if self.path is None:
            raise OdqaError("this re-scorer's encoder lives only in memory; save it and load it from its folder")
        described = {"encoder": str(self.path), "weight": self.weight, "top": self.top, "fusion": self.fusion}
        return described | {"precision": self.encoder.precision}

    def passage_vectors(self, hits: Sequence[Hit]) -> dict[int, np.ndarray]:
        """Vectors of these hits' passages: cached ones as they are, the rest encoded in one call."""
        missing = list({h.passage_id: h.passage for h in hits if h.passage_id not in self.cache}.items())
        if any(passage is None for _, passage in missing):
            raise OdqaError("re-scoring needs the passages' text: search with fetch=True")
        if missing:
            vectors = self.encoder.encode([passage.text for _, passage in missing], "passage")
            for (pid, _), vector in zip(missing, vectors):
                self.cache[pid] = vector
        found = {}
        for h in hits:
            self.cache.move_to_end(h.passage_id)
            found[h.passage_id] = self.cache[h.passage_id]
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return found

    def rerank(self, queries: Sequence[str], candidates: Sequence[Sequence[Hit]]) -> list[list[Hit]]:
        """Each query's hits (passages fetched) re-sorted by the fused score."""
        if len(queries) != len(candidates):
            raise OdqaError(f"{len(queries)} queries but {len(candidates)} candidate lists")
        if not queries:
            return []
        query_vectors = self.encoder.encode(list(queries), "query")
        vectors = self.passage_vectors([h for hits in candidates for h in hits])
        out = []
        for query_vector, hits in zip(query_vectors, candidates):
            if not hits:
                out.append([])
                continue
            similarity = np.stack([vectors[h.passage_id] for h in hits]) @ query_vector
            order = sorted(range(len(hits)), key=lambda i: (-similarity[i], hits[i].passage_id))
            dense = [
                Hit(hits[i].passage_id, float(similarity[i]), rank, hits[i].passage) for rank, i in enumerate(order, 1)
            ]
            if np.isinf(self.weight):
                out.append(dense)
            else:
                out.append(fuse([hits, dense], len(hits), self.fusion, [1.0, self.weight]))
        return out
