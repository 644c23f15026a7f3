"""Fusing the rankings of several retrievers into one, by name from `FUSIONS`.

- `combsum` (the default): Σ of weighted min-max normalised scores (a passage a retriever did not
  return scores 0 there). It won in both benchmarks (benchmarks/retrieval_dense*.py) with weights
  from `odqa tune-fusion`; rrf lost top-1 wherever one retriever was much weaker than the other.
- `rrf`: reciprocal rank fusion, Σ 1 / (c + rank) (Cormack et al. 2009); scale-free, no scores needed.
- `zscore`: Σ of z-normalised scores, robust to one retriever's long tail.
Each takes per-retriever hit lists for one query and weights, and returns new Hits ranked 1..k.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from odqa.errors import OdqaError
from odqa.types import Hit

RRF_C = 60


def _rrf(hits: Sequence[Hit]) -> dict[int, float]:
    return {h.passage_id: 1.0 / (RRF_C + h.rank) for h in hits}


def _minmax(hits: Sequence[Hit]) -> dict[int, float]:
    if not hits:
        return {}
    scores = np.array([h.score for h in hits])
    span = scores.max() - scores.min()
    normalised = (scores - scores.min()) / span if span > 0 else np.ones_like(scores)
    return {h.passage_id: float(s) for h, s in zip(hits, normalised)}


def _zscore(hits: Sequence[Hit]) -> dict[int, float]:
    if not hits:
        return {}
    scores = np.array([h.score for h in hits])
    std = scores.std()
    normalised = (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)
    return {h.passage_id: float(s) for h, s in zip(hits, normalised)}


# name → per-retriever contribution of each passage it returned
FUSIONS: dict[str, Callable[[Sequence[Hit]], dict[int, float]]] = {"rrf": _rrf, "combsum": _minmax, "zscore": _zscore}


def fuse(
    runs: Sequence[Sequence[Hit]], k: int, method: str = "combsum", weights: Sequence[float] | None = None
) -> list[Hit]:
    """One query's fused top-k from several retrievers' hits (ties broken by passage id)."""
    if method not in FUSIONS:
        raise OdqaError(f"unknown fusion {method!r}; choose one of {', '.join(FUSIONS)}")
    weights = list(weights) if weights is not None else [1.0] * len(runs)
    if len(weights) != len(runs):
        raise OdqaError(f"{len(weights)} fusion weights for {len(runs)} retrievers")
    total: dict[int, float] = {}
    passages = {}
    for run, weight in zip(runs, weights):
        for pid, contribution in FUSIONS[method](run).items():
            total[pid] = total.get(pid, 0.0) + weight * contribution
        for h in run:
            passages.setdefault(h.passage_id, h.passage)
    ranked = sorted(total.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [Hit(pid, score, rank, passages.get(pid)) for rank, (pid, score) in enumerate(ranked, 1)]
