"""Sharded indexes on Ray: cut between documents, built as Ray tasks, searched through shard
actors — with the same ids and scores as one index over the same passages, on a local Ray and on
a real cluster of a head and two worker nodes (a node killed mid-batch, an actor restarted)."""

import json
import threading

import numpy as np
import pytest

from conftest import KOREAN_DOCS, SHARED
from odqa.errors import OdqaError

ray = pytest.importorskip("ray")
KORQUAD = SHARED / "data" / "korquad" / "KorQuAD_v1.0_dev.json"


def test_shards_are_cut_between_documents_near_even_splits():
    from odqa.distributed.sharded import shard_bounds

    docs = np.array([0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 4, 5])
    assert shard_bounds(docs, 1).tolist() == [0, 12]
    cuts = shard_bounds(docs, 3)
    assert cuts[0] == 0 and cuts[-1] == 12 and all(docs[c] != docs[c - 1] for c in cuts[1:-1])
    assert cuts.tolist() == [0, 4, 6, 12] or cuts.tolist() == [0, 3, 6, 12]
    with pytest.raises(OdqaError, match="at least 7 documents"):
        shard_bounds(docs, 7)
    with pytest.raises(OdqaError, match="document order"):
        shard_bounds(np.array([0, 1, 0]), 2)


def test_pieces_analysed_while_reading_are_grouped_into_even_shards():
    from odqa.distributed.sparse_shards import group_pieces

    assert group_pieces([5] * 6, 3) == [0, 2, 4, 6]
    assert group_pieces([9, 1, 1, 1, 9, 1], 2) == [0, 3, 6]  # 11 and 11 passages
    assert group_pieces([1, 1, 1, 30], 3) == [0, 2, 3, 4]  # every shard keeps a piece, however uneven
    assert group_pieces([4, 4], 3) is None  # fewer pieces than shards


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """KorQuAD dev's first 120 contexts (each a document), or the tiny Korean documents."""
    folder = tmp_path_factory.mktemp("shard-corpus")
    if KORQUAD.is_file():
        articles = json.loads(KORQUAD.read_text(encoding="utf-8"))["data"]
        rows = [
            {"id": f"{a}-{p}", "title": article["title"], "text": paragraph["context"]}
            for a, article in enumerate(articles)
            for p, paragraph in enumerate(article["paragraphs"])
        ][:120]
        questions = [q["question"] for article in articles[:12] for p in article["paragraphs"] for q in p["qas"]][:60]
    else:
        rows, questions = KOREAN_DOCS, ["훈민정음을 창제한 왕은?", "부산 해운대", "김치 재료", "서울 인구"]
    path = folder / "docs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path, questions


@pytest.fixture(scope="module")
def local_ray():
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 2**20)
    yield ray


def embedded(corpus_path, folder, scoring=None):
    from odqa.retrieval.build import build_sparse_index

    index, _ = build_sparse_index(corpus_path, folder, scoring=scoring, cache_dir=None, processes=1, quiet=True)
    return index


def same_results(one, sharded, questions, k=20):
    scores, ids = one.search_arrays(questions, k)
    s_scores, s_ids = sharded.search_arrays(questions, k)
    assert (ids == s_ids).all()
    assert (scores == s_scores).all()  # bit for bit: the collection's statistics in every shard


