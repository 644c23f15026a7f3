"""Rank fusion of several retrievers' hits."""

import pytest

from odqa.errors import OdqaError
from odqa.retrieval.fusion import RRF_C, fuse
from odqa.types import Hit


def hits(*pairs):
    return [Hit(pid, score, rank) for rank, (pid, score) in enumerate(pairs, 1)]


SPARSE = hits((1, 30.0), (2, 20.0), (3, 10.0))
DENSE = hits((3, 0.9), (4, 0.8), (1, 0.1))


def test_rrf_adds_reciprocal_ranks():
    fused = fuse([SPARSE, DENSE], k=4, method="rrf")
    expected = {
        1: 1 / (RRF_C + 1) + 1 / (RRF_C + 3),
        3: 1 / (RRF_C + 3) + 1 / (RRF_C + 1),
        2: 1 / (RRF_C + 2),
        4: 1 / (RRF_C + 2),
    }
    assert [h.passage_id for h in fused] == [1, 3, 2, 4]  # ties broken by passage id
    assert all(h.score == pytest.approx(expected[h.passage_id]) for h in fused)
    assert [h.rank for h in fused] == [1, 2, 3, 4]


def test_combsum_normalises_each_retriever():
    fused = fuse([SPARSE, DENSE], k=2, method="combsum", weights=[1.0, 2.0])
    # sparse: 1→1, 2→.5, 3→0; dense: 3→1, 4→.875, 1→0  (×2)
    assert [(h.passage_id, round(h.score, 3)) for h in fused] == [(3, 2.0), (4, 1.75)]


def test_bad_fusion_requests():
    with pytest.raises(OdqaError, match="unknown fusion"):
        fuse([SPARSE], k=3, method="borda")
    with pytest.raises(OdqaError, match="2 fusion weights for 1 retrievers"):
        fuse([SPARSE], k=3, weights=[1, 2])
    assert fuse([[], []], k=3) == []


def test_zscore_standardises_each_retriever():
    fused = fuse([SPARSE, DENSE], k=4, method="zscore")
    # sparse scores 30/20/10 → +1.225/0/−1.225; dense .9/.8/.1 → +0.843/+0.562/−1.405 (population std)
    expected = {1: 1.2247 - 1.4049, 2: 0.0, 3: -1.2247 + 0.8429, 4: 0.5620}
    assert [h.passage_id for h in fused] == [4, 2, 1, 3]
    assert all(h.score == pytest.approx(expected[h.passage_id], abs=1e-3) for h in fused)
    assert fuse([hits((7, 1.0), (8, 1.0))], k=2, method="zscore")[0].score == 0.0  # no spread: no signal


def test_default_fusion_is_combsum_as_everywhere_else():
    assert fuse([SPARSE, DENSE], k=4) == fuse([SPARSE, DENSE], k=4, method="combsum")
    assert fuse([SPARSE, DENSE], k=4) != fuse([SPARSE, DENSE], k=4, method="rrf")
