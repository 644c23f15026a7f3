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
