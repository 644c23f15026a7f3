"""Sparse + dense over the same passages, fused and reranked; the retrievers the CLI opens."""

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("faiss")

from odqa.errors import OdqaError
from odqa.retrieval.hybrid import HybridRetriever, load_index, open_retriever


@pytest.fixture(scope="module")
def indexes(retriever_folders):
    return retriever_folders


@pytest.fixture(scope="module")
def corpus(retriever_folders):
    return retriever_folders / "docs.jsonl"


def test_load_index_by_manifest(indexes):
    from odqa.retrieval.dense import DenseIndex
    from odqa.retrieval.sparse import SparseIndex

    assert isinstance(load_index(indexes / "sparse"), SparseIndex)
    assert isinstance(load_index(indexes / "dense"), DenseIndex)
    with pytest.raises(OdqaError, match="index not found"):
        load_index(indexes / "nothing")


def test_fused_search_covers_both_and_ranks_from_one(indexes):
    retriever = open_retriever([indexes / "sparse", indexes / "dense"], fusion="rrf")
    assert isinstance(retriever, HybridRetriever)
    hits = retriever.search(["훈민정음을 창제한 왕은?"], k=6, fetch=True)[0]
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert len(hits) == 6  # the dense side returns every passage, so the fused list is full
    assert hits[0].passage.title == "세종"  # sparse puts it first and rrf keeps a unanimous-ish winner
    scores, ids = retriever.search_arrays(["김치"], 3)
    assert ids.shape == (1, 3) and (ids >= 0).all()


def test_reranking_reorders_by_cross_encoder_score(indexes):
    from odqa.retrieval.rerank import Reranker

    retriever = open_retriever([indexes / "sparse"], rerank=str(indexes / "reranker"), rerank_top=3)
    question = "한강은 어디로 흐르나?"
    hits = retriever.search([question], k=3, fetch=True)[0]
    reranker = Reranker.load(indexes / "reranker")
    expected = reranker.score([question] * len(hits), [h.passage.text for h in hits])
    assert [h.score for h in hits] == pytest.approx(sorted(expected, reverse=True), rel=1e-5)


def test_a_weighted_reranker_adds_its_score_to_the_first_stage_instead_of_replacing_it(indexes, tmp_path):
    import numpy as np

    from odqa.retrieval.rerank import Reranker
    from odqa.types import Hit

    # first stage 4 > 3 > 2 > 1 (min-max: 1, 2/3, 1/3, 0); the cross-encoder likes only the last (0, 0, 0, 1)
    first = [
        Hit(pid, score, rank, None) for rank, (pid, score) in enumerate([(7, 4.0), (8, 3.0), (9, 2.0), (6, 1.0)], 1)
    ]
    cross = np.array([0.0, 0.0, 0.0, 10.0], dtype=np.float32)
    reranker = Reranker.load(indexes / "reranker")
    assert [h.passage_id for h in reranker.resort([first], cross)[0]] == [6, 7, 8, 9]  # the cross-encoder alone
    for weight, order in ((0.0, [7, 8, 9, 6]), (0.5, [7, 8, 6, 9]), (2.0, [6, 7, 8, 9])):
        reranker.weight = weight
        resorted = reranker.resort([first], cross)[0]
        assert [h.passage_id for h in resorted] == order and [h.rank for h in resorted] == [1, 2, 3, 4]
    assert [h.score for h in reranker.resort([first], cross)[0]] == pytest.approx([2, 1, 2 / 3, 1 / 3])

    # through the retriever: weight 0 keeps the first stage's order; the weight travels with a saved hybrid
    question = "한강은 어디로 흐르나?"
    sparse = [h.passage_id for h in open_retriever(indexes / "sparse").search([question], k=4)[0]]
    kept = open_retriever([indexes / "sparse"], rerank=str(indexes / "reranker"), rerank_top=4, rerank_weight=0)
    assert [h.passage_id for h in kept.search([question], k=4)[0]] == sparse
    mixed = open_retriever(
        [indexes / "sparse"], rerank=str(indexes / "reranker"), rerank_top=4, rerank_weight=0.5, rerank_fusion="zscore"
    )
    mixed.save(tmp_path / "reranked")
    reopened = load_index(tmp_path / "reranked")
    assert (reopened.reranker.weight, reopened.reranker.fusion) == (0.5, "zscore")
    assert reopened.search([question], k=4) == mixed.search([question], k=4)
    for weight, fusion, message in ((-1, "combsum", "must be a number ≥ 0"), (1, "borda", "unknown fusion")):
        with pytest.raises(OdqaError, match=message):
            Reranker.load(indexes / "reranker", weight=weight, fusion=fusion)


