"""The numba kernel, the numpy fallback and a brute-force ranking agree, ties broken by id."""

import numpy as np
import pytest

from odqa.retrieval import _kernel


def random_postings(rng, n_docs=300, n_terms=40):
    dense = (rng.random((n_terms, n_docs)) < 0.1) * rng.integers(1, 4, (n_terms, n_docs)).astype(np.float32)
    indptr = np.concatenate([[0], np.cumsum((dense > 0).sum(axis=1))]).astype(np.int64)
    indices = np.concatenate([np.nonzero(row)[0] for row in dense]).astype(np.int32)
    data = np.concatenate([row[row > 0] for row in dense]).astype(np.float32)
    return dense, data, indices, indptr


def brute_force(dense, terms, weights, k):
    scores = (dense[terms] * weights[:, None]).sum(axis=0)
    touched = np.nonzero((dense[terms] > 0).any(axis=0))[0]
    order = sorted(touched, key=lambda d: (-scores[d], d))[:k]
    return [(float(scores[d]), int(d)) for d in order]


@pytest.mark.parametrize("search", ["numpy", "numba"])
def test_kernels_agree_with_brute_force(search):
    if search == "numba" and not _kernel._HAS_NUMBA:
        pytest.skip("numba not installed")
    rng = np.random.default_rng(0)
    dense, data, indices, indptr = random_postings(rng)
    queries = [rng.choice(40, size=rng.integers(1, 5), replace=False) for _ in range(25)] + [
        np.array([], dtype=np.int64)
    ]
    q_ptr = np.concatenate([[0], np.cumsum([len(q) for q in queries])]).astype(np.int64)
    q_terms = np.concatenate(queries).astype(np.int64)
    q_weights = np.ones(len(q_terms), dtype=np.float32)
    q_const = np.zeros(len(queries), dtype=np.float32)
    fn = _kernel.search_numpy if search == "numpy" else _kernel.search
    scores, ids = fn(data, indices, indptr, q_ptr, q_terms, q_weights, q_const, dense.shape[1], 10)
    for q, terms in enumerate(queries):
        expected = brute_force(dense, terms, np.ones(len(terms), dtype=np.float32), 10)
        got = [(float(s), int(i)) for s, i in zip(scores[q], ids[q]) if i >= 0]
        assert [i for _, i in got] == [i for _, i in expected]
        assert np.allclose([s for s, _ in got], [s for s, _ in expected])


@pytest.mark.parametrize("lam", [0.0, 0.25, 1.0])
@pytest.mark.parametrize("k", [1, 10, 100])
def test_pruned_search_equals_exhaustive_search(lam, k):
    """MaxScore pruning must not change a single result: a Zipfian corpus makes common terms
    that the pruned kernel only looks up."""
    from odqa.analysis.base import WhitespaceConfig
    from odqa.analysis.corpus import AnalyzedCorpus
    from odqa.retrieval.scoring import ScoringConfig
    from odqa.retrieval.sparse import SparseIndex

    rng = np.random.default_rng(7)
    vocab = [f"w{i}" for i in range(400)]
    lengths = rng.integers(5, 60, size=3000)
    ids = np.minimum(rng.zipf(1.3, size=int(lengths.sum())) - 1, len(vocab) - 1).astype(np.int32)
    analyzed = AnalyzedCorpus(ids, np.concatenate([[0], np.cumsum(lengths)]), vocab)
    docs = np.repeat(np.arange(600), 5).astype(np.int32)
    index = SparseIndex.from_analyzed(
        analyzed, WhitespaceConfig(), ScoringConfig(document_weight=lam), passage_docs=docs
    )
    queries = [
        " ".join(vocab[t] for t in np.minimum(rng.zipf(1.2, size=rng.integers(1, 12)) - 1, 399)) for _ in range(60)
    ]
    pruned_scores, pruned_ids = index.search_arrays(queries, k)
    full_scores, full_ids = index.search_arrays(queries, k, exhaustive=True)
    assert (pruned_ids == full_ids).all()
    assert np.array_equal(pruned_scores, full_scores)


