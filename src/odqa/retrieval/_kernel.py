"""Top-k scoring over a term-major postings matrix, many queries at once.

With numba, queries run in parallel threads, each touching only the passages its terms reach and
skipping, exactly, the work that cannot change its top k (MaxScore); without numba, a numpy loop
scores every posting, one query at a time. Both give the same results (tests compare them)."""

from __future__ import annotations

import ctypes
import functools

import numpy as np

try:  # numba is optional: the numpy path gives the same results, slower.
    import numba

    _HAS_NUMBA = True
except ImportError:  # pragma: no cover - exercised where numba is absent
    _HAS_NUMBA = False


@functools.cache
def _gnu_openmp():
    """The GNU OpenMP runtime (numba's `omp` threading layer and torch share it on Linux), or None."""
    try:
        return ctypes.CDLL("libgomp.so.1")
    except OSError:
        return None


def _keeping_openmp_nesting(kernel, *args):
    """`kernel(*args)`, with the calling thread's OpenMP nesting as it was: numba's `omp` layer turns
    nested parallelism on for the thread that first launches it, and torch's bf16 kernels (oneDNN)
    run on that thread afterwards then nest thread teams — on 2 cores, bf16 encoding after a search
    ran 8x slower (fp32 is unaffected; tests/test_kernel.py checks the setting is kept)."""
    gomp = _gnu_openmp()
    before = gomp.omp_get_max_active_levels() if gomp is not None else None
    try:
        return kernel(*args)
    finally:
        if before is not None and gomp.omp_get_max_active_levels() != before:
            gomp.omp_set_max_active_levels(before)


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
    return lam * scores[passage_doc].astype(np.float64)


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
        if docs is not None:  # in float64, then rounded, exactly as the numba kernel does
            scores = (scores + _doc_scores_numpy(docs, q, q_ptr, q_terms)).astype(np.float32)
        cand = np.nonzero(touched)[0]
        s, i = _topk_numpy(cand, scores[cand], k)
        out_scores[q, : len(s)], out_ids[q, : len(i)] = s + q_const[q], i
    return out_scores, out_ids


