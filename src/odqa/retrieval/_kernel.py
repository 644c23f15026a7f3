"""Top-k scoring over a term-major postings matrix, many queries at once.

With numba, queries run in parallel threads and each touches only the passages its terms reach;
without it, a numpy loop does the same work one query at a time."""

from __future__ import annotations

import numpy as np

try:  # numba is optional: the numpy path gives the same results, slower.
    import numba

    _HAS_NUMBA = True
except ImportError:  # pragma: no cover - exercised where numba is absent
    _HAS_NUMBA = False


def _topk_numpy(ids: np.ndarray, values: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (value, id), best first, ties by smaller id."""
    k = min(k, len(values))
    if k == 0:
        return values[:0], ids[:0]
    top = np.argpartition(-values, k - 1)[:k] if k < len(values) else np.arange(len(values))
    kth = values[top].min()
    keep = np.nonzero(values >= kth)[0]
    keep = keep[np.lexsort((ids[keep], -values[keep]))][:k]
    return values[keep], ids[keep]


def _doc_scores_numpy(docs, q, q_ptr, q_terms):
    d_data, d_indices, d_indptr, d_weights, passage_doc, n_units, lam = docs
    scores = np.zeros(n_units, dtype=np.float32)
    for j in range(q_ptr[q], q_ptr[q + 1]):
        t = q_terms[j]
        start, end = d_indptr[t], d_indptr[t + 1]
        scores[d_indices[start:end]] += d_weights[j] * d_data[start:end]
    return lam * scores[passage_doc]


def search_numpy(data, indices, indptr, q_ptr, q_terms, q_weights, q_const, n_docs, k, docs=None):
    n_queries = len(q_ptr) - 1
    out_scores = np.zeros((n_queries, k), dtype=np.float32)
    out_ids = np.full((n_queries, k), -1, dtype=np.int64)
    for q in range(n_queries):
        scores = np.zeros(n_docs, dtype=np.float32)
        touched = np.zeros(n_docs, dtype=bool)
        for j in range(q_ptr[q], q_ptr[q + 1]):
            t = q_terms[j]
            start, end = indptr[t], indptr[t + 1]
            # one entry per passage within a term's postings, so plain fancy-index += is exact
            scores[indices[start:end]] += q_weights[j] * data[start:end]
            touched[indices[start:end]] = True
        if docs is not None:
            scores += _doc_scores_numpy(docs, q, q_ptr, q_terms)
        cand = np.nonzero(touched)[0]
        s, i = _topk_numpy(cand, scores[cand], k)
        out_scores[q, : len(s)], out_ids[q, : len(i)] = s + q_const[q], i
    return out_scores, out_ids


if _HAS_NUMBA:

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _search_numba(data, indices, indptr, q_ptr, q_terms, q_weights, q_const, n_docs, k,
                      d_data, d_indices, d_indptr, d_weights, passage_doc, n_units, lam):
        n_queries = len(q_ptr) - 1
        out_scores = np.zeros((n_queries, k), dtype=np.float32)
        out_ids = np.full((n_queries, k), -1, dtype=np.int64)
        for q in numba.prange(n_queries):
            scores = np.zeros(n_docs, dtype=np.float32)
            seen = np.zeros(n_docs, dtype=np.bool_)
            n_touched = 0
            total = 0
            for j in range(q_ptr[q], q_ptr[q + 1]):
                t = q_terms[j]
                total += indptr[t + 1] - indptr[t]
            touched = np.empty(total, dtype=np.int64)
            for j in range(q_ptr[q], q_ptr[q + 1]):
                t = q_terms[j]
                w = q_weights[j]
                for p in range(indptr[t], indptr[t + 1]):
                    d = indices[p]
                    if not seen[d]:
                        seen[d] = True
                        touched[n_touched] = d
                        n_touched += 1
                    scores[d] += w * data[p]
            if lam != 0.0:
                # Document context: each passage also gets lam x its whole document's score.
                unit_scores = np.zeros(n_units, dtype=np.float32)
                for j in range(q_ptr[q], q_ptr[q + 1]):
                    t = q_terms[j]
                    w = d_weights[j]
                    for p in range(d_indptr[t], d_indptr[t + 1]):
                        unit_scores[d_indices[p]] += w * d_data[p]
                for i in range(n_touched):
                    d = touched[i]
                    scores[d] += lam * unit_scores[passage_doc[d]]
            # Only passages that share a term with the query are hits; the rest of the row stays -1.
            cand = touched[:n_touched]
            cand_scores = np.empty(n_touched, dtype=np.float32)
            for i in range(n_touched):
                cand_scores[i] = scores[cand[i]]
            m = min(k, n_touched)
            if m > 0:
                order = _top_order(cand, cand_scores, m)
                for i in range(m):
                    out_scores[q, i] = cand_scores[order[i]] + q_const[q]
                    out_ids[q, i] = cand[order[i]]
        return out_scores, out_ids

    @numba.njit(cache=True, nogil=True)
    def _top_order(ids, values, m):
        """Positions of the m best values, best first, ties by smaller id."""
        kth = np.partition(-values, m - 1)[m - 1]
        keep = np.nonzero(-values <= kth)[0]
        keep = keep[np.argsort(ids[keep], kind="mergesort")]
        keep = keep[np.argsort(-values[keep], kind="mergesort")]
        return keep[:m]


def search(data, indices, indptr, q_ptr, q_terms, q_weights, q_const, n_docs, k, threads=None, docs=None):
    """Top-k (scores, passage ids) per query. `docs`, for document-context scoring, is
    (doc weights, doc postings, doc indptr, per-query-term doc weights, passage → doc, n docs, lam)."""
    k = min(k, n_docs)
    if not _HAS_NUMBA:
        return search_numpy(data, indices, indptr, q_ptr, q_terms, q_weights, q_const, n_docs, k, docs)
    if threads:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    if docs is None:
        empty_f, empty_i = np.zeros(0, dtype=np.float32), np.zeros(1, dtype=np.int64)
        docs = (empty_f, np.zeros(0, dtype=np.int32), empty_i, np.zeros(len(q_terms), dtype=np.float32), np.zeros(0, dtype=np.int32), 0, 0.0)
    d_data, d_indices, d_indptr, d_weights, passage_doc, n_units, lam = docs
    return _search_numba(
        np.asarray(data), np.asarray(indices), np.asarray(indptr), q_ptr, q_terms, q_weights, q_const, n_docs, k,
        np.asarray(d_data), np.asarray(d_indices), np.asarray(d_indptr), d_weights, np.asarray(passage_doc), n_units, float(lam),
    )
