"""The retriever contract every backend follows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from odqa.types import Hit


@runtime_checkable
class Retriever(Protocol):
    def search(self, queries: list[str], k: int) -> list[list[Hit]]: ...

    def save(self, path: str | Path) -> None: ...


def hits_to_arrays(results: Sequence[Sequence[Hit]], k: int):
    """(scores, passage ids) arrays of shape (queries, k), -inf / -1 where fewer than k hits."""
    import numpy as np

    scores = np.full((len(results), k), -np.inf, dtype=np.float32)
    ids = np.full((len(results), k), -1, dtype=np.int64)
    for row, hits in enumerate(results):
        for col, hit in enumerate(hits[:k]):
            scores[row, col], ids[row, col] = hit.score, hit.passage_id
    return scores, ids