@pytest.mark.slow  # a local Ray instance; several indexes
@pytest.mark.parametrize(
    ("scoring", "piece_passages"),
    [({}, 3), ({}, 10_000), ({"method": "bm25+", "document_weight": 0.0}, 3), ({"method": "tfidf"}, 10_000)],
    ids=["lucene+document", "lucene+document-one-piece-per-shard", "bm25+", "tfidf-one-piece-per-shard"],
)
def test_sharded_search_equals_one_index(local_ray, corpus, tmp_path, scoring, piece_passages, monkeypatch):
    from odqa.distributed import sparse_shards as module
    from odqa.distributed.sharded import ShardedIndex
    from odqa.distributed.sparse_shards import build_sharded_index
    from odqa.retrieval.hybrid import load_index
    from odqa.retrieval.scoring import ScoringConfig

    path, questions = corpus
    config = ScoringConfig(**scoring)
    one = embedded(path, tmp_path / "one", config)
    recut = []  # pieces too few or too big for even shards: analysed again, one per shard
    monkeypatch.setattr(module._Pieces, "cancel", lambda self, ray: recut.append(len(self.refs)))
    manifest, _ = build_sharded_index(
        path, tmp_path / "sharded", 3, scoring=config, quiet=True, piece_passages=piece_passages
    )
    assert bool(recut) == (piece_passages > one.n_passages)  # small pieces: analysed as they were read
    assert manifest["counts"]["passages"] == one.n_passages and manifest["counts"]["shards"] == 3
    assert manifest["corpus"]["fingerprint"] == one.manifest["corpus"]["fingerprint"]
    sharded = load_index(tmp_path / "sharded")
    assert isinstance(sharded, ShardedIndex)
    same_results(one, sharded.warm_up(), questions)
    hits = sharded.search(questions[:3], k=5, fetch=True)
    reference = one.search(questions[:3], k=5, fetch=True)
    assert [[(h.passage_id, h.passage) for h in row] for row in hits] == [
        [(h.passage_id, h.passage) for h in row] for row in reference
    ]
    sharded.close()


@pytest.mark.slow  # a local Ray instance
def test_bad_sharded_input_is_named(local_ray, corpus, tmp_path):
    import shutil

    from odqa.distributed.sharded import ShardedIndex
    from odqa.distributed.sparse_shards import build_sharded_index
    from odqa.retrieval.update import update_index

    path, _ = corpus
    with pytest.raises(OdqaError, match="at least 1000 documents"):
        build_sharded_index(path, tmp_path / "too-many", 1000, quiet=True)
    assert not (tmp_path / "too-many").exists()
    build_sharded_index(path, tmp_path / "s", 2, quiet=True)
    with pytest.raises(OdqaError, match="one shard of a sharded index"):
        update_index(tmp_path / "s" / "shard-000", delete=["0-0"])
    # shards from another build: of other settings, or put in another slot
    from odqa.retrieval.scoring import ScoringConfig

    build_sharded_index(path, tmp_path / "other", 2, scoring=ScoringConfig(method="bm25+"), quiet=True)
    shutil.rmtree(tmp_path / "s" / "shard-001")
    shutil.copytree(tmp_path / "other" / "shard-001", tmp_path / "s" / "shard-001")
    with pytest.raises(OdqaError, match="shard-001 does not belong to it .its scoring settings differ"):
        ShardedIndex.load(tmp_path / "s")
    shutil.rmtree(tmp_path / "s" / "shard-001")
    shutil.copytree(tmp_path / "s" / "shard-000", tmp_path / "s" / "shard-001")
    with pytest.raises(OdqaError, match="shard-001 does not belong to it .it is shard 0 of 2"):
        ShardedIndex.load(tmp_path / "s")
    shutil.rmtree(tmp_path / "s" / "shard-001")
    with pytest.raises(OdqaError, match="shard-001 is missing"):
        ShardedIndex.load(tmp_path / "s")


