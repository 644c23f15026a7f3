"""The embedded sparse index: an analyzer, a weighting scheme (BM25 variants, TF-IDF), a
term-major postings matrix of precomputed weights (memory-mapped on load) and the passages.

On disk it is a folder: manifest.json, vocab.json, postings (*.npy) and the passage store.
Writes go to a temporary folder renamed into place; loading checks the manifest."""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from odqa import __version__
from odqa.analysis.base import ANALYSIS_VERSION, AnalyzerConfig, analyzer_from_dict, analyzer_libraries
from odqa.analysis.corpus import AnalyzedCorpus
from odqa.errors import OdqaError
from odqa.io.atomic import atomic_dir
from odqa.io.store import PassageStore, write_passages
from odqa.retrieval.base import arrays_to_hits, check_k, check_queries, saved_path
from odqa.retrieval.manifest import load_array
from odqa.retrieval.manifest import read_manifest as read_index_manifest
from odqa.retrieval.postings import collection_totals, count_matrix, pooled_counts, unit_lengths, weight_matrix
from odqa.retrieval.scoring import ScoringConfig, query_weights
from odqa.settings import describe_errors
from odqa.types import Hit, Passage

FORMAT = "odqa.sparse"
FORMAT_VERSION = 1
_ARRAYS = ("weights", "passage_ids", "indptr", "idf", "absent")
_DOC_ARRAYS = ("doc_weights", "doc_passage_ids", "doc_indptr", "doc_idf", "doc_absent", "passage_docs")


