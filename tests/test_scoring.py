"""Every weighting scheme pinned against a direct, loop-by-loop reference implementation, and
the BM25 variants against bm25s (the reference library) where it is installed."""

import math
from collections import Counter

import numpy as np
import pytest

from odqa.analysis.base import WhitespaceConfig
from odqa.analysis.corpus import AnalyzedCorpus
from odqa.retrieval.scoring import ScoringConfig
from odqa.retrieval.sparse import SparseIndex

CORPUS = [
    "a b c a",
    "b c d",
    "a a a e f",
    "c d e f g h",
    "b",
    "a c e g i k m o",
    "d d d d",
]
QUERIES = ["a", "a b", "c d e", "a a f", "z", "g h i m"]


def reference_score(method, query, doc, docs, k1, b, delta):
    n = len(docs)
    avg = sum(len(d) for d in docs) / n
    tf = Counter(doc)
    score = 0.0
    qcounts = Counter(t for t in query if any(t in d for d in docs))
    if method == "tfidf":
        idf = {t: math.log((1 + n) / (1 + sum(t in d for d in docs))) + 1 for t in set(doc) | set(qcounts)}
        dvec = {t: (1 + math.log(c)) * idf[t] for t, c in tf.items()}
        norm = math.sqrt(sum(v * v for v in dvec.values())) or 1.0
        return sum((1 + math.log(c)) * idf[t] * dvec.get(t, 0.0) / norm for t, c in qcounts.items())
    for t, qtf in qcounts.items():
        df = sum(t in d for d in docs)
        f = tf.get(t, 0)
        norm = 1 - b + b * len(doc) / avg
        if method == "robertson":
            idf = math.log(max((n - df + 0.5) / (df + 0.5), 1.0))
            w = f / (f + k1 * norm)
        elif method == "lucene":
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            w = f / (f + k1 * norm)
        elif method == "atire":
            idf = math.log(n / df)
            w = f * (k1 + 1) / (f + k1 * norm)
        elif method == "bm25l":
            idf = math.log((n + 1) / (df + 0.5))
            c = f / norm
            w = (k1 + 1) * (c + delta) / (k1 + c + delta)
        elif method == "bm25+":
            idf = math.log((n + 1) / df)
            w = f * (k1 + 1) / (f + k1 * norm) + delta
        score += qtf * idf * w
    return score


def build(method, k1=1.2, b=0.75, delta=0.5):
    vocab: dict[str, int] = {}
    ids = [vocab.setdefault(t, len(vocab)) for d in CORPUS for t in d.split()]
    offsets = np.cumsum([0] + [len(d.split()) for d in CORPUS])
    analyzed = AnalyzedCorpus(np.asarray(ids, dtype=np.int32), offsets, list(vocab))
    config = ScoringConfig(method=method, k1=k1, b=b, delta=delta, document_weight=0.0)
    return SparseIndex.from_analyzed(analyzed, WhitespaceConfig(), config)


@pytest.mark.parametrize("method", ["robertson", "lucene", "atire", "bm25l", "bm25+", "tfidf"])
@pytest.mark.parametrize("k1,b", [(1.2, 0.75), (0.9, 0.4), (2.0, 1.0)])
def test_scores_match_reference(method, k1, b):
    index = build(method, k1, b)
    docs = [d.split() for d in CORPUS]
    scores, ids = index.search_arrays(QUERIES, k=len(CORPUS))
    for q, query in enumerate(QUERIES):
        expected = {d: reference_score(method, query.split(), doc, docs, k1, b, 0.5) for d, doc in enumerate(docs)}
        matched = {d for d, doc in enumerate(docs) if set(query.split()) & set(doc)}
        got = {int(i): float(s) for s, i in zip(scores[q], ids[q]) if i >= 0}
        assert set(got) == matched, query
        for d, s in got.items():
            assert s == pytest.approx(expected[d], rel=1e-5, abs=1e-6), (method, query, d)
        # ranked best first
        assert list(got.values()) == sorted(got.values(), reverse=True)