@pytest.mark.slow  # starts a Ray cluster: a head and two worker nodes
def test_on_a_cluster_shards_spread_survive_a_dead_node_and_a_restarted_actor(corpus, tmp_path):
    from ray.cluster_utils import Cluster

    from odqa.distributed.sharded import ShardedIndex
    from odqa.distributed.sparse_shards import build_sharded_index

    path, questions = corpus
    one = embedded(path, tmp_path / "one")
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": 100 * 2**20})
    workers = [cluster.add_node(num_cpus=2, object_store_memory=100 * 2**20) for _ in range(2)]
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        build_sharded_index(path, tmp_path / "sharded", 4, quiet=True)  # tasks run on the worker nodes
        sharded = ShardedIndex.load(tmp_path / "sharded", timeout=120).warm_up()
        placed = sharded.nodes()
        assert sorted(placed) == sorted(w.node_id for w in workers for _ in range(2))  # 2 shards on each worker
        same_results(one, sharded, questions)

        # a worker node dies while a batch is being answered: its shards restart elsewhere, the
        # calls are retried, and the batch comes back whole and identical
        victim = next(w for w in workers if w.node_id in placed)
        answers = {}
        batch = threading.Thread(target=lambda: answers.update(result=sharded.search_arrays(questions * 20, 20)))
        batch.start()
        cluster.remove_node(victim)
        batch.join(timeout=180)
        assert not batch.is_alive() and "result" in answers
        expected = one.search_arrays(questions * 20, 20)
        assert (answers["result"][1] == expected[1]).all() and (answers["result"][0] == expected[0]).all()
        assert victim.node_id not in sharded.nodes()

        # an actor killed (and restarted by Ray) answers again; one killed for good is an error
        ray.kill(sharded._actors[0], no_restart=False)
        same_results(one, sharded, questions)
        ray.kill(sharded._actors[1], no_restart=True)
        with pytest.raises(OdqaError, match="a shard failed"):
            sharded.search_arrays(questions, 5)
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.mark.slow  # a Ray Data job and shard actors
def test_dense_shards_search_as_the_embedded_dense_index(local_ray, retriever_folders, tmp_path):
    """Cut as sparse shards are cut, encoded by a Ray Data job in the embedded build's chunks:
    the same ids and scores as the embedded dense index (queries encoded once, by the driver)."""
    pytest.importorskip("ray.data")
    from conftest import KOREAN_QA
    from odqa.distributed.dense_shards import build_sharded_dense_index
    from odqa.distributed.sharded import ShardedIndex
    from odqa.retrieval.dense import DenseIndex

    folders = retriever_folders
    one = DenseIndex.load(folders / "dense")
    manifest, _ = build_sharded_dense_index(
        folders / "docs.jsonl", tmp_path / "dense", 3, str(folders / "encoder"), quiet=True
    )
    assert manifest["kind"] == "dense" and manifest["counts"]["passages"] == one.n_passages
    sharded = ShardedIndex.load(tmp_path / "dense").warm_up()
    try:
        questions = [q for _, q, _ in KOREAN_QA] * 3  # 24 queries: FAISS's batched (BLAS) path too
        for k in (1, 5, one.n_passages + 3):
            scores, ids = sharded.search_arrays(questions, k)
            expected_scores, expected_ids = one.search_arrays(questions, k)
            assert (ids == expected_ids).all() and np.array_equal(scores, expected_scores)
        hit = sharded.search(questions[:1], 3, fetch=True)[0][0]
        assert hit.passage.text == one.passages[hit.passage_id].text
        assert all(s["postings"] is None for s in sharded.stats())
    finally:
        sharded.close()
    with pytest.raises(OdqaError, match="at least 50 documents"):
        build_sharded_dense_index(folders / "docs.jsonl", tmp_path / "bad", 50, str(folders / "encoder"), quiet=True)
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow  # odqa processes, each starting a local Ray
def test_the_command_line_builds_and_searches_a_sharded_index(corpus, tmp_path):
    from test_cli import odqa

    path, questions = corpus
    plain = odqa("index", "--corpus", path, "--out", tmp_path / "one", "--no-cache", "-q")
    assert plain.returncode == 0, plain.stderr
    run = odqa("index", "--corpus", path, "--out", tmp_path / "sharded", "--shards", "2", "-q")
    assert run.returncode == 0, run.stderr
    assert "as 2 shards" in run.stdout and "Token authentication" not in run.stderr

    def search(index):
        found = odqa("search", "--index", index, "--json", "-k", "5", questions[0])
        assert found.returncode == 0, found.stderr
        return [(hit["passage_id"], hit["score"]) for hit in map(json.loads, found.stdout.splitlines())]

    assert search(tmp_path / "sharded") == search(tmp_path / "one")
    refused = odqa("index", "--out", tmp_path / "sharded", "--delete", "x", "--shards", "2")
    assert refused.returncode == 2 and "not updated in place" in refused.stderr