class SparseIndex:
    def __init__(
        self,
        analyzer: AnalyzerConfig,
        scoring: ScoringConfig,
        arrays: dict[str, np.ndarray],
        vocab: list[str],
        manifest: dict,
        passages: Sequence[Passage] | PassageStore | None = None,
    ):
        self.analyzer_config = analyzer
        self.scoring = scoring
        self.arrays = arrays
        self.vocab = vocab
        self.manifest = manifest
        self.passages = passages
        self._analyzer = None
        self._term_ids: dict[str, int] | None = None
        self._bounds: dict[str, np.ndarray | bool] = {}
        self.path: Path | None = None

    # --- building -----------------------------------------------------------------------------

    @classmethod
    def from_analyzed(
        cls,
        analyzed: AnalyzedCorpus,
        analyzer: AnalyzerConfig,
        scoring: ScoringConfig,
        passages: Sequence[Passage] | None = None,
        corpus_info: dict | None = None,
        passage_docs: np.ndarray | None = None,
    ) -> SparseIndex:
        """Weights from token ids. With `scoring.document_weight`, a second matrix scores whole
        documents (all passages of a document pooled); `passage_docs[i]` is passage i's document
        number, taken from the passages' first source when not given."""
        n_passages, n_terms = len(analyzed), len(analyzed.vocab)
        if n_passages == 0:
            raise OdqaError("cannot index an empty corpus")
        passage_of_token = np.repeat(np.arange(n_passages, dtype=np.int32), np.diff(analyzed.offsets))
        counts = count_matrix(passage_of_token, analyzed.ids, n_passages, n_terms)
        del passage_of_token
        return cls.from_counts(
            counts, analyzed.vocab, analyzer, scoring, passages, corpus_info, passage_docs, np.diff(analyzed.offsets)
        )

    @classmethod
    def from_counts(
        cls,
        counts,
        vocab: list[str],
        analyzer: AnalyzerConfig,
        scoring: ScoringConfig,
        passages: Sequence[Passage] | None = None,
        corpus_info: dict | None = None,
        passage_docs: np.ndarray | None = None,
        passage_len: np.ndarray | None = None,
        collection: dict | None = None,
    ) -> SparseIndex:
        """Weights from a (passages x terms) CSC matrix of term counts, which the index keeps
        (`tf`, with `passage_len`, the tokens of each passage: the counts' row sums, computed
        when not given) so that documents can be added and deleted without analysing the rest again.

        `collection` makes this index one shard of a larger collection (`odqa.distributed`): the
        counts' columns are the collection's vocabulary and weights use its statistics —
        `passages`, `tokens`, `df` (per term), and with document context `documents`,
        `doc_tokens`, `doc_df` — so the shard scores each passage as one index over all would."""

        n_passages, n_terms = counts.shape
        if n_passages == 0:
            raise OdqaError("cannot index an empty corpus")
        passage_len = unit_lengths(counts) if passage_len is None else np.asarray(passage_len, dtype=np.int64)
        whole = collection or {}
        totals = collection_totals(whole, "passages", "tokens")
        arrays = weight_matrix(counts, scoring, passage_len, whole.get("df"), totals)
        arrays["passage_len"] = passage_len.astype(np.int32)
        extra_counts = {}
        if scoring.document_weight > 0:
            if passage_docs is None:
                if passages is None:
                    raise OdqaError("document_weight > 0 needs the passages (or passage_docs) to know their documents")
                numbers: dict[str, int] = {}
                passage_docs = np.fromiter(
                    (numbers.setdefault(passages[i].sources[0].doc_id, len(numbers)) for i in range(n_passages)),
                    dtype=np.int32,
                    count=n_passages,
                )
            passage_docs = np.asarray(passage_docs, dtype=np.int32)
            n_docs = int(passage_docs.max()) + 1
            doc_counts = pooled_counts(counts, passage_docs, n_docs)
            doc_len = np.bincount(passage_docs, weights=passage_len, minlength=n_docs).astype(np.int64)
            doc_arrays = weight_matrix(
                doc_counts, scoring, doc_len, whole.get("doc_df"), collection_totals(whole, "documents", "doc_tokens")
            )
            del doc_arrays["tf"]
            arrays |= {f"doc_{name}": value for name, value in doc_arrays.items()}
            arrays["passage_docs"] = passage_docs
            extra_counts = {"documents": n_docs, "document_postings": len(doc_arrays["weights"])}
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "odqa_version": __version__,
            "analysis_version": ANALYSIS_VERSION,
            "analyzer_libraries": analyzer_libraries(analyzer),
            "analyzer": analyzer.model_dump(mode="json"),
            "scoring": scoring.model_dump(mode="json"),
            "corpus": corpus_info or {},
            "counts": {
                "passages": n_passages,
                "vocab": n_terms,
                "postings": len(arrays["weights"]),
                "tokens": int(passage_len.sum()),
                "empty_passages": int((passage_len == 0).sum()),
                **extra_counts,
            },
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(),
        }
        return cls(analyzer, scoring, arrays, list(vocab), manifest, passages)

    # --- persistence --------------------------------------------------------------------------

    def save(self, path: str | Path, extra_files: dict[str, str] | None = None) -> None:
        """Write the index folder atomically; `extra_files` (name → text) are written into it too."""
        if self.passages is None:
            raise OdqaError("this index has no passages attached; build it with passages to save it")
        with atomic_dir(path) as tmp:
            for name, array in self.arrays.items():
                np.save(tmp / f"{name}.npy", np.asarray(array))
            (tmp / "vocab.json").write_text(json.dumps(self.vocab, ensure_ascii=False), encoding="utf-8")
            write_passages(tmp, self.passages)  # a store copies its files; a list is written out
            for name, text in (extra_files or {}).items():
                (tmp / name).write_text(text, encoding="utf-8")
            (tmp / "manifest.json").write_text(
                json.dumps(self.manifest, ensure_ascii=False, indent=2), encoding="utf-8"
            )
        self.path = Path(path)

    def to_dict(self) -> dict:
        return {"kind": "sparse", "path": saved_path(self, "sparse")}

    def warm_up(self) -> SparseIndex:
        """Load the query analyzer (a dictionary for mecab or kiwi) and the term table now."""
        self.analyze("warm")
        if self._term_ids is None:
            self._term_ids = {t: i for i, t in enumerate(self.vocab)}
        return self

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> SparseIndex:
        path = Path(path)
        manifest = read_manifest(path)
        analyzer = analyzer_from_dict(manifest.get("analyzer"))
        built_with, now = manifest.get("analyzer_libraries"), analyzer_libraries(analyzer)
        if built_with is not None and built_with != now:
            changed = ", ".join(
                f"{name} {built_with.get(name, '?')} at build, {now.get(name, '?')} now"
                for name in sorted(set(built_with) | set(now))
                if built_with.get(name) != now.get(name)
            )
            raise OdqaError(
                f"index {path} was analysed with other analyzer libraries ({changed}): queries would be "
                "analysed differently from the passages; rebuild it with `odqa index` or install those versions"
            )
        try:
            scoring = ScoringConfig(**manifest.get("scoring", {}))
        except (TypeError, ValidationError) as e:
            problem = describe_errors(e) if isinstance(e, ValidationError) else e
            raise OdqaError(
                f"index {path}: its manifest's scoring settings are invalid ({problem}); rebuild it"
            ) from None
        names = _ARRAYS + (_DOC_ARRAYS if scoring.document_weight > 0 else ())
        arrays = {name: load_array(path, name, mmap) for name in names}
        from odqa.retrieval.change import TABLE

        for name in (*TABLE, "max_weight", "doc_max_weight"):  # update tables; a shard's collection bounds
            if (path / f"{name}.npy").is_file():
                arrays[name] = load_array(path, name, mmap)
        try:
            vocab = json.loads((path / "vocab.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise OdqaError(f"index {path}: vocab.json is missing or damaged ({e}); rebuild it") from None
        counts = manifest["counts"]
        if (
            not isinstance(vocab, list)
            or len(vocab) != counts.get("vocab")
            or len(arrays["weights"]) != counts.get("postings")
            or len(arrays["indptr"]) != counts["vocab"] + 1
        ):
            raise OdqaError(f"index {path} does not match its manifest (files changed after it was built); rebuild it")
        store = PassageStore(path)
        if len(store) != counts["passages"]:
            raise OdqaError(
                f"index {path}: the passage store has {len(store)} passages, the manifest {counts['passages']}; "
                "rebuild it"
            )
        index = cls(analyzer, scoring, arrays, vocab, manifest, store)
        index.path = path
        return index

    # --- searching ----------------------------------------------------------------------------

    @property
    def n_passages(self) -> int:
        return int(self.manifest["counts"]["passages"])

    def analyze(self, text: str) -> list[str]:
        if self._analyzer is None:
            self._analyzer = self.analyzer_config.build(query=True)
        return self._analyzer(text)

    def _query_arrays(self, queries: Sequence[str]):
        if self._term_ids is None:
            self._term_ids = {t: i for i, t in enumerate(self.vocab)}
        term_ids = self._term_ids
        q_ptr = [0]
        terms: list[int] = []
        counts: list[int] = []
        for query in queries:
            bag = Counter(term_ids[t] for t in self.analyze(query) if t in term_ids)
            terms.extend(bag.keys())
            counts.extend(bag.values())
            q_ptr.append(len(terms))
        q_terms = np.asarray(terms, dtype=np.int64)
        q_ptr_arr = np.asarray(q_ptr, dtype=np.int64)
        counts_arr = np.asarray(counts, dtype=np.float64)
        q_weights, q_const = self._query_side("", q_terms, counts_arr, q_ptr_arr)
        q_pbound = q_weights * self._max_weights("")[q_terms]
        q_dbound = np.zeros(len(q_terms))
        lam = self.scoring.document_weight
        if lam > 0:
            d_weights, d_const = self._query_side("doc_", q_terms, counts_arr, q_ptr_arr)
            q_const = q_const + lam * d_const
            q_dbound = d_weights * self._max_weights("doc_")[q_terms]
        # Within each query, terms by largest possible contribution first: the kernel prunes on it.
        order = np.lexsort((-(q_pbound + lam * q_dbound), np.repeat(np.arange(len(queries)), np.diff(q_ptr_arr))))
        q_terms, q_weights, q_pbound, q_dbound = q_terms[order], q_weights[order], q_pbound[order], q_dbound[order]
        docs = None
        if lam > 0:
            a = self.arrays
            n_docs = int(self.manifest["counts"]["documents"])
            docs = (
                a["doc_weights"],
                a["doc_passage_ids"],
                a["doc_indptr"],
                d_weights[order],
                a["passage_docs"],
                n_docs,
                lam,
            )
        return q_ptr_arr, q_terms, q_weights, q_const, docs, q_pbound, q_dbound

    def _max_weights(self, level: str) -> np.ndarray:
        """Each term's largest stored weight at one level (computed once, on first search)."""
        key = f"{level}max_weight"
        if key not in self._bounds and key in self.arrays:  # a shard keeps its collection's bounds
            self._bounds[key] = np.asarray(self.arrays[key], dtype=np.float64)
        if key not in self._bounds:
            weights, indptr = np.asarray(self.arrays[f"{level}weights"]), np.asarray(self.arrays[f"{level}indptr"])
            bounds = np.zeros(len(indptr) - 1, dtype=np.float64)
            nonempty = np.nonzero(np.diff(indptr))[0]
            if len(nonempty):
                bounds[nonempty] = np.maximum.reduceat(weights, indptr[nonempty])
            self._bounds[key] = bounds
        return self._bounds[key]

    def _query_side(self, level: str, q_terms: np.ndarray, counts: np.ndarray, q_ptr: np.ndarray):
        """Per-term query weights at one level ('' passages, 'doc_' documents), and each query's
        constant from terms that score even where absent (BM25L/BM25+)."""
        weights = query_weights(counts, np.asarray(self.arrays[f"{level}idf"])[q_terms], self.scoring)
        absent = np.asarray(self.arrays[f"{level}absent"])[q_terms] * weights
        cumulative = np.concatenate([[0.0], np.cumsum(absent, dtype=np.float64)])
        return weights, (cumulative[q_ptr[1:]] - cumulative[q_ptr[:-1]]).astype(np.float32)

    def search_arrays(
        self, queries: Sequence[str], k: int, threads: int | None = None, exhaustive: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """(scores, passage ids), each (queries, k); rows are padded with id -1 when fewer match.
        `exhaustive` turns pruning off (the results are the same; tests compare the two)."""
        check_k(k)
        queries = check_queries(queries)
        q_ptr, q_terms, q_weights, q_const, docs, q_pbound, q_dbound = self._query_arrays(queries)
        a = self.arrays
        from odqa.retrieval import _kernel  # numba compiles on first use, not when odqa is imported

        return _kernel.search(
            a["weights"],
            a["passage_ids"],
            a["indptr"],
            q_ptr,
            q_terms,
            q_weights,
            q_const,
            self.n_passages,
            k,
            threads,
            docs,
            q_pbound,
            q_dbound,
            exhaustive,
            self._positive_weights(),
        )

    def _positive_weights(self) -> bool:
        """Whether every stored passage weight is > 0 (true of Lucene's BM25), so the kernel can
        tell a passage a query reached by its score alone (computed once, on first search)."""
        if "positive" not in self._bounds:
            weights = np.asarray(self.arrays["weights"])
            self._bounds["positive"] = bool(weights.min(initial=np.inf) > 0)
        return self._bounds["positive"]

    def search(
        self, queries: Sequence[str], k: int = 10, fetch: bool = False, threads: int | None = None
    ) -> list[list[Hit]]:
        scores, ids = self.search_arrays(queries, k, threads)
        return arrays_to_hits(scores, ids, self.passages.__getitem__ if fetch and self.passages is not None else None)


def read_manifest(path: Path) -> dict:
    """A sparse index's manifest, checked (`retrieval.manifest`), and analysed as queries are now."""
    manifest = read_index_manifest(path, FORMAT)
    if manifest.get("analysis_version") != ANALYSIS_VERSION:
        raise OdqaError(
            f"{path} was built with analyzer version {manifest.get('analysis_version')}, but this odqa analyzes "
            f"queries as version {ANALYSIS_VERSION}: queries would not match the index; rebuild it with `odqa index`"
        )
    return manifest
