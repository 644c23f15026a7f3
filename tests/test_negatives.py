"""Negative windows from retrieved passages: the passages an index finds for a training question
that do not hold its answer become no-answer windows of `train-reader --negatives-index`."""

import json

import pytest

from conftest import KOREAN_QA
from odqa.errors import OdqaError
from odqa.training.negatives import RetrievedNegatives, retrieved_negatives


def test_the_best_ranked_passages_without_the_answer_are_kept(korean_docs_index):
    from odqa.metrics.retrieval import has_answer
    from odqa.retrieval.hybrid import open_retriever

    questions = [q for _, q, _ in KOREAN_QA]
    answers = [[a] for _, _, a in KOREAN_QA]
    kept = retrieved_negatives(
        RetrievedNegatives(index=str(korean_docs_index), per_question=2, k=4), questions, answers
    )
    assert kept and all(not has_answer(text, answers[qi]) for qi, text in kept)
    hits = open_retriever(korean_docs_index).search(questions, k=4, fetch=True)
    for qi, row in enumerate(hits):
        expected = [h.passage.text for h in row if not has_answer(h.passage.text, answers[qi])][:2]
        assert [text for q, text in kept if q == qi] == expected  # in rank order, at most 2
    assert [qi for qi, _ in kept] == sorted(qi for qi, _ in kept)


def test_no_negative_at_all_is_refused(korean_docs_index):
    # "다" ends a sentence of every passage: nothing retrieved is without it
    with pytest.raises(OdqaError, match="no retrieved negatives"):
        retrieved_negatives(RetrievedNegatives(index=str(korean_docs_index), k=3), ["수도는?"], [["다"]])
    with pytest.raises(OdqaError, match="not found|no index"):
        retrieved_negatives(RetrievedNegatives(index="/nonexistent/index"), ["수도는?"], [["서울"]])


@pytest.mark.slow  # a tiny training
def test_train_reader_adds_no_answer_windows(tmp_path, tiny_encoder, korean_qa_file, korean_docs_index):
    pytest.importorskip("accelerate")
    from odqa.io.squad import read_qa_examples
    from odqa.models.tokenizer import load_tokenizer
    from odqa.training.reader import ReaderTrainingConfig, negative_windows, train_reader

    config = ReaderTrainingConfig(
        model=str(tiny_encoder),
        train=[str(korean_qa_file)],
        out=str(tmp_path / "r"),
        max_steps=2,
        batch_size=4,
        negatives={"index": str(korean_docs_index), "per_question": 2, "k": 5},
        reader={"max_length": 128, "stride": 32, "max_question_tokens": 32},
    )
    examples = read_qa_examples(korean_qa_file)
    windows = negative_windows(load_tokenizer(tiny_encoder), config, examples)
    assert 0 < len(windows) <= 2 * len(examples)  # short passages: a window each, at most two per question
    assert set(windows.start_positions) == {0} and set(windows.end_positions) == {0}  # labelled no-answer
    assert set(windows.pair) <= set(range(len(examples)))  # each window points at its question

    train_reader(config, quiet=True, resume=False)
    record = json.loads((tmp_path / "r" / "odqa_reader.json").read_text(encoding="utf-8"))
    plain = config.model_copy(update={"negatives": None, "out": str(tmp_path / "plain")})
    train_reader(plain, quiet=True, resume=False)
    without = json.loads((tmp_path / "plain" / "odqa_reader.json").read_text(encoding="utf-8"))
    assert record["counts"]["train_windows"] == without["counts"]["train_windows"] + len(windows)
    assert record["training"]["negatives"] == {"index": str(korean_docs_index), "per_question": 2, "k": 5}
