"""Retrieve → read → answer on a tiny corpus with a tiny reader; prediction files; attribution."""

import json

import pytest

pytest.importorskip("torch")

from conftest import KOREAN_DOCS, KOREAN_QA
from odqa.e2e import attribute, evaluate_end_to_end, predict_file
from odqa.errors import OdqaError
from odqa.io.questions import Question
from odqa.pipeline import Pipeline, PipelineConfig


@pytest.fixture(scope="module")
def pipeline(korean_docs_index, korean_reader):
    return Pipeline(PipelineConfig(index=str(korean_docs_index), reader=str(korean_reader), k=3)).warm_up()


def test_ask_answers_with_evidence_and_offsets(pipeline):
    result = pipeline.ask("훈민정음을 창제한 왕은?")
    answer = result.answer
    assert answer.text == "세종" and answer.title == "세종" and answer.doc_id == "5"
    passage = next(p for p in result.passages if p.passage_id == answer.passage_id)
    assert passage.text[answer.start : answer.end] == "세종"
    if answer.doc_start is not None:  # the span is in the body: it also places the answer in the document
        assert KOREAN_DOCS[4]["text"][answer.doc_start : answer.doc_end] == "세종"
    assert 1 <= len(result.passages) <= 3 and result.passages[0].rank == 1
    assert [a.score for a in result.nbest] == sorted((a.score for a in result.nbest), reverse=True)
    assert result.timings["read_ms"] > 0


def test_batch_answers_match_single_answers(pipeline):
    questions = [q for _, q, _ in KOREAN_QA[:4]]
    batch = [r.text for r in pipeline.ask_batch(questions)]
    assert batch == [pipeline.ask(q).text for q in questions]
    assert sum(text == gold for text, (_, _, gold) in zip(batch, KOREAN_QA)) >= 3


def test_config_round_trips(tmp_path, korean_docs_index):
    config = PipelineConfig(index=str(korean_docs_index), reader="runs/r", k=7, reader_options={"mode": "logits"})
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(config.to_dict()))
    assert PipelineConfig.from_file(path) == config
    with pytest.raises(OdqaError, match="bad pipeline config"):
        PipelineConfig.from_dict({"index": "x", "reader": "y", "k": 0})
    with pytest.raises(OdqaError, match="index not found"):
        Pipeline(PipelineConfig(index=str(tmp_path / "none"), reader="r")).warm_up()


def test_predict_writes_competition_files_and_resumes(pipeline, tmp_path):
    questions = [Question(f"q{i}", q) for i, (_, q, _) in enumerate(KOREAN_QA)]
    out = tmp_path / "preds"
    out.mkdir()
    # a previous run that was killed after two questions, mid-way through writing a third line
    done = [
        {"id": "q0", "answer": "미리 쓴 답", "nbest": [], "passages": []},
        {"id": "q1", "answer": "두 번째", "nbest": [], "passages": []},
    ]
    (out / "partial.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in done) + '{"id": "q2", "ans'
    )
    predictions = predict_file(pipeline, questions, out, batch_size=3, quiet=True)
    assert list(predictions) == [q.id for q in questions]
    assert predictions["q0"] == "미리 쓴 답"  # kept from the interrupted run, not recomputed
    saved = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    assert saved == predictions and not (out / "partial.jsonl").exists()
    retrieved = json.loads((out / "retrieved.json").read_text(encoding="utf-8"))
    assert 1 <= len(retrieved["q3"]) <= 3 and {"passage_id", "score", "title", "doc_id"} <= set(retrieved["q3"][0])
    nbest = json.loads((out / "nbest_predictions.json").read_text(encoding="utf-8"))
    assert nbest["q3"][0]["text"] == predictions["q3"]


@pytest.mark.parametrize(
    "exact, f1, retrieved, category",
    [
        (1.0, 1.0, True, "correct"),
        (0.0, 0.8, True, "near_miss"),
        (0.0, 0.0, False, "retrieval_miss"),
        (0.0, 0.3, True, "reading_miss"),
        (0.0, 0.6, False, "near_miss"),
    ],
)
def test_error_attribution(exact, f1, retrieved, category):
    assert attribute(exact, f1, retrieved) == category


def test_evaluate_end_to_end(pipeline):
    questions = [Question(f"q{i}", q, (a,)) for i, (_, q, a) in enumerate(KOREAN_QA)]
    questions.append(Question("miss", "파리의 에펠탑은 누가 설계했나?", ("귀스타브 에펠",)))  # not in the corpus
    result = evaluate_end_to_end(pipeline, questions, ks=[1, 3], metrics=["korquad", "squad"], quiet=True)
    assert result["questions"] == 9 and set(result["by_k"]) == {1, 3}
    assert sum(result["attribution"].values()) == 9
    details = {d["id"]: d for d in result["per_question"]}
    assert details["miss"]["category"] == "retrieval_miss" and details["miss"]["first_answer_rank"] is None
    assert result["metrics"]["korquad"]["exact_match"] == pytest.approx(100 * result["attribution"]["correct"] / 9)
    assert result["metrics"]["korquad"]["exact_match"] >= 50
