"""ask / predict / evaluate as a user runs them, and their errors."""

import json

import pytest

pytest.importorskip("torch")

from conftest import KOREAN_QA
from odqa.cli.qa import evidence_sentence, one_line
from test_cli import odqa


@pytest.mark.slow  # several odqa processes, each importing torch
def test_ask_prints_answer_title_and_evidence(korean_docs_index, korean_reader, weak_reader):
    run = odqa(
        "ask",
        "--index",
        korean_docs_index,
        "--reader",
        korean_reader,
        "-k",
        "2",
        "훈민정음을 창제한 왕은?",
        "김치 재료는?",
    )
    assert run.returncode == 0, run.stderr
    assert "A: 세종" in run.stdout and "【세종】" in run.stdout
    assert run.stdout.count("retrieve") == 1 and "2 questions in one batch" in run.stdout  # the batch time, once
    assert "warning" not in run.stderr
    as_json = odqa("ask", "--index", korean_docs_index, "--reader", korean_reader, "--json", "대한민국의 수도는?")
    assert json.loads(as_json.stdout)["answer"]["title"] == "서울특별시"
    weak = odqa("ask", "--index", korean_docs_index, "--reader", weak_reader, "대한민국의 수도는?")
    assert weak.returncode == 0 and "A: 서울" in weak.stdout
    assert weak.stderr.count("warning: the reader") == 1 and "F1 31.5 / EM 20.0" in weak.stderr


@pytest.mark.slow  # several odqa processes, each importing torch
def test_predict_and_evaluate(korean_docs_index, korean_reader, korean_qa_file, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"id": f"t{i}", "question": q}, ensure_ascii=False) + "\n"
            for i, (_, q, _) in enumerate(KOREAN_QA)
        )
    )
    run = odqa(
        "predict",
        "--index",
        korean_docs_index,
        "--reader",
        korean_reader,
        "--questions",
        questions,
        "--out",
        tmp_path / "p",
        "-q",
    )
    assert run.returncode == 0, run.stderr
    assert set(json.loads((tmp_path / "p" / "predictions.json").read_text())) == {
        f"t{i}" for i in range(len(KOREAN_QA))
    }
    run = odqa(
        "evaluate",
        "--index",
        korean_docs_index,
        "--reader",
        korean_reader,
        "--questions",
        korean_qa_file,
        "-k",
        "3",
        "--ks",
        "1,3",
        "--out",
        tmp_path / "e",
        "-q",
    )
    assert run.returncode == 0, run.stderr
    assert "errors: correct" in run.stdout and "retrieval_miss" in run.stdout
    saved = json.loads((tmp_path / "e" / "evaluation.json").read_text())
    assert len(saved["per_question"]) == len(KOREAN_QA)


@pytest.mark.slow  # several odqa processes, each importing torch
def test_tune_pipeline_writes_a_config_that_ask_takes(korean_docs_index, korean_reader, korean_qa_file, tmp_path):
    tuned = tmp_path / "tuned.json"
    args = ["tune-pipeline", "--questions", korean_qa_file, "--index", korean_docs_index, "--reader", korean_reader]
    run = odqa(*args, "--ks", "1,3", "--weights", "0,0.5", "--out", tuned, "-q")
    assert run.returncode == 0, run.stderr
    config = json.loads(tuned.read_text(encoding="utf-8"))
    assert config["k"] in (1, 3) and config["retriever_weight"] in (0.0, 0.5)
    assert f"k = {config['k']}, retriever weight = {config['retriever_weight']:g}" in run.stdout
    assert (tmp_path / "tuned.json.run.json").exists()  # the run's record, beside the config

    asked = odqa("ask", "--config", tuned, "--json", "훈민정음을 창제한 왕은?")
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["answer"]["text"] == "세종"
    other = 0.5 if config["retriever_weight"] == 0 else 0.0  # the flag overrides the config's weight
    weighted = odqa("ask", "--config", tuned, "--retriever-weight", str(other), "--json", "훈민정음을 창제한 왕은?")
    answer = json.loads(weighted.stdout)["answer"]
    assert (answer["score"] != answer["reader_score"]) == (other > 0)

    again = odqa(*args, "--out", tuned, "-q")
    assert again.returncode == 2 and "exists; pass --overwrite" in again.stderr and again.stderr.count("\n") == 1
    wrong = odqa(*args, "--out", tmp_path / "tuned.txt", "-q")
    assert wrong.returncode == 2 and "--out must end in .json, .yaml or .yml" in wrong.stderr
    unknown = odqa(*args, "--out", tmp_path / "other.json", "--rule", "cheapest", "-q")
    assert unknown.returncode == 2 and "--rule must be one of one-se, best, got 'cheapest'" in unknown.stderr


def test_tune_pipeline_tries_the_library_grid_by_default():
    import inspect

    from odqa.cli.tuning import tune_pipeline_command
    from odqa.e2e import TUNE_KS, TUNE_RULES, TUNE_WEIGHTS, tune_pipeline

    defaults = {name: p.default.default for name, p in inspect.signature(tune_pipeline_command).parameters.items()}
    assert [int(k) for k in defaults["ks"].split(",")] == list(TUNE_KS)
    assert [float(w) for w in defaults["weights"].split(",")] == list(TUNE_WEIGHTS)
    assert defaults["rule"] == TUNE_RULES[0] == inspect.signature(tune_pipeline).parameters["rule"].default


def test_missing_index_or_reader_is_named(korean_docs_index, tmp_path, monkeypatch):
    monkeypatch.delenv("ODQA_READER", raising=False)
    run = odqa("ask", "--index", korean_docs_index, "질문")
    assert run.returncode == 2 and "no reader given" in run.stderr
    run = odqa("ask", "--index", tmp_path / "none", "--reader", tmp_path, "질문")
    assert run.returncode == 2 and "index not found" in run.stderr
    run = odqa("serve", "--index", korean_docs_index, "--reader", tmp_path / "missing-reader")
    assert run.returncode == 2 and "model folder not found" in run.stderr


def test_a_bad_question_file_is_refused_before_any_model_loads(korean_docs_index, tmp_path):
    bad = tmp_path / "questions.jsonl"
    bad.write_text('{"id": "1", "text": "훈민정음을 창제한 왕은?"}\n', encoding="utf-8")
    commands = [["predict", "--out", tmp_path / "out"], ["evaluate"], ["tune-pipeline", "--out", tmp_path / "p.json"]]
    for command in commands:
        # the reader does not exist: the question file's error comes first, so no model was loaded
        run = odqa(*command, "--index", korean_docs_index, "--reader", tmp_path / "no-reader", "--questions", bad)
        assert run.returncode == 2 and "questions.jsonl:1: missing string field 'question'" in run.stderr, command


def test_answers_print_on_one_line():
    assert one_line("자음 기호를 다시 쓰도록 되어 있다.\n1966년") == "자음 기호를 다시 쓰도록 되어 있다. 1966년"
    assert one_line("  a \t b\r\n") == "a b"


def test_evidence_sentence_marks_the_answer():
    text = "세종은 조선의 왕이다. 그는 훈민정음을 창제하였다. 한글의 옛 이름이다."
    start = text.index("훈민정음")
    assert evidence_sentence(text, start, start + 4) == "그는 【훈민정음】을 창제하였다."
