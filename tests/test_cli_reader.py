"""The reader commands as a user runs them: train-reader → read → evaluate-reader, and the errors."""

import json

import pytest

pytest.importorskip("torch")

from test_cli import odqa


@pytest.mark.slow  # several odqa processes, each importing torch
def test_train_read_evaluate(tmp_path, tiny_encoder, korquad_small):
    run_dir, preds = tmp_path / "run", tmp_path / "preds"
    train = odqa(
        "train-reader",
        "--model",
        tiny_encoder,
        "--train",
        korquad_small,
        "--eval",
        korquad_small,
        "--out",
        run_dir,
        "--max-steps",
        "4",
        "--batch-size",
        "8",
        "--max-length",
        "192",
        "--stride",
        "32",
        "--metric",
        "korquad",
        "-q",
    )
    assert train.returncode == 0, train.stderr
    assert "epoch 0: loss" in train.stdout and "exact_match" in train.stdout
    read = odqa("read", "--reader", run_dir, "--questions", korquad_small, "--out", preds, "--mode", "logits", "-q")
    assert read.returncode == 0, read.stderr
    assert "is the file" in read.stderr and "was trained on" in read.stderr  # scored on its own training data
    predictions = json.loads((preds / "predictions.json").read_text(encoding="utf-8"))
    nbest = json.loads((preds / "nbest_predictions.json").read_text(encoding="utf-8"))
    assert len(predictions) == 32 and set(nbest) == set(predictions)
    first = next(iter(nbest.values()))[0]
    assert {"text", "start", "end", "score"} <= set(first)
    evaluate = odqa(
        "evaluate-reader",
        "--predictions",
        preds / "predictions.json",
        "--gold",
        korquad_small,
        "--metric",
        "all",
        "--out",
        tmp_path / "scores.json",
    )
    assert evaluate.returncode == 0, evaluate.stderr
    assert "korquad: EM" in evaluate.stdout and "klue: EM" in evaluate.stdout
    assert len(json.loads((tmp_path / "scores.json").read_text(encoding="utf-8"))["per_question"]) == 32

    del predictions[next(iter(predictions))]
    (preds / "partial.json").write_text(json.dumps(predictions, ensure_ascii=False), encoding="utf-8")
    missing = odqa("evaluate-reader", "--predictions", preds / "partial.json", "--gold", korquad_small)
    assert missing.returncode == 2 and "1 of 32 questions have no prediction" in missing.stderr


@pytest.mark.slow  # several odqa processes, each importing torch
def test_reader_errors_name_the_problem(tmp_path, korquad_small):
    run = odqa("read", "--reader", tmp_path / "nowhere", "--questions", korquad_small, "--out", tmp_path / "p")
    assert run.returncode == 2 and "model folder not found" in run.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "title": "t",
                        "paragraphs": [
                            {
                                "context": "세종은 왕이다.",
                                "qas": [
                                    {"id": "x", "question": "누구?", "answers": [{"text": "태종", "answer_start": 0}]}
                                ],
                            }
                        ],
                    }
                ]
            },
            ensure_ascii=False,
        )
    )
    run = odqa("train-reader", "--model", tmp_path / "nowhere", "--train", bad, "--out", tmp_path / "r")
    assert run.returncode == 2 and "model folder not found" in run.stderr
    run = odqa("evaluate-reader", "--predictions", bad, "--gold", korquad_small)
    assert run.returncode == 2 and "expected a JSON object {question id: answer text}" in run.stderr


def test_training_refuses_answers_that_do_not_match_offsets(tmp_path, tiny_encoder):
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "title": "t",
                        "paragraphs": [
                            {
                                "context": "세종은 왕이다.",
                                "qas": [
                                    {"id": "x", "question": "누구?", "answers": [{"text": "태종", "answer_start": 0}]}
                                ],
                            }
                        ],
                    }
                ]
            },
            ensure_ascii=False,
        )
    )
    run = odqa("train-reader", "--model", tiny_encoder, "--train", bad, "--out", tmp_path / "r")
    assert run.returncode == 2 and "question x: answer '태종' does not match its offset 0" in run.stderr