@pytest.mark.parametrize("method", ["robertson", "lucene", "atire", "bm25l", "bm25+"])
def test_scores_match_bm25s(method):
    bm25s = pytest.importorskip("bm25s")
    reference = bm25s.BM25(method=method, k1=1.2, b=0.75, delta=0.5)
    reference.index([d.split() for d in CORPUS], show_progress=False)
    index = build(method)
    for query in ["a b", "c d e", "g h i m"]:
        expected = reference.get_scores(query.split())
        scores, ids = index.search_arrays([query], k=len(CORPUS))
        for s, i in zip(scores[0], ids[0]):
            if i >= 0:
                assert s == pytest.approx(expected[i], rel=1e-5), (method, query, i)


@pytest.mark.parametrize("method", ["lucene", "bm25+", "tfidf"])
def test_document_context_adds_weighted_document_score(method):
    """Passages 0-2 form document A, 3-6 document B: each passage's score gains lam x the score
    of its document (all its passages pooled), computed by the same scheme on document level."""
    from odqa.retrieval import _kernel

    docs_of = np.array([0, 0, 0, 1, 1, 1, 1])
    lam = 0.5
    plain = build(method)
    vocab: dict[str, int] = {}
    ids = [vocab.setdefault(t, len(vocab)) for d in CORPUS for t in d.split()]
    offsets = np.cumsum([0] + [len(d.split()) for d in CORPUS])
    analyzed = AnalyzedCorpus(np.asarray(ids, dtype=np.int32), offsets, list(vocab))
    config = ScoringConfig(method=method, k1=1.2, b=0.75, document_weight=lam)
    fused = SparseIndex.from_analyzed(analyzed, WhitespaceConfig(), config, passage_docs=docs_of)
    documents = [[t for i in np.nonzero(docs_of == d)[0] for t in CORPUS[i].split()] for d in (0, 1)]
    for query in QUERIES:
        p_scores, p_ids = plain.search_arrays([query], k=7)
        f_scores, f_ids = fused.search_arrays([query], k=7)
        base = {int(i): float(s) for s, i in zip(p_scores[0], p_ids[0]) if i >= 0}
        got = {int(i): float(s) for s, i in zip(f_scores[0], f_ids[0]) if i >= 0}
        assert set(got) == set(base)
        for pid, score in got.items():
            doc_score = reference_score(method, query.split(), documents[docs_of[pid]], documents, 1.2, 0.75, 0.5)
            assert score == pytest.approx(base[pid] + lam * doc_score, rel=1e-5, abs=1e-5), (query, pid)
        numpy_scores, numpy_ids = _kernel.search_numpy(
            *[fused.arrays[n] for n in ("weights", "passage_ids", "indptr")],
            *fused._query_arrays([query])[:4],
            7,
            7,
            fused._query_arrays([query])[4],
        )
        assert [int(i) for i in numpy_ids[0] if i >= 0] == [int(i) for i in f_ids[0] if i >= 0]


def test_document_counts_pool_passage_counts_with_or_without_document_order():
    import scipy.sparse as sp

    from odqa.retrieval.postings import pooled_counts

    rng = np.random.default_rng(0)
    counts = sp.csc_matrix(rng.poisson(0.4, size=(40, 25)).astype(np.float32))
    in_order = np.sort(rng.integers(0, 9, size=40))  # passages in document order (the run path)
    shuffled = rng.permutation(in_order)  # any grouping (the sparse product path)
    for groups in (in_order, shuffled):
        expected = np.zeros((9, 25), dtype=np.float32)
        np.add.at(expected, groups, counts.toarray())
        pooled = pooled_counts(counts.copy(), groups, 9)
        np.testing.assert_array_equal(pooled.toarray(), expected)
        assert pooled.has_sorted_indices and pooled.nnz == np.count_nonzero(expected)
