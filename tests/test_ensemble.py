"""Ensembles of readers voting over character spans: readers on different tokenizers agree when
their spans cover the same characters of the same passage."""

import json
import math

import pytest

from odqa.ensemble import EnsembleConfig, best_answers, combine, read_nbest, tune_weights
from odqa.errors import OdqaError
from test_cli import odqa

CONTEXT = "조선의 이순신은 한산도에서 왜군을 물리쳤다."
#          0123456789...: "이순신" is characters 4-7, "이순신은" 4-8, "한산도" 9-12


def cand(text, start, score, **extra):
    """A candidate as `odqa read` writes it, with a probability instead of its logarithm."""
    assert CONTEXT[start : start + len(text)] == text
    return {"text": text, "start": start, "end": start + len(text), "score": math.log(score), **extra}


def probability(candidate):
    return math.exp(candidate["score"])


def test_spans_on_the_same_characters_merge_across_tokenizers():
    # A SentencePiece reader's span often carries the leading space of its first piece; a
    # WordPiece reader's does not. Both cover the characters of "이순신".
    sentencepiece = {"q1": [cand(" 이순신", 3, 0.6), cand("한산도", 9, 0.3)]}
    wordpiece = {"q1": [cand("이순신", 4, 0.8), cand("왜군", 15, 0.1)]}
    nbest = combine([sentencepiece, wordpiece])["q1"]
    top = nbest[0]
    assert (top["text"], top["start"], top["end"], top["votes"]) == ("이순신", 4, 7, 2)
    assert probability(top) == pytest.approx((0.6 + 0.8) / 2)
    # A span only one reader proposes stays, with the other reader's zero in its mean.
    only_one = {c["text"]: c for c in nbest}["왜군"]
    assert only_one["votes"] == 1 and probability(only_one) == pytest.approx(0.05)
    assert [c["text"] for c in nbest] == ["이순신", "한산도", "왜군"]


def test_soft_voting_finds_the_answer_both_readers_support():
    a = {"q": [cand("이순신", 4, 0.6), cand("한산도", 9, 0.4)]}
    b = {"q": [cand("한산도", 9, 0.7), cand("왜군", 15, 0.3)]}
    assert best_answers(combine([a, b])) == {"q": "한산도"}  # 0.55 against 0.3
    assert best_answers(combine([a, b], EnsembleConfig(method="max"))) == {"q": "한산도"}
    # Weights: a reader with weight 0 does not vote.
    assert best_answers(combine([a, b], EnsembleConfig(weights=(1.0, 0.0)))) == {"q": "이순신"}


def test_hard_voting_counts_each_readers_top_answer():
    # Two readers put "이순신" first with little confidence; one is very sure of "한산도".
    readers = [
        {"q": [cand("이순신", 4, 0.35), cand("한산도", 9, 0.3)]},
        {"q": [cand("이순신은", 4, 0.3), cand("한산도", 9, 0.25)]},  # the same answer once normalized
        {"q": [cand("한산도", 9, 0.95)]},
    ]
    assert best_answers(combine(readers, EnsembleConfig(method="soft"))) == {"q": "한산도"}
    strip_particle = lambda text: text.strip().removesuffix("은")
    hard = combine(readers, EnsembleConfig(method="hard"), normalize=strip_particle)["q"]
    assert hard[0]["text"] in ("이순신", "이순신은") and hard[0]["ballots"] == 2.0


def test_ties_are_broken_by_position_and_every_run_is_the_same():
    a = {"q": [cand("한산도", 9, 0.5), cand("이순신", 4, 0.5)]}
    b = {"q": [cand("이순신", 4, 0.5), cand("한산도", 9, 0.5)]}
    first = combine([a, b])["q"]
    assert [c["start"] for c in first] == [4, 9]
    assert combine([b, a])["q"] == first


def test_the_same_answer_in_several_passages_can_merge():
    # From `odqa predict`: candidates name their passage; "1592년" is found in two of them.
    a = {"q": [{"text": "1592년", "start": 3, "end": 8, "score": math.log(0.3), "passage_id": 7}]}
    b = {
        "q": [
            {"text": "1592년", "start": 10, "end": 15, "score": math.log(0.3), "passage_id": 9},
            {"text": "1593년", "start": 0, "end": 5, "score": math.log(0.35), "passage_id": 7},
        ]
    }
    apart = combine([a, b])["q"]
    assert apart[0]["text"] == "1593년" and len(apart) == 3  # two passages, two spans
    merged = combine([a, b], EnsembleConfig(merge_text=True))["q"]
    assert merged[0]["text"] == "1592년" and probability(merged[0]) == pytest.approx(0.3)