def test_a_reranker_scores_in_bf16_within_rounding_and_the_precision_travels_with_a_saved_hybrid(indexes, tmp_path):
    import numpy as np

    from odqa.retrieval.rerank import Reranker

    questions = ["한강은 어디로 흐르나?", "훈민정음을 창제한 왕은?", "김치는 무엇인가?"]
    passages = [h.passage.text for h in open_retriever(indexes / "sparse").search(questions[:1], k=4, fetch=True)[0]]
    pairs = ([q for q in questions for _ in passages], passages * len(questions))
    fp32 = Reranker.load(indexes / "reranker").score(*pairs)
    bf16 = Reranker.load(indexes / "reranker", precision="bf16")
    rounded = bf16.score(*pairs)
    assert rounded.dtype == np.float32 and not np.array_equal(rounded, fp32)  # it really ran in bf16
    assert np.abs(rounded - fp32).max() < 0.05 * (np.abs(fp32).max() + 1e-3)
    with pytest.raises(OdqaError, match="rounded to bf16"):
        bf16.save(tmp_path / "copy")
    with pytest.raises(OdqaError, match="unknown reranker precision 'int4'"):
        Reranker.load(indexes / "reranker", precision="int4")

    question = questions[0]
    hybrid = open_retriever(
        [indexes / "sparse"], rerank=str(indexes / "reranker"), rerank_top=4, rerank_weight=0.5, rerank_precision="bf16"
    )
    hybrid.save(tmp_path / "reranked")
    reopened = load_index(tmp_path / "reranked")
    assert reopened.reranker.precision == "bf16" and reopened.search([question], k=4) == hybrid.search([question], k=4)


def test_tuning_the_rerankers_weight_scores_each_pair_once_and_agrees_with_the_retriever(indexes, korean_qa_file):
    from odqa.evaluation import evaluate_retrieval
    from odqa.io import read_questions
    from odqa.retrieval.rerank import Reranker, tune_rerank

    questions, ks = read_questions(korean_qa_file), (1, 2, 4)
    first = open_retriever(indexes / "sparse")
    reranker = Reranker.load(indexes / "reranker", weight=1.0)
    scored = []
    score = reranker.score
    reranker.score = lambda qs, ps: scored.append(len(qs)) or score(qs, ps)
    texts = [q.text for q in questions]
    candidates = first.search(texts, k=4, fetch=True)
    result = tune_rerank(reranker, questions, candidates, reranker.score_hits(texts, candidates), first.passages, ks)
    assert scored == [sum(len(hits) for hits in candidates)]  # every pair scored once, for all 13 candidates
    assert len(result["candidates"]) == 1 + 2 * 6 and (reranker.weight, reranker.fusion) == (1.0, "combsum")

    def top(metrics: dict) -> list[float]:
        return [metrics[f"top{k}"] for k in ks]

    assert top(result["first_stage"]) == top(evaluate_retrieval(first, questions, ks)["has_answer"])
    rows = {(c["weight"], c["fusion"]): c for c in result["candidates"]}
    for weight, fusion in ((None, "combsum"), (0.5, "combsum"), (2.0, "zscore")):
        searched = HybridRetriever(
            [first], reranker=Reranker.load(indexes / "reranker", weight=weight, fusion=fusion), rerank_top=4
        )
        assert top(rows[(weight, fusion)]) == top(evaluate_retrieval(searched, questions, ks)["has_answer"])
    assert sum(top(result["best"])) == max(sum(top(c)) for c in result["candidates"])  # all cut-offs are ≤ 5