def _zipf_index(rng, n_passages, lam=0.0, method="lucene"):
    from odqa.analysis.base import WhitespaceConfig
    from odqa.analysis.corpus import AnalyzedCorpus
    from odqa.retrieval.scoring import ScoringConfig
    from odqa.retrieval.sparse import SparseIndex

    vocab = [f"w{i}" for i in range(200)]
    lengths = rng.integers(5, 60, size=n_passages)
    ids = np.minimum(rng.zipf(1.3, size=int(lengths.sum())) - 1, len(vocab) - 1).astype(np.int32)
    analyzed = AnalyzedCorpus(ids, np.concatenate([[0], np.cumsum(lengths)]), vocab)
    docs = (np.arange(n_passages) // 5).astype(np.int32)
    scoring = ScoringConfig(method=method, document_weight=lam)
    return SparseIndex.from_analyzed(analyzed, WhitespaceConfig(), scoring, passage_docs=docs), vocab


@pytest.mark.skipif(not _kernel._HAS_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("lam", [0.0, 0.5])
def test_pruning_really_switches_and_changes_nothing(monkeypatch, lam):
    """Queries of one rare term and many common ones: the kernel stops scanning the common
    terms and only looks them up for the passages still in reach (run here as plain Python, so
    the switch can be counted), and the ranking equals a full scan."""
    rng = np.random.default_rng(3)
    index, vocab = _zipf_index(rng, 300, lam)
    df = np.diff(index.arrays["indptr"])
    rare, common = np.nonzero((df >= 1) & (df <= 2))[0], np.argsort(-df)[:8]
    queries = [" ".join([vocab[t]] + [vocab[c] for c in common]) for t in rare[:6]]
    full_scores, full_ids = index.search_arrays(queries, 1, exhaustive=True)
    lookups = []
    add_for = _kernel._add_for
    monkeypatch.setattr(_kernel, "_add_for", lambda *args: lookups.append(1) or add_for(*args))
    monkeypatch.setattr(_kernel, "_search_numba", _kernel._search_numba.py_func)
    pruned_scores, pruned_ids = index.search_arrays(queries, 1)
    assert lookups, "pruning never switched to look-ups"
    assert (pruned_ids == full_ids).all()
    assert np.allclose(pruned_scores, full_scores)


@pytest.mark.skipif(not _kernel._HAS_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("lam", [0.0, 0.25])
def test_scores_alone_tell_hits_when_weights_are_positive(lam):
    """Lucene's BM25 stores only positive weights, so the kernel tells a passage a query reached
    by its score; Robertson's idf can be negative, so there it keeps a per-passage mark. Both
    give what the numpy reference gives, and forcing the marks on Lucene's weights changes nothing."""
    rng = np.random.default_rng(5)
    queries = [" ".join(rng.choice([f"w{i}" for i in range(200)], size=rng.integers(1, 8))) for _ in range(40)]
    for method in ("lucene", "robertson"):
        index, _ = _zipf_index(rng, 400, lam, method)
        assert index._positive_weights() == (method == "lucene")
        scores, ids = index.search_arrays(queries, 10, exhaustive=True)
        q_ptr, q_terms, q_weights, q_const, docs, _, _ = index._query_arrays(queries)
        a = index.arrays
        ref_scores, ref_ids = _kernel.search_numpy(
            a["weights"], a["passage_ids"], a["indptr"], q_ptr, q_terms, q_weights, q_const, 400, 10, docs
        )
        assert (ids == ref_ids).all(), method
        assert np.allclose(scores, ref_scores, atol=1e-4), method
        marked = _kernel.search(
            a["weights"], a["passage_ids"], a["indptr"], q_ptr, q_terms, q_weights, q_const, 400, 10, 2, docs,
            exhaustive=True, positive=False,
        )  # fmt: skip
        assert (marked[1] == ids).all() and np.array_equal(marked[0], scores)


def test_a_search_leaves_the_threads_openmp_nesting_as_it_was():
    """numba's OpenMP layer turns nested parallelism on for the thread that first launches it;
    torch's bf16 kernels then nest thread teams on that thread (bf16 encoding after a search ran 8x
    slower on 2 cores). The kernel puts the setting back. A fresh process, so numba starts here."""
    import ctypes
    import subprocess
    import sys

    if not _kernel._HAS_NUMBA:
        pytest.skip("numba not installed")
    try:
        ctypes.CDLL("libgomp.so.1")
    except OSError:
        pytest.skip("no GNU OpenMP runtime")
    script = """
import ctypes, numpy as np
from odqa.retrieval import _kernel
gomp = ctypes.CDLL("libgomp.so.1")
before = gomp.omp_get_max_active_levels()
data, indices = np.ones(3, dtype=np.float32), np.arange(3, dtype=np.int32)
indptr = np.array([0, 3], dtype=np.int64)
ones = np.ones(1, dtype=np.float32)
_kernel.search(data, indices, indptr, np.array([0, 1]), np.array([0]), ones, np.zeros(1, np.float32), 3, 2)
import numba
print(numba.threading_layer(), before, gomp.omp_get_max_active_levels())
"""
    layer, before, after = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    if layer != "omp":
        pytest.skip(f"numba runs its {layer} threading layer here")
    assert after == before
