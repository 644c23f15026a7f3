"""Span heads chosen by name: each trains a tiny encoder to answer a few questions, and survives
save → load with the same answers; the saved encoder is a plain transformers folder."""

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("accelerate")

from odqa.errors import OdqaError


def train(tiny_encoder, korean_qa_file, out, head, epochs=40):
    from odqa.training.reader import ReaderTrainingConfig, train_reader

    config = ReaderTrainingConfig(
        model=str(tiny_encoder),
        train=[str(korean_qa_file)],
        out=str(out),
        epochs=epochs,
        lr=3e-3,
        batch_size=8,
        warmup_ratio=0.0,
        save_steps=10**6,
        head=head,
        reader={"max_length": 128, "stride": 32, "max_question_tokens": 32},
    )
    return train_reader(config, quiet=True, resume=False)


@pytest.mark.slow  # two tiny trainings, ~20 s each on 2 cores
@pytest.mark.parametrize("head", ["cnn", "bilstm"])
def test_each_head_learns_and_round_trips(tmp_path, tiny_encoder, korean_qa_file, head):
    from transformers import AutoModel

    from odqa.io.squad import read_qa_examples
    from odqa.reader import Reader

    out = tmp_path / "reader"
    state = train(tiny_encoder, korean_qa_file, out, head)
    losses = [record["loss"] for record in state["history"]]
    assert losses[-1] < 0.5 * losses[0]
    saved = json.loads((out / "odqa_reader.json").read_text(encoding="utf-8"))
    assert saved["head"]["name"] == head and (out / "head.safetensors").exists()

    examples = read_qa_examples(korean_qa_file)
    reader = Reader.load(out)
    answers = [r.text for r in reader.read([e.question for e in examples], [[e.context] for e in examples])]
    right = sum(a == e.answers[0].text for a, e in zip(answers, examples))
    assert right >= len(examples) - 1, (answers, [e.answers[0].text for e in examples])
    again = Reader.load(out).read([e.question for e in examples], [[e.context] for e in examples])
    assert [r.text for r in again] == answers and [r.answer.score for r in again] == [
        r.answer.score for r in reader.read([e.question for e in examples], [[e.context] for e in examples])
    ]
    # The encoder is a Hugging Face folder of its own: plain transformers loads it.
    assert AutoModel.from_pretrained(out).config.hidden_size == reader.model.config.hidden_size


def test_head_names_and_saved_heads_are_checked(tmp_path, tiny_encoder, korean_qa_file):
    from odqa.reader import Reader
    from odqa.reader.heads import HEAD_FILE, build_span_model

    with pytest.raises(OdqaError, match="unknown reader head 'gru'; choose one of linear, cnn, bilstm"):
        build_span_model(tiny_encoder, "gru")
    out = tmp_path / "reader"
    train(tiny_encoder, korean_qa_file, out, "cnn", epochs=1)
    settings = out / "odqa_reader.json"
    saved = json.loads(settings.read_text(encoding="utf-8"))
    settings.write_text(json.dumps(saved | {"head": {"name": "transformer-crf"}}), encoding="utf-8")
    with pytest.raises(OdqaError, match="head 'transformer-crf', which this odqa version does not know"):
        Reader.load(out)
    settings.write_text(json.dumps(saved), encoding="utf-8")
    (out / HEAD_FILE).unlink()
    with pytest.raises(OdqaError, match="has no head.safetensors"):
        Reader.load(out)


def test_training_from_a_saved_reader_goes_on_from_its_head(tmp_path, tiny_encoder, korean_qa_file):
    import torch
    from safetensors.torch import load_file

    from odqa.reader.heads import HEAD_FILE, build_span_model

    out = tmp_path / "reader"
    train(tiny_encoder, korean_qa_file, out, "cnn", epochs=1)
    trained = load_file(str(out / HEAD_FILE))
    again = build_span_model(out, "cnn")  # e.g. train-reader --model runs/ko-reader --head cnn
    assert all(torch.equal(again.head.state_dict()[name], value) for name, value in trained.items())
    # another head, or the same head with other settings, starts new on the reader's encoder
    other = build_span_model(out, "cnn", {"kernel_sizes": [3]})
    assert other.head.state_dict()["out.weight"].shape != trained["out.weight"].shape
    assert build_span_model(out, "bilstm").head_name == "bilstm"
    fresh = build_span_model(tiny_encoder, "cnn")  # an encoder's folder: a new head
    assert not torch.equal(fresh.head.state_dict()["out.weight"], trained["out.weight"])
    (out / "odqa_reader.json").write_text("[1, 2", encoding="utf-8")
    with pytest.raises(OdqaError, match="odqa_reader.json is not a reader's settings"):
        build_span_model(out, "cnn")


def test_the_linear_head_stays_a_transformers_qa_model(tiny_encoder):
    from transformers import BertForQuestionAnswering

    from odqa.reader.heads import build_span_model

    assert isinstance(build_span_model(tiny_encoder, "linear"), BertForQuestionAnswering)
