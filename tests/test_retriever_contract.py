"""One contract for every retriever: sparse, dense, hybrid (fused, reranked) all pass the same
cases. A new backend (Elasticsearch, a sharded index) plugs in by adding itself to KINDS."""

import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss")

from odqa.errors import OdqaError
from odqa.retrieval.base import Retriever
from odqa.retrieval.hybrid import load_index, open_retriever, retriever_from_dict

QUERIES = ["훈민정음을 창제한 왕은?", "부산 해운대", "김치 재료"]


def sharded(folders):
    """The same passages in 3 shards, built and searched on a local Ray (`odqa.distributed`)."""
    pytest.importorskip("ray")
    from odqa.distributed.sparse_shards import build_sharded_index

    if not (folders / "sharded").exists():
        build_sharded_index(folders / "docs.jsonl", folders / "sharded", 3, quiet=True)
    return open_retriever(folders / "sharded")


def sharded_dense(folders):
    """The dense index's passages in 2 dense shards, encoded and searched on a local Ray."""
    pytest.importorskip("ray.data")
    from odqa.distributed.dense_shards import build_sharded_dense_index

    if not (folders / "sharded-dense").exists():
        build_sharded_dense_index(
            folders / "docs.jsonl", folders / "sharded-dense", 2, str(folders / "encoder"), quiet=True
        )
    return open_retriever(folders / "sharded-dense")


KINDS = {
    "sparse": lambda f: open_retriever(f / "sparse"),
    "dense": lambda f: open_retriever(f / "dense"),
    "hybrid": lambda f: open_retriever([f / "sparse", f / "dense"], fusion="combsum", weights=[1.0, 0.5]),
    "reranked": lambda f: open_retriever([f / "sparse", f / "dense"], rerank=str(f / "reranker"), rerank_top=4),
    "sharded": sharded,
    "sharded-dense": sharded_dense,
}
SLOW = {"sharded", "sharded-dense"}  # a Ray instance and its workers take seconds to start


@pytest.fixture(params=[pytest.param(kind, marks=pytest.mark.slow) if kind in SLOW else kind for kind in KINDS])
def retriever(request, retriever_folders):
    retriever = KINDS[request.param](retriever_folders).warm_up()
    yield retriever
    if hasattr(retriever, "close"):  # a sharded index stops its shard actors
        retriever.close()


def ranking(results):
    return [[(h.passage_id, round(h.score, 5)) for h in row] for row in results]


def test_is_a_retriever_with_passages_and_a_manifest(retriever):
    assert isinstance(retriever, Retriever)
    assert retriever.n_passages == retriever.manifest["counts"]["passages"] == len(retriever.passages) > 0
    assert len(retriever.manifest["corpus"]["fingerprint"]) == 16


def test_search_is_batched_ranked_and_fetches_passages(retriever):
    results = retriever.search(QUERIES, k=3, fetch=True)
    assert len(results) == len(QUERIES)
    for row in results:
        assert 1 <= len(row) <= 3 and [h.rank for h in row] == list(range(1, len(row) + 1))
        assert [h.score for h in row] == sorted((h.score for h in row), reverse=True)
        assert all(h.passage is not None and h.passage.id == h.passage_id for h in row)
    assert all(h.passage is None for h in retriever.search(QUERIES, k=3)[0])
    assert ranking(retriever.search(QUERIES[1:2], k=3)) == ranking(results[1:2])  # a batch of one: same answer


def test_search_arrays_hold_the_same_ranking(retriever):
    scores, ids = retriever.search_arrays(QUERIES, 4)
    results = retriever.search(QUERIES, k=4)
    assert scores.shape == ids.shape == (len(QUERIES), 4)
    for row, hits in enumerate(results):
        assert list(ids[row, : len(hits)]) == [h.passage_id for h in hits]
        assert all(i == -1 for i in ids[row, len(hits) :])


@pytest.mark.parametrize(
    "queries,k,message",
    [
        ("훈민정음", 3, "list of queries"),
        ([""], 3, "empty query"),
        (["가" * 100_000], 3, "too long"),
        ([123], 3, "must be a string"),
        (["김치"], 0, "k must be"),
    ],
)
def test_bad_queries_are_refused(retriever, queries, k, message):
    with pytest.raises(OdqaError, match=message):
        retriever.search(queries, k=k)


def test_no_queries_no_results(retriever):
    assert retriever.search([], k=3) == []


def test_described_by_to_dict_and_opened_again(retriever, tmp_path):
    again = retriever_from_dict(retriever.to_dict())
    assert type(again) is type(retriever)
    assert ranking(again.search(QUERIES, k=3)) == ranking(retriever.search(QUERIES, k=3))


def test_saved_and_loaded_gives_the_same_results(retriever, tmp_path):
    retriever.save(tmp_path / "saved")
    loaded = load_index(tmp_path / "saved")
    assert ranking(loaded.search(QUERIES, k=3)) == ranking(retriever.search(QUERIES, k=3))
    assert loaded.to_dict()["kind"] == retriever.to_dict()["kind"]
