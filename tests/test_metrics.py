import numpy as np

from odqa.evaluation import evaluate_retrieval
from odqa.io import read_questions
from odqa.metrics import article_ranking, has_answer, normalize_title, recall_mrr, topk_accuracy
from odqa.retrieval.build import build_sparse_index


def test_has_answer_normalizes():
    assert has_answer("The  Capital is\nSEOUL.", ["capital is seoul"])
    assert has_answer("ＡＢＣ 전쟁", ["abc"])  # NFKC folds full-width letters
    assert not has_answer("서울", ["부산"])
    assert not has_answer("서울", [""])


def test_topk_accuracy_counts_first_relevant_rank():
    flags = np.array([[0, 1, 0], [0, 0, 0], [1, 0, 1]], dtype=bool)
    assert topk_accuracy(flags, [1, 2, 3]) == {"top1": 1 / 3, "top2": 2 / 3, "top3": 2 / 3}


def test_titles_and_article_rankings():
    assert normalize_title("서울_특별시 (도시)") == normalize_title("서울 특별시도시")
    assert article_ranking([["a"], ["b", "a"], ["c"]]) == ["a", "b", "c"]
    result = recall_mrr([["x", "a", "b"], ["c"]], [{"a", "b"}, {"z"}], k=2)
    assert result == {"recall@2": 0.25, "mrr@2": 0.25, "queries": 2}


def test_evaluate_retrieval_end_to_end(corpus_file, squad_file, tmp_path):
    index, _ = build_sparse_index(corpus_file, None, cache_dir=None, quiet=True)
    questions = read_questions(squad_file)
    result = evaluate_retrieval(index, questions, (1, 5), qrels={"q1": {"5"}, "q2": {"2"}})
    assert result["has_answer"]["questions"] == 3
    assert result["has_answer"]["top5"] >= 2 / 3
    assert result["gold_document"]["questions"] == 2 and result["gold_document"]["missing_from_corpus"] == 1
    assert result["gold_document"]["top1"] == 1.0
    assert result["qrels"]["recall@5"] == 1.0