if _HAS_NUMBA:

    @numba.njit(cache=True, nogil=True, inline="always")
    def _worse(v1, i1, v2, i2):
        """Whether (v1, i1) ranks below (v2, i2): lower score, or equal score and larger id."""
        return v1 < v2 or (v1 == v2 and i1 > i2)

    @numba.njit(cache=True, nogil=True)
    def _sift_down(heap_v, heap_i, size, v, i):
        """Put (v, i) at the root of the first `size` heap slots and restore the heap."""
        pos = 0
        while True:
            child = 2 * pos + 1
            if child >= size:
                break
            if child + 1 < size and _worse(heap_v[child + 1], heap_i[child + 1], heap_v[child], heap_i[child]):
                child += 1
            if _worse(heap_v[child], heap_i[child], v, i):
                heap_v[pos], heap_i[pos] = heap_v[child], heap_i[child]
                pos = child
            else:
                break
        heap_v[pos], heap_i[pos] = v, i

    @numba.njit(cache=True, nogil=True, inline="always")
    def _offer(heap_v, heap_i, size, m, v, i):
        """Offer (v, i) to a min-heap of the m best so far holding `size`; returns the new size.
        Once the heap is full most values are rejected by one comparison with its root."""
        if size < m:
            pos = size  # sift up
            while pos > 0:
                parent = (pos - 1) // 2
                if _worse(v, i, heap_v[parent], heap_i[parent]):
                    heap_v[pos], heap_i[pos] = heap_v[parent], heap_i[parent]
                    pos = parent
                else:
                    break
            heap_v[pos], heap_i[pos] = v, i
            return size + 1
        if m > 0 and _worse(heap_v[0], heap_i[0], v, i):
            _sift_down(heap_v, heap_i, m, v, i)  # replace the worst kept
        return size

    @numba.njit(cache=True, nogil=True)
    def _drain(heap_v, heap_i, size):
        """The heap's pairs, best first (popped worst-first into the back of the output)."""
        out_v = np.empty(size, dtype=np.float32)
        out_i = np.empty(size, dtype=np.int64)
        for slot in range(size - 1, -1, -1):
            out_v[slot], out_i[slot] = heap_v[0], heap_i[0]
            _sift_down(heap_v, heap_i, slot, heap_v[slot], heap_i[slot])
        return out_v, out_i

    @numba.njit(cache=True, nogil=True)
    def _scan_topk(scores, hit, positive, unit_scores, passage_doc, lam, use_docs, k):
        """The k best hits over all passages in id order (so ties keep the smaller id), each
        passage's score plus its document's: one pass, nothing allocated per passage. A hit is a
        passage some query term reached: score > 0 when every weight is positive, else `hit`."""
        n = len(scores)
        heap_v = np.empty(max(k, 1), dtype=np.float32)
        heap_i = np.empty(max(k, 1), dtype=np.int64)
        size = 0
        # Below `floor` nothing can enter: the worst kept score once k are kept, and before that 0
        # where a passage's own score is the test (positive weights, no document part).
        floor = np.float32(0.0) if positive and not use_docs else np.float32(-np.inf)
        for d in range(n):
            if (use_docs or not positive) and ((scores[d] <= 0) if positive else not hit[d]):
                continue
            value = scores[d]
            if use_docs:
                value = np.float32(value + lam * unit_scores[passage_doc[d]])
            if value <= floor:  # ids ascend, so an equal score ranks below the kept one
                continue
            size = _offer(heap_v, heap_i, size, k, value, d)
            if size == k:
                floor = heap_v[0]
        return _drain(heap_v, heap_i, size)

    @numba.njit(cache=True, nogil=True)
    def _add_for(indices, data, lo, hi, targets, is_target, w, scores):
        """Add one term's weights to `targets` only (sorted ids): binary search per target when
        they are few against the postings, a scan of the postings otherwise."""
        if hi <= lo:
            return
        if len(targets) * 20 < hi - lo:
            positions = np.searchsorted(indices[lo:hi], targets)
            for i in range(len(targets)):
                pos = lo + positions[i]
                if pos < hi and indices[pos] == targets[i]:
                    scores[targets[i]] += w * data[pos]
        else:
            for p in range(lo, hi):
                d = indices[p]
                if is_target[d]:
                    scores[d] += w * data[p]

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _search_numba(
        data,
        indices,
        indptr,
        q_ptr,
        q_terms,
        q_weights,
        q_pbound,
        q_const,
        n_docs,
        k,
        d_data,
        d_indices,
        d_indptr,
        d_weights,
        q_dbound,
        passage_doc,
        n_units,
        lam,
        positive,
    ):
        """Term-at-a-time with exact MaxScore pruning. Terms arrive sorted by their largest possible
        contribution. Once no passage that has not yet been touched can reach the k-th best score,
        the remaining (common, cheap-to-bound) terms are only looked up, by binary search, for the
        passages that can still make the top k: the results equal a full scan.

        `positive` (every stored and query weight > 0, as in Lucene's BM25): a passage is touched
        exactly when its score is above zero, so nothing but the scores is kept per passage (the
        inner loop is then bm25s's: one add per posting)."""
        n_queries = len(q_ptr) - 1
        out_scores = np.zeros((n_queries, k), dtype=np.float32)
        out_ids = np.full((n_queries, k), -1, dtype=np.int64)
        use_docs = lam != 0.0
        for q in numba.prange(n_queries):
            start, end = q_ptr[q], q_ptr[q + 1]
            scores = np.zeros(n_docs, dtype=np.float32)
            seen = np.zeros(1 if positive else n_docs, dtype=np.bool_)
            unit_scores = np.zeros(n_units if use_docs else 1, dtype=np.float32)
            p_rem = 0.0
            d_rem = 0.0
            remaining = 0  # postings not yet scanned
            for j in range(start, end):
                p_rem += q_pbound[j]
                d_rem += q_dbound[j]
                remaining += indptr[q_terms[j] + 1] - indptr[q_terms[j]]
            n_touched = 0
            d_max = 0.0
            theta = 0.0
            switched = False
            last_check = np.inf
            checks = 0
            j = start
            while j < end:
                # Checking costs a pass over the passages: worth it only when the postings left to
                # scan are longer, and the bound has halved since the last failed check; twice at most.
                unseen_bound = p_rem + lam * (d_max + d_rem)
                if (
                    checks < 2
                    and (positive or n_touched >= k)
                    and remaining > 4 * n_docs
                    and unseen_bound < 0.5 * last_check
                ):
                    checks += 1
                    last_check = unseen_bound
                    best_v, _ = _scan_topk(scores, seen, positive, unit_scores, passage_doc, lam, use_docs, k)
                    theta = best_v[k - 1] if len(best_v) == k else -np.inf  # fewer than k hits: no bound yet
                    if unseen_bound * 1.0001 + 1e-6 < theta:
                        switched = True
                        break
                t = q_terms[j]
                w = q_weights[j]
                if positive:
                    for p in range(indptr[t], indptr[t + 1]):
                        d = indices[p]
                        scores[d] += w * data[p]
                else:
                    for p in range(indptr[t], indptr[t + 1]):
                        d = indices[p]
                        if not seen[d]:
                            seen[d] = True
                            n_touched += 1
                        scores[d] += w * data[p]
                if use_docs:
                    w = d_weights[j]
                    for p in range(d_indptr[t], d_indptr[t + 1]):
                        u = d_indices[p]
                        unit_scores[u] += w * d_data[p]
                        if unit_scores[u] > d_max:
                            d_max = unit_scores[u]
                p_rem -= q_pbound[j]
                d_rem -= q_dbound[j]
                remaining -= indptr[t + 1] - indptr[t]
                j += 1
            if switched:
                # Candidates: touched passages whose best case still reaches theta.
                slack = (p_rem + lam * d_rem) * 1.0001 + 1e-6
                is_cand = np.zeros(n_docs, dtype=np.bool_)
                for d in range(n_docs):
                    if (scores[d] > 0) if positive else seen[d]:
                        value = scores[d] + (lam * unit_scores[passage_doc[d]] if use_docs else 0.0)
                        is_cand[d] = value + slack >= theta
                cand = np.nonzero(is_cand)[0]
                units = np.empty(0, dtype=np.int64)
                is_unit = np.zeros(n_units if use_docs else 1, dtype=np.bool_)
                if use_docs:
                    units = np.unique(passage_doc[cand].astype(np.int64))
                    for i in range(len(units)):
                        is_unit[units[i]] = True
                for jj in range(j, end):
                    t = q_terms[jj]
                    _add_for(indices, data, indptr[t], indptr[t + 1], cand, is_cand, q_weights[jj], scores)
                    if use_docs:
                        _add_for(
                            d_indices, d_data, d_indptr[t], d_indptr[t + 1], units, is_unit, d_weights[jj], unit_scores
                        )
                best_v, best_i = _scan_topk(scores, is_cand, False, unit_scores, passage_doc, lam, use_docs, k)
            else:
                # Only passages that share a term with the query are hits; the rest of the row stays -1.
                best_v, best_i = _scan_topk(scores, seen, positive, unit_scores, passage_doc, lam, use_docs, k)
            for i in range(len(best_v)):
                out_scores[q, i] = best_v[i] + q_const[q]
                out_ids[q, i] = best_i[i]
        return out_scores, out_ids


