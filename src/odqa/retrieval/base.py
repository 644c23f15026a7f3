"""The retriever contract every backend follows (sparse, dense, hybrid; a new one — Elasticsearch,
a sharded index — plugs in by passing `tests/test_retriever_contract.py`).

    retriever.search(["질문 하나", "질문 둘"], k=20, fetch=True)  # one list of ranked Hits per query
    retriever.to_dict()  # how to open it again: `odqa.retrieval.hybrid.retriever_from_dict`
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from odqa.errors import OdqaError
from odqa.types import Hit, Passage

MAX_QUERY_CHARS = 4096
MAX_K = 10_000


@runtime_checkable
class Retriever(Protocol):
    """`manifest` describes the index (format, counts, corpus fingerprint); `passages` is indexable
    by passage id. `search` is batched: a single query is a batch of one; a bare string, an empty
    query or a k outside 1..MAX_K is refused with an OdqaError. `fetch=True` attaches each hit's
    passage. `search_arrays` gives the same ranking as (scores, ids) arrays padded with -inf / -1.
    `to_dict()` names what to open again; `warm_up()` does any deferred loading and returns self."""

    manifest: dict
    passages: Sequence[Passage] | None

    @property
    def n_passages(self) -> int: ...

    def search(self, queries: Sequence[str], k: int = 10, fetch: bool = False) -> list[list[Hit]]: ...

    def search_arrays(self, queries: Sequence[str], k: int, threads: int | None = None): ...

    def save(self, path: str | Path) -> None: ...

    def to_dict(self) -> dict: ...

    def warm_up(self) -> Retriever: ...


def saved_path(retriever, kind: str) -> str:
    """The folder a retriever was loaded from or saved to, for `to_dict`."""
    path = getattr(retriever, "path", None)
    if path is None:
        raise OdqaError(f"this {kind} index lives only in memory; save it first to describe it by its folder")
    return str(path)


def check_query(query: object) -> str:
    if not isinstance(query, str):
        raise OdqaError(f"a query must be a string, got {type(query).__name__}")
    if not query.strip():
        raise OdqaError("empty query: give a question with at least one word")
    if len(query) > MAX_QUERY_CHARS:
        raise OdqaError(f"query too long: {len(query):,} characters (the limit is {MAX_QUERY_CHARS:,})")
    return query


def check_k(k: int) -> int:
    if not isinstance(k, int) or k < 1 or k > MAX_K:
        raise OdqaError(f"k must be an integer from 1 to {MAX_K:,}, got {k!r}")
    return k


def check_queries(queries: object) -> list[str]:
    """A batch of queries, each checked; a bare string is refused rather than read as characters."""
    if isinstance(queries, str):
        raise OdqaError("search takes a list of queries; wrap a single query in a list")
    return [check_query(q) for q in queries]


def arrays_to_hits(scores, ids, passage=None) -> list[list[Hit]]:
    """Ranked Hits per query from (scores, ids) arrays padded with id -1; `passage(id)` attaches
    each hit's passage when given."""
    results = []
    for row_scores, row_ids in zip(scores, ids):
        hits = []
        for rank, (score, pid) in enumerate(zip(row_scores, row_ids), 1):
            if pid < 0:
                break
            hits.append(Hit(int(pid), float(score), rank, passage(int(pid)) if passage else None))
        results.append(hits)
    return results


def hits_to_arrays(results: Sequence[Sequence[Hit]], k: int):
    """(scores, passage ids) arrays of shape (queries, k), -inf / -1 where fewer than k hits."""
    import numpy as np

    scores = np.full((len(results), k), -np.inf, dtype=np.float32)
    ids = np.full((len(results), k), -1, dtype=np.int64)
    for row, hits in enumerate(results):
        for col, hit in enumerate(hits[:k]):
            scores[row, col], ids[row, col] = hit.score, hit.passage_id
    return scores, ids
