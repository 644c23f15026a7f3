"""Relation extraction (KLUE-RE): marking entities by offsets, cropping, metrics, voting, and a
tiny model trained, saved, loaded and scored through the command line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from odqa.errors import OdqaError
from odqa.relation.data import Entity, RelationExample, read_relation_file
from odqa.relation.markers import mark, relation_question
from odqa.relation.metrics import auprc, micro_f1, precision_recall_curve


def entity(sentence: str, word: str, kind: str, occurrence: int = 0) -> Entity:
    start = -1
    for _ in range(occurrence + 1):
        start = sentence.index(word, start + 1)
    return Entity(word, start, start + len(word), kind)


def maps_back(sentence: str, marked, e: Entity, span: tuple[int, int]) -> bool:
    """Every sentence character of the entity sits inside its marked span, in order."""
    inside = [int(c) for c in marked.origin[span[0] : span[1]] if c >= 0]
    return inside == list(range(e.start, e.end))


def test_typed_punctuation_markers_with_korean_type_words():
    sentence = "이순신은 한산도에서 싸웠다."
    s, o = entity(sentence, "이순신", "PER"), entity(sentence, "한산도", "LOC")
    marked = mark(sentence, s, o, "typed-punct")
    assert marked.text == "@ * 사람 * 이순신 @은 # ^ 지명 ^ 한산도 #에서 싸웠다."
    assert marked.text[slice(*marked.subject)] == "이순신"
    assert marked.text[marked.object_marker] == "#"
    # every sentence character is still there, in order; the rest are markers
    assert "".join(marked.text[i] for i in np.flatnonzero(marked.origin >= 0)) == sentence


def test_repeated_entity_words_are_marked_where_annotated():
    sentence = "삼성은 삼성전자와 삼성물산을 거느린 삼성이다."
    s = entity(sentence, "삼성", "ORG", occurrence=3)  # the last 삼성, not the first
    o = entity(sentence, "삼성전자", "ORG")
    marked = mark(sentence, s, o, "entity")
    assert marked.text == "삼성은 <obj>삼성전자</obj>와 삼성물산을 거느린 <subj>삼성</subj>이다."
    assert maps_back(sentence, marked, s, marked.subject) and maps_back(sentence, marked, o, marked.object)


@pytest.mark.parametrize(
    ("sentence", "subject", "obj", "expected"),
    [
        # nested: the object inside the subject; the outer span opens first and closes last
        ("대한민국 정부가 발표했다.", "대한민국 정부", "대한민국", "<subj><obj>대한민국</obj> 정부</subj>가 발표했다."),
        # adjacent: one closes before the next opens
        ("김철수박영희가 왔다.", "김철수", "박영희", "<subj>김철수</subj><obj>박영희</obj>가 왔다."),
        # at the very start and the very end of the sentence
        ("서울 그리고 부산", "서울", "부산", "<subj>서울</subj> 그리고 <obj>부산</obj>"),
        # the same span for both: the subject is the outer one
        ("유엔 회의", "유엔", "유엔", "<subj><obj>유엔</obj></subj> 회의"),
    ],
)
def test_nested_adjacent_and_edge_entities_map_back(sentence, subject, obj, expected):
    s = entity(sentence, subject, "ORG")
    o = entity(sentence, obj, "ORG")
    marked = mark(sentence, s, o, "entity")
    assert marked.text == expected
    assert maps_back(sentence, marked, s, marked.subject) and maps_back(sentence, marked, o, marked.object)
    assert marked.text[marked.subject_marker :].startswith("<subj>")
    assert marked.text[marked.object_marker :].startswith("<obj>")


def test_question_segment_picks_the_particle_by_final_consonant():
    sentence = "이순신 한산도 세종대왕 서울"
    assert relation_question(entity(sentence, "이순신", "PER"), entity(sentence, "한산도", "LOC")) == (
        "이순신과 한산도의 관계는?"
    )
    assert relation_question(entity(sentence, "세종대왕", "PER"), entity(sentence, "서울", "LOC")).startswith(
        "세종대왕과"
    )
    assert relation_question(Entity("유니세프", 0, 4, "ORG"), Entity("서울", 5, 7, "LOC")).startswith("유니세프와")


def test_a_long_sentence_is_cropped_around_both_entities(klue_tokenizer):
    from odqa.relation.features import encode_examples

    filler = "그리고 아무 관계 없는 말이 길게 이어진다. " * 40
    sentence = "이순신은 " + filler + "한산도에 있었다."
    example = RelationExample("far", sentence, entity(sentence, "이순신", "PER"), entity(sentence, "한산도", "LOC"))
    features = encode_examples(klue_tokenizer, [example], "typed-punct", max_length=64)
    assert features.cropped[0] and len(features.input_ids[0]) <= 64
    marked = features.marked[0]
    assert "…" in marked.text  # two pieces: one around each entity
    assert maps_back(sentence, marked, example.subject, marked.subject)
    assert maps_back(sentence, marked, example.object, marked.object)
    tokens = klue_tokenizer.convert_ids_to_tokens(features.input_ids[0])
    assert tokens[features.subject_marker[0]] == "@" and tokens[features.object_marker[0]] == "#"
    subject_tokens = tokens[slice(*features.subject_span[0])]
    assert "".join(t.lstrip("#") for t in subject_tokens) == "이순신"


def test_micro_f1_leaves_out_no_relation():
    labels = ["no_relation", "per:title", "org:members"]
    gold = np.array([0, 1, 1, 2, 0, 2])
    predicted = np.array([0, 1, 2, 2, 1, 0])
    # relations predicted: 4 (positions 1, 2, 3, 4), correct among them: 2 (1, 3); gold relations: 4
    # precision 2/4, recall 2/4 → F1 0.5; the correct no_relation at position 0 earns nothing
    assert micro_f1(predicted, gold, labels) == pytest.approx(50.0)
    assert micro_f1(np.zeros(6, dtype=int), gold, labels) == 0.0


def test_auprc_by_hand():
    # one label: scores 0.9 (positive), 0.8 (negative), 0.7 (positive)
    precision, recall = precision_recall_curve(np.array([True, False, True]), np.array([0.9, 0.8, 0.7]))
    assert precision.tolist() == pytest.approx([2 / 3, 1 / 2, 1.0, 1.0])
    assert recall.tolist() == pytest.approx([1.0, 0.5, 0.5, 0.0])
    # trapezoids from recall 0 up: 0→0.5 at precision 1 (0.5), 0.5→0.5 (0), 0.5→1 from 1/2 to 2/3 (0.2917)
    probabilities = np.array([[0.1, 0.9], [0.2, 0.8], [0.3, 0.7]])
    gold = np.array([1, 0, 1])
    area_1 = 0.5 + 0.5 * (0.5 + 2 / 3) / 2  # the curve above, label 1
    # label 0: one positive, ranked 2nd of 3 by its score → points (recall 1, 1/3), (1, 1/2), (0, 0), (0, 1)
    precision_0, recall_0 = precision_recall_curve(gold == 0, probabilities[:, 0])
    assert precision_0.tolist() == pytest.approx([1 / 3, 1 / 2, 0.0, 1.0])
    area_0 = 0.5 * (1 / 2 + 0.0)  # the one trapezoid of width 1, from recall 1 down to 0
    assert auprc(probabilities, gold) == pytest.approx(100 * (area_0 + area_1) / 2)


def write_klue(path: Path, rows: list[dict]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def klue_row(guid, sentence, subject, subject_type, obj, object_type, label):
    s, o = sentence.index(subject), sentence.index(obj)
    return {
        "guid": guid,
        "sentence": sentence,
        "subject_entity": {"word": subject, "start_idx": s, "end_idx": s + len(subject) - 1, "type": subject_type},
        "object_entity": {"word": obj, "start_idx": o, "end_idx": o + len(obj) - 1, "type": object_type},
        "label": label,
        "source": "test",
    }


def test_bad_files_are_refused_by_name(tmp_path):
    row = klue_row("g1", "이순신은 한산도에 있었다.", "이순신", "PER", "한산도", "LOC", "per:place_of_residence")
    shifted = json.loads(json.dumps(row))
    shifted["subject_entity"]["start_idx"] += 1
    with pytest.raises(OdqaError, match="g1: subject_entity offsets 1..2 hold .순신., not its word .이순신."):
        read_relation_file(write_klue(tmp_path / "shifted.jsonl.gz", [shifted]))
    with pytest.raises(OdqaError, match="g1 has the unknown label 'per:place_of_residence'"):
        read_relation_file(write_klue(tmp_path / "ok.jsonl.gz", [row]), labels=["no_relation", "per:title"])
    with pytest.raises(OdqaError, match="no examples"):
        read_relation_file(write_klue(tmp_path / "empty.jsonl.gz", []))
    with pytest.raises(OdqaError, match="guid 'g1' appears twice"):
        read_relation_file(write_klue(tmp_path / "twice.jsonl.gz", [row, row]))


def test_stratified_folds_keep_label_shares():
    from odqa.training.relation import stratified_folds

    labels = ["no_relation"] * 60 + ["per:title"] * 30 + ["org:members"] * 10
    folds = stratified_folds(labels, 5, seed=1)
    for fold in range(5):
        members = [label for label, f in zip(labels, folds) if f == fold]
        assert members.count("no_relation") == 12 and members.count("per:title") == 6
        assert members.count("org:members") == 2


def test_weights_chosen_on_held_out_favour_the_better_member():
    from odqa.relation.predictions import choose_weights, soft_vote

    labels = ["no_relation", "a", "b"]
    gold = np.array([1, 2, 1, 2, 0, 1])
    good = np.eye(3)[gold] * 0.8 + 0.2 / 3
    noisy = np.eye(3)[np.array([2, 1, 2, 1, 0, 2])] * 0.9 + 0.1 / 3
    weights = choose_weights([noisy, good], gold, labels)
    assert weights[1] > weights[0]
    assert micro_f1(soft_vote([noisy, good], weights).argmax(1), gold, labels) == 100.0


def test_type_restriction_rules_out_unseen_labels(klue_tokenizer, tiny_encoder):
    import torch

    from odqa.relation.model import RelationClassifier, RelationModelConfig, build_relation_model

    labels = ["no_relation", "per:title", "org:members"]
    config = RelationModelConfig(
        format="punct",
        labels=labels,
        types=["ORG", "PER"],
        allowed={"PER|POH": ["no_relation", "per:title"]},
        restrict_types=True,
    )
    torch.manual_seed(0)
    model, tokenizer = build_relation_model(tiny_encoder, config)
    sentence = "홍길동은 장관이다. 유엔 회원국"
    examples = [
        RelationExample("seen", sentence, entity(sentence, "홍길동", "PER"), entity(sentence, "장관", "POH")),
        RelationExample("unseen", sentence, entity(sentence, "유엔", "ORG"), entity(sentence, "회원국", "ORG")),
    ]
    probabilities = RelationClassifier(model, tokenizer, config, device="cpu").predict(examples)
    assert probabilities[0, 2] < 1e-6  # org:members never seen with (PER, POH)
    assert (probabilities[1] > 1e-6).all()  # a pair never seen keeps every label


def test_type_restriction_can_be_switched_on_for_a_saved_model(klue_tokenizer, tiny_encoder, tmp_path):
    import torch

    from odqa.relation.model import RelationClassifier, RelationModelConfig, build_relation_model

    labels = ["no_relation", "per:title", "org:members"]
    config = RelationModelConfig(
        format="punct", labels=labels, types=["PER", "POH"], allowed={"PER|POH": ["no_relation", "per:title"]}
    )
    torch.manual_seed(0)
    model, tokenizer = build_relation_model(tiny_encoder, config)
    RelationClassifier(model, tokenizer, config, device="cpu").save(tmp_path / "unrestricted")
    sentence = "홍길동은 장관이다."
    examples = [RelationExample("a", sentence, entity(sentence, "홍길동", "PER"), entity(sentence, "장관", "POH"))]

    classifier = RelationClassifier.load(tmp_path / "unrestricted", device="cpu")
    assert classifier.predict(examples)[0, 2] > 1e-6  # trained without the restriction: every label
    restricted = classifier.restrict_types(True).predict(examples)
    assert restricted[0, 2] < 1e-6
    assert restricted[0].sum() == pytest.approx(1.0, abs=1e-5)
    classifier.save(tmp_path / "restricted")
    assert RelationClassifier.load(tmp_path / "restricted", device="cpu").predict(examples)[0, 2] < 1e-6
    assert classifier.restrict_types(False).predict(examples)[0, 2] > 1e-6


RE_SENTENCES = [
    ("이순신은 조선의 장군이다.", "이순신", "PER", "장군", "POH", "per:title"),
    ("세종은 조선의 왕이다.", "세종", "PER", "왕", "POH", "per:title"),
    ("삼성전자의 회장은 이건희이다.", "삼성전자", "ORG", "이건희", "PER", "org:top_members/employees"),
    ("현대자동차의 사장은 정몽구이다.", "현대자동차", "ORG", "정몽구", "PER", "org:top_members/employees"),
    ("서울과 부산은 멀다.", "서울", "LOC", "부산", "LOC", "no_relation"),
    ("대구와 광주는 도시다.", "대구", "LOC", "광주", "LOC", "no_relation"),
]


@pytest.fixture
def re_files(tmp_path):
    rows = [klue_row(f"re-{i}", *row) for i, row in enumerate(RE_SENTENCES)]
    labels = tmp_path / "relation_list.json"
    labels.write_text(
        json.dumps({"relations": ["no_relation", "per:title", "org:top_members/employees", "org:members"]}),
        encoding="utf-8",
    )
    return write_klue(tmp_path / "train.jsonl.gz", rows), labels


@pytest.mark.slow
@pytest.mark.parametrize("input_format", ["typed", "typed-punct"])
def test_a_tiny_model_overfits_and_round_trips_through_the_command_line(
    tmp_path, re_files, tiny_encoder, input_format, capsys
):
    from odqa.cli import app
    from odqa.relation.model import RelationClassifier
    from odqa.relation.predictions import read_predictions

    train, labels = re_files
    run = tmp_path / "run"
    args = ["re", "train", "--model", str(tiny_encoder), "--train", str(train), "--eval", str(train)]
    args += ["--out", str(run), "--label-list", str(labels), "--format", input_format, "--epochs", "40"]
    args += ["--batch-size", "3", "--lr", "3e-3", "--max-length", "48", "-q"]
    app(args, standalone_mode=False)
    scores = json.loads((run / "odqa_relation.json").read_text(encoding="utf-8"))["metrics"]["eval"]
    assert scores["micro_f1"] == 100.0

    predictions = tmp_path / "preds.jsonl"
    app(
        ["re", "predict", "--model", str(run), "--input", str(train), "--out", str(predictions), "-q"],
        standalone_mode=False,
    )
    app(["re", "evaluate", "--predictions", str(predictions), "--gold", str(train)], standalone_mode=False)
    assert "micro-F1 100.00" in capsys.readouterr().out

    # save → load → the same probabilities as the file written by `re predict`
    examples = read_relation_file(train)
    again = RelationClassifier.load(run).predict(examples)
    guids, written = read_predictions(predictions, RelationClassifier.load(run).labels)
    assert guids == [e.guid for e in examples]
    np.testing.assert_allclose(again, written, atol=1e-5)

    def predicted_with(flag: str) -> np.ndarray:
        """`re predict` with one more option; the probabilities it wrote."""
        out = tmp_path / f"preds{flag}.jsonl"
        app(
            ["re", "predict", "--model", str(run), "--input", str(train), "--out", str(out), flag, "-q"],
            standalone_mode=False,
        )
        return read_predictions(out, RelationClassifier.load(run).labels)[1]

    # --int8: the linear layers quantized for CPU prediction, the same labels on what it learnt
    quantized = predicted_with("--int8")
    assert (quantized.argmax(1) == written.argmax(1)).all()
    assert not np.array_equal(quantized, written)  # it really ran in int8
    with pytest.raises(OdqaError, match="CPU only"):
        RelationClassifier.load(run, device="cuda", int8=True)

    # --bf16: every weight in bfloat16 for prediction, the same labels, nearly the same probabilities
    halved = predicted_with("--bf16")
    assert (halved.argmax(1) == written.argmax(1)).all()
    np.testing.assert_allclose(halved, written, atol=0.05)
    assert not np.array_equal(halved, written)  # it really ran in bf16
    with pytest.raises(OdqaError, match="not both"):
        RelationClassifier.load(run, int8=True, bf16=True)

    # --restrict-types on a model trained without it: each training sentence's label was seen with its
    # own entity-type pair, so none is ruled out
    kept = predicted_with("--restrict-types")
    assert (kept.argmax(1) == written.argmax(1)).all()

    # re calibrate: a temperature and label bias fitted on labelled sentences, kept with the model
    # and applied by every later prediction; --reset removes it
    held_out = write_klue(tmp_path / "held.jsonl.gz", [klue_row(f"h-{i}", *RE_SENTENCES[i % 6]) for i in range(60)])
    app(["re", "calibrate", "--model", str(run), "--held-out", str(held_out), "-q"], standalone_mode=False)
    assert "temperature" in capsys.readouterr().out
    calibrated = RelationClassifier.load(run)
    assert calibrated.config.calibrated_on.endswith("(60 sentences)") and len(calibrated.config.label_bias) == 4
    sharper = calibrated.predict(examples)
    assert (sharper.argmax(1) == written.argmax(1)).all() and sharper.max(1).mean() >= written.max(1).mean()
    app(["re", "calibrate", "--model", str(run), "--reset"], standalone_mode=False)
    np.testing.assert_allclose(RelationClassifier.load(run).predict(examples), written, atol=1e-5)
    with pytest.raises(OdqaError, match="at least 50 labelled sentences"):
        app(["re", "calibrate", "--model", str(run), "--held-out", str(train), "-q"], standalone_mode=False)


def test_calibration_undoes_an_under_confident_biased_model():
    from odqa.relation.calibration import apply_calibration, fit_calibration

    # the true posteriors of three labels, and a model that is under-confident (logits × 0.3) and
    # biased towards label 2
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 3, size=(3000, 3))
    gold = np.array([rng.choice(3, p=p) for p in np.exp(true_logits) / np.exp(true_logits).sum(1, keepdims=True)])
    model_logits = 0.3 * true_logits + np.array([0.0, 0.0, 1.0])
    probabilities = np.exp(model_logits) / np.exp(model_logits).sum(1, keepdims=True)

    fitted = fit_calibration(probabilities[:2000], gold[:2000])
    assert 0.25 < fitted["temperature"] < 0.36  # undoes the × 0.3
    assert fitted["nll_after"] < fitted["nll_before"]
    bias = np.array(fitted["bias"])
    assert bias[2] - bias[:2].mean() < -2  # takes the model's lean towards label 2 back (1 / 0.3 ≈ 3.3)
    calibrated = apply_calibration(probabilities[2000:], fitted["temperature"], fitted["bias"])
    np.testing.assert_allclose(calibrated.sum(1), 1.0)
    assert (calibrated.argmax(1) == gold[2000:]).mean() > (probabilities[2000:].argmax(1) == gold[2000:]).mean()
    np.testing.assert_allclose(apply_calibration(probabilities, 1.0, [0, 0, 0]), probabilities, atol=1e-12)

    with pytest.raises(OdqaError, match="at least 50 labelled sentences"):
        fit_calibration(probabilities[:10], gold[:10])
    with pytest.raises(OdqaError, match="gold labels for probabilities"):
        fit_calibration(probabilities, gold[:100])


def test_relation_sentences_feed_vocabulary_trimming(re_files):
    from odqa.models.trim import corpus_texts

    train, _ = re_files
    assert list(corpus_texts([train])) == [row[0] for row in RE_SENTENCES]


@pytest.mark.slow
def test_task_adaptive_pretraining_reads_relation_sentences(re_files, tiny_encoder, tmp_path):
    from odqa.training.mlm import MlmConfig, pretrain_mlm

    train, _ = re_files
    config = MlmConfig(
        model=str(tiny_encoder),
        corpus=[str(train)],
        out=str(tmp_path / "tapt"),
        max_length=16,
        batch_size=2,
        max_steps=2,
    )
    state = pretrain_mlm(config, quiet=True, resume=False)
    assert state["step"] == 2 and (tmp_path / "tapt" / "model.safetensors").exists()