def search(
    data,
    indices,
    indptr,
    q_ptr,
    q_terms,
    q_weights,
    q_const,
    n_docs,
    k,
    threads=None,
    docs=None,
    q_pbound=None,
    q_dbound=None,
    exhaustive=False,
    positive=None,
):
    """Top-k (scores, passage ids) per query. `docs`, for document-context scoring, is
    (doc weights, doc postings, doc indptr, per-query-term doc weights, passage → doc, n docs, lam).
    `q_pbound`/`q_dbound`: each query term's largest possible contribution at passage/document
    level, with each query's terms sorted by them (largest first): they enable exact pruning.
    `positive`: whether every stored weight is > 0 (computed here when not given; callers that
    search often pass it, as the sparse index does)."""
    k = min(k, n_docs)
    if not _HAS_NUMBA:
        return search_numpy(data, indices, indptr, q_ptr, q_terms, q_weights, q_const, n_docs, k, docs)
    if threads:
        numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    if docs is None:
        empty_f, empty_i = np.zeros(0, dtype=np.float32), np.zeros(1, dtype=np.int64)
        docs = (
            empty_f,
            np.zeros(0, dtype=np.int32),
            empty_i,
            np.zeros(len(q_terms), dtype=np.float32),
            np.zeros(0, dtype=np.int32),
            0,
            0.0,
        )
    d_data, d_indices, d_indptr, d_weights, passage_doc, n_units, lam = docs
    if exhaustive or q_pbound is None:
        q_pbound = np.full(len(q_terms), np.inf)  # an infinite bound never allows pruning
    q_pbound = np.asarray(q_pbound, dtype=np.float64)
    q_dbound = np.zeros(len(q_terms)) if q_dbound is None else np.asarray(q_dbound, dtype=np.float64)
    return _keeping_openmp_nesting(
        _search_numba,
        np.asarray(data),
        np.asarray(indices),
        np.asarray(indptr),
        q_ptr,
        q_terms,
        q_weights,
        q_pbound,
        q_const,
        n_docs,
        k,
        np.asarray(d_data),
        np.asarray(d_indices),
        np.asarray(d_indptr),
        d_weights,
        q_dbound,
        np.asarray(passage_doc),
        n_units,
        float(lam),
        bool((positive if positive is not None else np.min(data, initial=np.inf) > 0) and np.all(q_weights > 0)),
    )