def test_fusing_indexes_of_different_corpora_is_refused(indexes, tmp_path):
    from odqa.retrieval.build import build_sparse_index

    other = tmp_path / "other.jsonl"
    other.write_text(
        json.dumps({"id": "x", "title": "다른", "text": "다른 문서이다."}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    build_sparse_index(other, tmp_path / "other", processes=1, quiet=True)
    with pytest.raises(OdqaError, match="different passages"):
        open_retriever([indexes / "sparse", tmp_path / "other"])
    with pytest.raises(OdqaError, match="unknown fusion"):
        open_retriever([indexes / "sparse", indexes / "dense"], fusion="borda")


def test_sharded_encoding_resumes_and_merges_to_the_same_index(corpus, indexes, tmp_path):
    from odqa.retrieval.build import build_dense_index

    out = tmp_path / "dense"
    assert build_dense_index(corpus, out, str(indexes / "encoder"), shards=3, shard=1, quiet=True)[0] is None
    assert len(list((tmp_path / "dense.shards").glob("*-1-of-3.npy"))) == 1 and not out.exists()
    merged, _ = build_dense_index(corpus, out, str(indexes / "encoder"), shards=3, quiet=True)
    whole = load_index(indexes / "dense")
    queries = ["훈민정음을 창제한 왕은?", "김치"]
    assert [[h.passage_id for h in row] for row in merged.search(queries, k=6)] == [
        [h.passage_id for h in row] for row in whole.search(queries, k=6)
    ]
    assert not (tmp_path / "dense.shards").exists()
    with pytest.raises(OdqaError, match="shard 3 does not exist"):
        build_dense_index(corpus, out, str(indexes / "encoder"), shards=3, shard=3)


def test_a_corpus_too_big_for_memory_is_refused_before_encoding(corpus, indexes, tmp_path, monkeypatch):
    from odqa.retrieval import dense
    from odqa.retrieval.build import build_dense_index

    with pytest.raises(OdqaError, match=r"1,000,000 passages × 768 dimensions need ~5\.7 GB.*--faiss ivfpq.*--shards"):
        dense.check_memory(1_000_000, 768, "flat", available=4 * 1024**3)
    dense.check_memory(1_000_000, 768, "ivfpq", available=4 * 1024**3)  # compressed: fits
    assert (
        dense.index_memory(1000, 64, "hnsw")
        > dense.index_memory(1000, 64, "flat")
        > dense.index_memory(1000, 64, "ivfpq")
    )

    monkeypatch.setattr(dense, "available_memory", lambda: 1024)
    out = tmp_path / "dense"
    with pytest.raises(OdqaError, match="memory is available"):
        build_dense_index(corpus, out, str(indexes / "encoder"), quiet=True)
    assert not out.exists()
    # one shard of many holds only its part: it may still be encoded here
    assert build_dense_index(corpus, out, str(indexes / "encoder"), shards=2, shard=0, quiet=True)[0] is None


def test_ask_reranks_as_its_flags_say_and_leaves_the_configs_settings_it_is_not_given(
    retriever_folders, korean_reader, tmp_path
):
    """`odqa ask --rerank R --rerank-weight W --rerank-fusion F --rerank-bf16` is the pipeline config
    with `rerank_weight`, `rerank_fusion` and `rerank_precision`; a flag left out keeps the config's."""
    from typer.testing import CliRunner

    from odqa.cli import app
    from odqa.cli.common import pipeline_from_options
    from odqa.pipeline import Pipeline, PipelineConfig

    sparse, reranker = retriever_folders / "sparse", str(retriever_folders / "reranker")
    question = "한강이 흘러가는 바다는?"
    result = CliRunner().invoke(
        app,
        ["ask", "--index", str(sparse), "--rerank", reranker, "--rerank-weight", "0.5", "--rerank-fusion", "zscore",
         "--rerank-bf16", "--reader", str(korean_reader), "-k", "2", "--json", question],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    asked = json.loads(result.stdout.splitlines()[-1])
    config = PipelineConfig(
        index=str(sparse), reader=str(korean_reader), k=2, rerank=reranker, rerank_weight=0.5,
        rerank_fusion="zscore", rerank_precision="bf16",
    )  # fmt: skip
    built = Pipeline(config).warm_up()
    assert asked["answer"]["text"] == built.ask(question).text
    reranked = built.open_index().reranker
    assert (reranked.weight, reranked.fusion, reranked.precision) == (0.5, "zscore", "bf16")

    config.rerank_weight, config.rerank_precision = 2.0, "fp32"
    (tmp_path / "pipeline.json").write_text(json.dumps(config.to_dict()), encoding="utf-8")
    flags = pipeline_from_options(tmp_path / "pipeline.json", None, None, None, None, rerank_weight=0.25)
    reranked = flags.open_index().reranker
    assert (reranked.weight, reranked.fusion, reranked.precision) == (0.25, "zscore", "fp32")
    result = CliRunner().invoke(
        app, ["ask", "--index", str(sparse), "--rerank", reranker, "--rerank-fusion", "borda", "--reader",
              str(korean_reader), question],
    )  # fmt: skip
    assert isinstance(result.exception, OdqaError) and "rerank_fusion: Input should be 'combsum'" in str(
        result.exception
    )