def test_bad_ensembles_are_refused_with_one_line():
    a, b = {"q1": [cand("이순신", 4, 0.5)]}, {"q2": [cand("이순신", 4, 0.5)]}
    with pytest.raises(OdqaError, match="covers other questions than reader 1: 1 only in the first"):
        combine([a, b])
    with pytest.raises(OdqaError, match="2 weights given for 1 readers"):
        combine([a], EnsembleConfig(weights=(1.0, 2.0)))
    with pytest.raises(OdqaError, match="unknown ensemble method 'vote'"):
        combine([a], EnsembleConfig(method="vote"))
    with pytest.raises(OdqaError, match="not all 0"):
        combine([a], EnsembleConfig(weights=(0.0,)))


def test_weights_are_chosen_on_labelled_questions():
    gold = {f"q{i}": ["한산도"] for i in range(4)}
    good = {q: [cand("한산도", 9, 0.6), cand("이순신", 4, 0.4)] for q in gold}
    bad = {q: [cand("이순신", 4, 0.9)] for q in gold}
    weights, tried = tune_weights([good, bad], gold, metric="korquad")
    assert tried[0]["exact_match"] == 100.0
    assert weights[0] > 0 and weights[0] * 0.6 > weights[1] * 0.4 + weights[1] * 0.9 - weights[0] * 0.4
    assert len({tuple(row["weights"]) for row in tried}) == len(tried)  # 2,2 and 1,1 are tried once
    with pytest.raises(OdqaError, match="no gold answer"):
        tune_weights([good, bad], {"q0": ["한산도"]})


def test_read_nbest_names_what_is_wrong(tmp_path):
    path = tmp_path / "nbest_predictions.json"
    path.write_text(json.dumps({"q": [{"text": "x", "start": 0}]}), encoding="utf-8")
    with pytest.raises(OdqaError, match="question 'q' has a candidate without text, start, end and score"):
        read_nbest(path)
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(OdqaError, match="got a JSON list"):
        read_nbest(tmp_path)  # a folder holding the file is read too
    with pytest.raises(OdqaError, match="n-best file not found"):
        read_nbest(tmp_path / "missing.json")


@pytest.mark.slow  # odqa processes
def test_ensemble_command(tmp_path):
    files = []
    for name, nbest in {
        "a": {"q": [cand("이순신", 4, 0.6), cand("한산도", 9, 0.4)]},
        "b": {"q": [cand("한산도", 9, 0.7)]},
    }.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "nbest_predictions.json").write_text(json.dumps(nbest, ensure_ascii=False), encoding="utf-8")
        files.append(folder)
    out = tmp_path / "ens"
    run = odqa("ensemble", "--nbest", files[0], "--nbest", files[1], "--out", out)
    assert run.returncode == 0, run.stderr
    assert json.loads((out / "predictions.json").read_text(encoding="utf-8")) == {"q": "한산도"}
    record = json.loads((out / "ensemble.json").read_text(encoding="utf-8"))
    assert record["method"] == "soft" and len(record["readers"]) == 2 and record["readers"][0]["sha256"]
    gold = tmp_path / "gold.json"
    squad = {"data": [{"paragraphs": [{"context": CONTEXT, "qas": [{"id": "q", "question": "누가?", "answers": [
        {"text": "이순신", "answer_start": 4}]}]}]}]}  # fmt: skip
    gold.write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    tuned = odqa("ensemble", "--nbest", files[0], "--nbest", files[1], "--out", out, "--gold", gold)
    assert tuned.returncode == 0, tuned.stderr
    assert "weights chosen on" in tuned.stdout and "EM 100.0" in tuned.stdout
    assert json.loads((out / "predictions.json").read_text(encoding="utf-8")) == {"q": "이순신"}
    missing = odqa("ensemble", "--nbest", files[0], "--nbest", tmp_path / "nope", "--out", out)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "n-best file not found" in missing.stderr
    bad = odqa("ensemble", "--nbest", files[0], "--nbest", files[1], "--out", out, "--weights", "1,x")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--weights expects numbers" in bad.stderr
