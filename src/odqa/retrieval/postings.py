"""Term-major postings from term-count matrices: each token's (unit, term) counted into a CSC
matrix, units pooled into documents, and every (term, unit) entry weighted at once by the index's
scoring (`odqa.retrieval.scoring`). The sparse index, its updates and its shards build with these."""

from __future__ import annotations

import numpy as np

from odqa.retrieval.scoring import ScoringConfig, passage_weights


def count_matrix(unit_of_token: np.ndarray, ids: np.ndarray, n_units: int, n_terms: int):
    """(units x terms) CSC matrix of term frequencies from each token's unit and term id."""
    import scipy.sparse as sp

    counts = sp.csc_matrix((np.ones(len(ids), dtype=np.float32), (unit_of_token, ids)), shape=(n_units, n_terms))
    counts.sum_duplicates()
    return counts


def pooled_counts(counts, unit_group: np.ndarray, n_groups: int):
    """(groups x terms) counts: each group's units' counts summed (exact: small integers in
    float32). Units in group order (a collection's passages are in document order) sum as runs
    within each column, without a sort; any other grouping goes through a sparse product."""
    import scipy.sparse as sp

    if len(unit_group) and np.all(np.diff(unit_group) >= 0):
        counts.sort_indices()
        group_of_entry = unit_group[counts.indices]
        starts = np.ones(len(group_of_entry), dtype=bool)
        starts[1:] = group_of_entry[1:] != group_of_entry[:-1]
        starts[counts.indptr[:-1][np.diff(counts.indptr) > 0]] = True  # every column starts a run
        first = np.nonzero(starts)[0]
        indptr = np.searchsorted(first, counts.indptr)  # runs that start before each column's first entry
        data = np.add.reduceat(counts.data, first) if len(first) else counts.data[:0]
        return sp.csc_matrix((data, group_of_entry[first], indptr), shape=(n_groups, counts.shape[1]))
    pooling = sp.csr_matrix(
        (np.ones(len(unit_group), dtype=np.float32), (unit_group, np.arange(len(unit_group)))),
        shape=(n_groups, len(unit_group)),
    )
    pooled = sp.csc_matrix(pooling @ counts)
    pooled.sum_duplicates()
    return pooled


def unit_lengths(counts) -> np.ndarray:
    """Tokens per unit (row sums of the counts, exact integers)."""
    return np.bincount(counts.indices, weights=counts.data, minlength=counts.shape[0]).astype(np.int64)


def collection_totals(collection: dict, units: str, tokens: str) -> tuple[int, int] | None:
    return (int(collection[units]), int(collection[tokens])) if units in collection else None


def weight_matrix(
    counts, scoring: ScoringConfig, unit_len: np.ndarray, df=None, collection: tuple[int, int] | None = None
) -> dict:
    """Term-major weights of every (term, unit) pair of a CSC count matrix: the weighting scheme
    runs vectorised over all entries. `tf` keeps the counts themselves. `df` and `collection`
    (units, tokens): a whole collection's statistics, when these units are one shard of it."""
    n_terms = counts.shape[1]
    present = np.diff(counts.indptr)
    term_of_entry = np.repeat(np.arange(n_terms, dtype=np.int32), present)
    df = present if df is None else np.asarray(df)
    weights, idf, absent = passage_weights(
        counts.data, term_of_entry, counts.indices, unit_len, df, scoring, collection
    )
    tf_type = np.uint16 if counts.data.max(initial=0) < 2**16 else np.uint32
    return {
        "weights": weights,
        "passage_ids": counts.indices.astype(np.int32),
        "indptr": counts.indptr.astype(np.int64),
        "idf": idf,
        "absent": absent,
        "tf": counts.data.astype(tf_type),
    }
