"""Term weighting schemes as small vectorised functions chosen from a table (after bm25s's
scoring.py). A scheme gives each (term, passage) pair a weight stored in the index; a query's
score for a passage is the sum, over query terms, of query weight x stored weight (+ a per-term
constant for the variants whose absent terms still score, BM25L and BM25+)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Method = Literal["robertson", "atire", "bm25l", "bm25+", "lucene", "tfidf"]


class ScoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Defaults chosen by benchmarks/tune_sparse.py on training questions (not the evaluation sets).
    method: Method = "lucene"
    k1: float = Field(0.9, gt=0)
    b: float = Field(0.4, ge=0, le=1)
    delta: float = Field(0.5, ge=0, description="BM25L / BM25+ lower bound")
    document_weight: float = Field(
        0.25, ge=0, description="add this times the passage's whole-document score (document context)"
    )


# --- inverse document frequency: (df, n_docs) -> idf -------------------------------------------


def idf_robertson(df, n):
    return np.log(np.maximum((n - df + 0.5) / (df + 0.5), 1.0))


def idf_lucene(df, n):
    return np.log1p((n - df + 0.5) / (df + 0.5))


def idf_atire(df, n):
    return np.log(n / df)


def idf_bm25l(df, n):
    return np.log((n + 1) / (df + 0.5))


def idf_bm25plus(df, n):
    return np.log((n + 1) / df)


def idf_smooth(df, n):
    return np.log((1 + n) / (1 + df)) + 1.0


# --- term frequency component: (tf, length norm, config) -> weight ------------------------------


def length_norm(doc_len, avg_len, c: ScoringConfig):
    """BM25's length normalisation, 1 - b + b * len / avg_len: once per passage, not per posting."""
    return 1 - c.b + c.b * doc_len / avg_len


def tf_robertson(tf, norm, c):
    return tf / (tf + c.k1 * norm)


def tf_atire(tf, norm, c):
    return tf * (c.k1 + 1) / (tf + c.k1 * norm)


def tf_bm25l(tf, norm, c):
    ctd = tf / norm
    return (c.k1 + 1) * (ctd + c.delta) / (c.k1 + ctd + c.delta)


def tf_bm25plus(tf, norm, c):
    return tf_atire(tf, norm, c) + c.delta


def tf_log(tf, norm, c):
    return 1 + np.log(tf)


# --- query term weight: (query term count, idf) -> weight --------------------------------------


def query_count(qtf, idf):
    return qtf


def query_log_idf(qtf, idf):
    return (1 + np.log(qtf)) * idf


@dataclass(frozen=True)
class Scheme:
    idf: Callable
    tf: Callable
    query: Callable = query_count
    absent_scores: bool = False  # tf(0) > 0: stored weights are relative to it, added back per query
    l2_normalise: bool = False


SCHEMES: dict[str, Scheme] = {
    "robertson": Scheme(idf_robertson, tf_robertson),
    "lucene": Scheme(idf_lucene, tf_robertson),
    "atire": Scheme(idf_atire, tf_atire),
    "bm25l": Scheme(idf_bm25l, tf_bm25l, absent_scores=True),
    "bm25+": Scheme(idf_bm25plus, tf_bm25plus, absent_scores=True),
    "tfidf": Scheme(idf_smooth, tf_log, query=query_log_idf, l2_normalise=True),
}


def passage_weights(
    tf: np.ndarray,
    term_of_entry: np.ndarray,
    doc_of_entry: np.ndarray,
    doc_len: np.ndarray,
    df: np.ndarray,
    config: ScoringConfig,
    collection: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stored weights for each (term, passage) entry, the idf per term, and the per-term constant
    a query adds for passages without the term (zeros except for BM25L/BM25+).

    `collection` = (units, tokens) of the whole collection when these passages are one shard of
    it (with `df` the collection's too): idf and the average length are then the collection's, so
    a shard's weights equal those of one index over everything."""
    scheme = SCHEMES[config.method]
    n_docs = len(doc_len)
    if collection is not None:
        n_total, tokens = collection
        avg_len = max(tokens / n_total if n_total else 1.0, 1e-9)
    else:
        n_total = n_docs
        avg_len = max(float(doc_len.mean()) if n_docs else 1.0, 1e-9)
    idf = np.zeros(len(df), dtype=np.float64)
    present = df > 0
    idf[present] = scheme.idf(df[present].astype(np.float64), float(n_total))
    norm = length_norm(doc_len.astype(np.float64), avg_len, config)
    tfc = scheme.tf(tf.astype(np.float64), norm[doc_of_entry], config)
    absent = np.zeros(len(df), dtype=np.float64)
    if scheme.absent_scores:
        tf0 = scheme.tf(np.zeros(1), np.ones(1), config)[0]  # tf(0) does not depend on length
        absent = idf * tf0
        tfc = tfc - tf0
    weights = tfc * idf[term_of_entry]
    if scheme.l2_normalise:
        norms = np.sqrt(np.bincount(doc_of_entry, weights=weights**2, minlength=n_docs))
        weights = weights / np.maximum(norms, 1e-12)[doc_of_entry]
    return weights.astype(np.float32), idf.astype(np.float32), absent.astype(np.float32)


def query_weights(counts: np.ndarray, idf: np.ndarray, config: ScoringConfig) -> np.ndarray:
    scheme = SCHEMES[config.method]
    return scheme.query(counts.astype(np.float64), idf.astype(np.float64)).astype(np.float32)
