"""Dense retrieval: a FAISS index over the passage vectors of a bi-encoder (`odqa.retrieval.encoder`),
in a folder like the sparse index (manifest, passages, written atomically, checked on load).

    encoder = DenseEncoder.load("runs/dense-1")
    index = DenseIndex.build(passages, encoder, faiss="hnsw")
    index.save("indexes/kowiki-dense"); DenseIndex.load("indexes/kowiki-dense").search(["질문"], k=20)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from odqa import __version__
from odqa.errors import OdqaError
from odqa.io.atomic import atomic_dir
from odqa.io.store import PassageStore, write_passages
from odqa.retrieval.base import check_k, check_queries, hits_to_arrays, saved_path
from odqa.retrieval.encoder import DenseEncoder, built_encoder, check_built_with
from odqa.retrieval.manifest import read_manifest
from odqa.types import Hit, Passage

FORMAT = "odqa.dense"
FORMAT_VERSION = 1


def _faiss():
    try:
        import faiss
    except ImportError:
        raise OdqaError("dense retrieval needs faiss: pip install 'odqa[dense]' (faiss-cpu)") from None
    return faiss


def available_memory() -> int | None:
    """Bytes of memory the system can still give (Linux MemAvailable); None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def index_memory(n: int, dim: int, kind: str, hnsw_m: int = 32) -> int:
    """Peak bytes to build a FAISS index of `n` vectors: the float32 vectors (held while the index
    copies them) plus the index itself."""
    vectors = n * dim * 4
    index = {"flat": vectors, "hnsw": vectors + n * hnsw_m * 2 * 4, "ivfpq": n * (dim // 8 + 8)}.get(kind, vectors)
    return vectors + index


def check_memory(n: int, dim: int, kind: str, available: int | None = None) -> None:
    """Refuse, before hours of encoding, a corpus whose index cannot fit in memory."""
    available = available_memory() if available is None else available
    need = index_memory(n, dim, kind)
    if available is not None and need > 0.8 * available:
        gb = 1024**3
        raise OdqaError(
            f"{n:,} passages × {dim} dimensions need ~{need / gb:.1f} GB to build a {kind} index, and only "
            f"{available / gb:.1f} GB of memory is available. Build it with --faiss ivfpq (~{dim // 8 + 8} bytes a "
            f"passage), or encode it with --shards N --shard i on several processes or machines and merge on one "
            f"with more memory, or index part of the corpus with --limit."
        )


def make_faiss_index(vectors: np.ndarray, kind: str = "flat", hnsw_m: int = 32, ef_search: int = 128):
    """Inner-product FAISS index over `vectors` (cosine when they are normalised)."""
    faiss = _faiss()
    dim = vectors.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200
        index.hnsw.efSearch = ef_search
    elif kind == "ivfpq":
        # compressed: ~dim/8 bytes per passage instead of 4 × dim; for corpora that outgrow memory
        n = len(vectors)
        nlist = max(1, min(4096, int(4 * np.sqrt(n))))
        m = next(m for m in (64, 48, 32, 24, 16, 12, 8, 6, 4, 3, 2, 1) if dim % m == 0 and m <= dim)
        bits = 8 if n >= 256 * 39 else max(1, int(np.log2(max(2, n // 39))))
        if n < nlist * 39:
            nlist = max(1, n // 39)
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, bits, faiss.METRIC_INNER_PRODUCT)
        index.train(np.ascontiguousarray(vectors, dtype=np.float32))
        index.nprobe = min(nlist, 32)
    else:
        raise OdqaError(f"unknown FAISS index kind {kind!r}; choose flat, hnsw or ivfpq")
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


class DenseIndex:
    def __init__(
        self, encoder: DenseEncoder | None, faiss_index, manifest: dict, passages=None, encoder_path: str | None = None
    ):
        self.encoder, self.faiss_index, self.manifest, self.passages = encoder, faiss_index, manifest, passages
        self.encoder_path = encoder_path
        self.path: Path | None = None

    @classmethod
    def build(
        cls,
        passages: Sequence[Passage],
        encoder: DenseEncoder,
        faiss: str = "flat",
        encoder_path: str | None = None,
        corpus_info: dict | None = None,
        progress: bool = False,
        vectors: np.ndarray | None = None,
    ) -> DenseIndex:
        """Encode `passages` (or take their precomputed `vectors`) into a FAISS index."""
        if not passages:
            raise OdqaError("cannot index an empty corpus")
        if vectors is None:
            vectors = encoder.encode([p.text for p in passages], "passage", progress)
        if len(vectors) != len(passages):
            raise OdqaError(f"{len(vectors)} vectors for {len(passages)} passages")
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "odqa_version": __version__,
            "encoder": {"path": encoder_path, **encoder.config.to_dict(), "precision": encoder.precision},
            "faiss": faiss,
            "corpus": corpus_info or {},
            "counts": {"passages": len(passages), "dim": int(vectors.shape[1])},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        stored = passages if hasattr(passages, "write_to") else list(passages)  # a store copies itself
        return cls(encoder, make_faiss_index(vectors, faiss), manifest, stored, encoder_path)

    def save(self, path: str | Path) -> None:
        faiss = _faiss()
        with atomic_dir(path) as tmp:
            faiss.write_index(self.faiss_index, str(tmp / "faiss.index"))
            write_passages(tmp, self.passages)
            (tmp / "manifest.json").write_text(
                json.dumps(self.manifest, ensure_ascii=False, indent=2), encoding="utf-8"
            )
        self.path = Path(path)

    def to_dict(self) -> dict:
        return {"kind": "dense", "path": saved_path(self, "dense")}

    def warm_up(self) -> DenseIndex:
        """The encoder is loaded with the index (its dimension is checked then); nothing is deferred."""
        return self

    @classmethod
    def load(
        cls,
        path: str | Path,
        encoder: DenseEncoder | None = None,
        device: str | None = None,
        mmap: bool = True,
        with_encoder: bool = True,
    ) -> DenseIndex:
        """With `mmap` the vectors (flat and HNSW storage, IVF lists) stay on disk, paged in as
        searched: many processes share one copy and loading takes no time. Without `with_encoder`
        no encoder is loaded: the index answers `search_vectors` only (a shard whose queries are
        encoded once, by the process that fans them out)."""
        path = Path(path)
        manifest = read_manifest(path, FORMAT)
        faiss = _faiss()
        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if mmap else 0
        if not (path / "faiss.index").is_file():
            raise OdqaError(f"dense index {path} is incomplete: faiss.index is missing; rebuild it")
        try:
            faiss_index = faiss.read_index(str(path / "faiss.index"), flags)
        except RuntimeError as e:
            raise OdqaError(
                f"dense index {path}: faiss.index is damaged ({str(e).splitlines()[-1]}); rebuild it"
            ) from None
        if not isinstance(manifest.get("encoder"), dict):
            raise OdqaError(f"dense index {path}: its manifest does not describe its encoder; rebuild it")
        store = PassageStore(path)
        if faiss_index.ntotal != manifest["counts"]["passages"] or len(store) != faiss_index.ntotal:
            raise OdqaError(
                f"dense index {path} does not match its manifest (files changed after it was built); rebuild it"
            )
        encoder_path = manifest["encoder"].get("path")
        if not with_encoder:
            index = cls(None, faiss_index, manifest, store, encoder_path)
            index.path = path
            return index
        if encoder is None:
            if not encoder_path:
                raise OdqaError(f"dense index {path} does not name its encoder; pass one")
            encoder = built_encoder(manifest["encoder"], device)
        check_built_with(encoder, manifest["encoder"], faiss_index.d, f"dense index {path}")
        index = cls(encoder, faiss_index, manifest, store, encoder_path)
        index.path = path
        return index

    @property
    def n_passages(self) -> int:
        return int(self.manifest["counts"]["passages"])

    def search_arrays(self, queries: Sequence[str], k: int, threads: int | None = None):
        return hits_to_arrays(self.search(queries, k), k)

    def search_vectors(self, vectors: np.ndarray, k: int):
        """FAISS's (scores, ids) for query vectors already encoded, at most `k` per query (-1 ids pad)."""
        return self.faiss_index.search(np.ascontiguousarray(vectors, dtype=np.float32), min(k, self.n_passages))

    def search(self, queries: Sequence[str], k: int = 10, fetch: bool = False) -> list[list[Hit]]:
        check_k(k)
        queries = check_queries(queries)
        if not queries:
            return []
        vectors = self.encoder.encode(queries, "query")
        scores, ids = self.search_vectors(vectors, k)
        results = []
        for row_scores, row_ids in zip(scores, ids):
            hits = []
            for rank, (pid, score) in enumerate(((int(p), float(s)) for p, s in zip(row_ids, row_scores) if p >= 0), 1):
                hits.append(Hit(pid, score, rank, self.passages[pid] if fetch else None))
            results.append(hits)
        return results
