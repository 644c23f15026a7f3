"""Training, features and decoding fit together: a tiny model overfits a few dozen questions;
a saved reader reloads to identical predictions; runs resume; bad model folders are named."""

import json
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from odqa.errors import OdqaError
from odqa.io.squad import read_qa_examples
from odqa.reader import Reader
from odqa.training.reader import ReaderTrainingConfig, evaluate_reader, train_reader

WINDOWS = {"max_length": 192, "stride": 32, "max_question_tokens": 32, "postprocess": "none"}


@pytest.fixture(scope="module")
def trained_reader(tmp_path_factory, tiny_encoder, korquad_small):
    out = tmp_path_factory.mktemp("run") / "reader"
    config = ReaderTrainingConfig(
        model=str(tiny_encoder),
        train=[str(korquad_small)],
        out=str(out),
        epochs=14,
        lr=3e-3,
        batch_size=8,
        warmup_ratio=0.0,
        metric="korquad",
        reader=WINDOWS,
    )
    state = train_reader(config, quiet=True, resume=False)
    return out, state


def test_tiny_model_overfits_its_training_questions(trained_reader, korquad_small):
    out, state = trained_reader
    assert state["finished"] and state["history"][-1]["loss"] < state["history"][0]["loss"] / 4
    reader = Reader.load(out)
    scores = evaluate_reader(reader, read_qa_examples(korquad_small), "korquad")
    assert scores["exact_match"] >= 80 and scores["f1"] >= 90
    saved = json.loads((out / "odqa_reader.json").read_text(encoding="utf-8"))
    assert saved["reader"]["max_length"] == 192 and saved["data"]["train"][0]["sha256"]
    assert {"torch", "transformers"} <= set(saved["versions"]) and (out / "model.safetensors").exists()


def test_save_load_gives_identical_predictions(trained_reader, korquad_small, tmp_path):
    out, _ = trained_reader
    examples = read_qa_examples(korquad_small)[:8]
    questions, contexts = [e.question for e in examples], [[e.context, "관계없는 문장이다."] for e in examples]
    first = Reader.load(out).read(questions, contexts)
    reader = Reader.load(out)
    reader.save(tmp_path)
    second = Reader.load(tmp_path).read(questions, contexts)
    assert [r.nbest for r in first] == [r.nbest for r in second]
    for result, context in zip(first, contexts):
        for span in result.nbest:
            assert context[span.context_index][span.start : span.end] == span.text


def test_a_reader_reads_in_bf16(trained_reader, korquad_small, tmp_path):
    out, _ = trained_reader
    examples = read_qa_examples(korquad_small)[:8]
    questions, contexts = [e.question for e in examples], [[e.context] for e in examples]
    full = Reader.load(out).read(questions, contexts)
    reader = Reader.load(out, precision="bf16")
    halved = reader.read(questions, contexts)
    assert next(reader.model.parameters()).dtype == torch.bfloat16
    # the overfitted answers survive the rounding; the scores move a little
    assert [r.text for r in halved] == [r.text for r in full]
    assert [r.answer.score for r in halved] != [r.answer.score for r in full]
    # the rounding is one way: neither reading nor saving in fp32 again
    reader.config = reader.config.updated(precision="fp32")
    with pytest.raises(OdqaError, match="load it again"):
        reader.read(questions, contexts)
    with pytest.raises(OdqaError, match="rounded to bf16"):
        reader.save(tmp_path)


def test_logits_and_prob_modes_both_decode(trained_reader, korquad_small):
    out, _ = trained_reader
    examples = read_qa_examples(korquad_small)[:4]
    for mode in ("logits", "prob"):
        results = Reader.load(out, mode=mode).read([e.question for e in examples], [[e.context] for e in examples])
        assert all(r.answer is not None and r.nbest[0].score >= r.nbest[-1].score for r in results)


def test_resume_continues_from_the_last_checkpoint(tiny_encoder, korquad_small, tmp_path):
    common = dict(
        model=str(tiny_encoder),
        train=[str(korquad_small)],
        out=str(tmp_path / "run"),
        batch_size=8,
        save_steps=2,
        reader=WINDOWS,
    )
    state = train_reader(ReaderTrainingConfig(max_steps=2, **common), quiet=True)
    assert state["step"] == 2 and (tmp_path / "run" / "checkpoint-last" / "trainer_state.json").exists()
    state = train_reader(ReaderTrainingConfig(max_steps=5, **common), quiet=True)
    assert state["step"] == 5 and len(state["history"]) == 2
    # a checkpoint made before an option existed resumes: the missing option counts as its default
    state_file = tmp_path / "run" / "checkpoint-last" / "trainer_state.json"
    saved = json.loads(state_file.read_text(encoding="utf-8"))
    for option in ("head", "head_options"):
        del saved["run"]["settings"][option]
    state_file.write_text(json.dumps(saved), encoding="utf-8")
    assert train_reader(ReaderTrainingConfig(max_steps=6, **common), quiet=True)["step"] == 6
    # a checkpoint of other settings is never silently continued (nor silently taken as done)
    from odqa.errors import OdqaError

    with pytest.raises(OdqaError, match=r"other settings or data \(changed: lr\).*--fresh"):
        train_reader(ReaderTrainingConfig(max_steps=5, lr=1e-3, **common), quiet=True)
    assert train_reader(ReaderTrainingConfig(max_steps=2, lr=1e-3, **common), quiet=True, resume=False)["step"] == 2


def test_a_crash_keeps_the_last_good_checkpoint(tiny_encoder, korquad_small, tmp_path, monkeypatch, capsys):
    import itertools

    from odqa.progress import PlainProgress
    from odqa.training import loop

    config = ReaderTrainingConfig(
        model=str(tiny_encoder),
        train=[str(korquad_small)],
        out=str(tmp_path / "run"),
        batch_size=4,
        save_steps=2,
        max_steps=6,
        reader=WINDOWS,
    )
    calls = {"n": 0}
    real_train = loop.train

    def crashing_train(model, lengths, collate, *args, **kwargs):
        def collate_then_crash(indices):
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt
            return collate(indices)

        return real_train(model, lengths, collate_then_crash, *args, **kwargs)

    monkeypatch.setattr("odqa.training.task.train", crashing_train)
    with pytest.raises(KeyboardInterrupt):
        train_reader(config, quiet=True)
    saved = json.loads((tmp_path / "run" / "checkpoint-last" / "trainer_state.json").read_text())
    assert saved["step"] == 2 and saved["segment"]["items"] == 8 and saved["segment"]["seconds"] > 0
    monkeypatch.undo()
    monkeypatch.setenv("ODQA_PROGRESS_SECONDS", "0")  # a progress line at every step (output is not a terminal)
    clock = itertools.count()  # one second between lines
    monkeypatch.setattr(PlainProgress, "clock", staticmethod(lambda: float(next(clock))))
    state = train_reader(config)
    assert state["step"] == 6 and "segment" not in state
    # its rate counts what this run trained (4 windows a step), not the 8 before the crash too
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("training: step")]
    assert lines[0].startswith("training: step 3/6") and ", 4.0 items/s," in lines[0]
    # the time and windows trained before the crash are counted in the run's record, not lost
    assert [record["items"] for record in state["history"]] == [24]
    assert state["history"][0]["seconds"] > saved["segment"]["seconds"]


def test_bad_model_folders_are_named(tmp_path, tiny_encoder):
    with pytest.raises(OdqaError, match="model folder not found"):
        Reader.load(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(OdqaError, match="no config.json"):
        Reader.load(empty)
    (empty / "config.json").write_text("{}")
    (empty / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(OdqaError, match="convert it to safetensors"):
        Reader.load(empty)
    no_tokenizer = tmp_path / "no-tokenizer"
    no_tokenizer.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tokenizer / name).write_bytes((tiny_encoder / name).read_bytes())
    with pytest.raises(OdqaError, match="no tokenizer files"):
        Reader.load(no_tokenizer)
    # an encoder whose question-answering head was never trained is not a reader
    from transformers import BertModel

    encoder = tmp_path / "encoder"
    BertModel.from_pretrained(tiny_encoder).save_pretrained(encoder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (encoder / name).write_bytes((tiny_encoder / name).read_bytes())
    with pytest.raises(OdqaError, match="no trained question-answering head"):
        Reader.load(encoder)


def test_negative_window_sampling_keeps_every_answer_window(tiny_encoder, korquad_small):
    from odqa.models.tokenizer import load_tokenizer
    from odqa.reader.features import WindowConfig, build_windows
    from odqa.training.reader import sample_negative_windows

    examples = read_qa_examples(korquad_small)
    windows = build_windows(
        load_tokenizer(tiny_encoder),
        [e.question for e in examples],
        [e.context for e in examples],
        WindowConfig(64, 16, 16),
        answers=[(e.answers[0].start, e.answers[0].end) for e in examples],
    )
    positive, negative = int((windows.start_positions != 0).sum()), int((windows.start_positions == 0).sum())
    assert negative > 10
    kept = sample_negative_windows(windows, 0.25, seed=1)
    assert int((kept.start_positions != 0).sum()) == positive
    assert int((kept.start_positions == 0).sum()) == round(0.25 * negative)
    assert len(kept.input_ids) == len(kept.offsets) == len(kept.pair) == len(kept)
    assert sample_negative_windows(windows, None, seed=1) is windows
    again = sample_negative_windows(windows, 0.25, seed=1)
    assert [a.tolist() for a in again.input_ids] == [a.tolist() for a in kept.input_ids]  # seeded


def test_frozen_embeddings_stay_as_they_were(tiny_encoder, korquad_small, tmp_path, capsys, monkeypatch):
    from safetensors.torch import load_file

    monkeypatch.setenv("ODQA_PROGRESS_SECONDS", "0")  # a plain progress line at every step (output is not a terminal)
    config = ReaderTrainingConfig(
        model=str(tiny_encoder),
        train=[str(korquad_small)],
        out=str(tmp_path / "frozen"),
        max_steps=3,
        lr=1e-2,
        batch_size=8,
        freeze_embeddings=True,
        reader=WINDOWS,
    )
    train_reader(config, resume=False)
    before, after = (
        load_file(str(tiny_encoder / "model.safetensors")),
        load_file(str(tmp_path / "frozen/model.safetensors")),
    )
    word = next(k for k in before if k.endswith("word_embeddings.weight"))
    assert torch.equal(before[word], after[next(k for k in after if k.endswith("word_embeddings.weight"))])
    layer = next(k for k in before if k.endswith("attention.self.query.weight"))
    assert not torch.equal(before[layer], after[layer])  # the rest trains
    assert "training: step 3/3" in capsys.readouterr().err


def test_frozen_lower_layers_stay_as_they_were(tiny_encoder, korquad_small, tmp_path):
    """freeze_layers=1 on a 2-layer encoder: every embedding and the first layer stay, the second
    layer and the head train; more layers than the encoder has is refused by name."""
    from safetensors.torch import load_file

    def config(layers: int, out: str) -> ReaderTrainingConfig:
        return ReaderTrainingConfig(
            model=str(tiny_encoder),
            train=[str(korquad_small)],
            out=str(tmp_path / out),
            max_steps=3,
            lr=1e-2,
            batch_size=8,
            freeze_layers=layers,
            reader=WINDOWS,
        )

    train_reader(config(1, "lower"), resume=False)
    before, after = (
        load_file(str(tiny_encoder / "model.safetensors")),
        load_file(str(tmp_path / "lower/model.safetensors")),
    )
    after = {k.removeprefix("bert."): v for k, v in after.items()}
    before = {k.removeprefix("bert."): v for k, v in before.items()}
    same = {k for k in before if k in after and torch.equal(before[k], after[k])}
    assert {k for k in before if k.startswith(("embeddings.", "encoder.layer.0."))} <= same
    assert not any(k.startswith("encoder.layer.1.") for k in same)
    with pytest.raises(OdqaError, match="freeze_layers is 3 but the encoder has 2 layers"):
        train_reader(config(3, "too-many"), resume=False)
    with pytest.raises(OdqaError, match="freeze_layers: Input should be greater than or equal to 0"):
        ReaderTrainingConfig.from_dict(config(0, "negative").to_dict() | {"freeze_layers": -1})


def test_mixed_precision_is_checked_and_bf16_trains_on_a_cpu(tiny_encoder, korquad_small, tmp_path, monkeypatch):
    """bf16 autocast trains on a CPU too (fast where it has AVX512-BF16 or AMX), even after an fp32
    training in the same process; the saved weights stay fp32. fp16 on a CPU would silently be fp32.
    Under bf16 on a CPU the steps run on eager attention, and the fused kernel comes back after."""
    from safetensors.torch import load_file
    from transformers import PreTrainedModel

    from odqa.training.loop import resolve_precision

    switches = []
    switch = PreTrainedModel.set_attn_implementation
    monkeypatch.setattr(
        PreTrainedModel, "set_attn_implementation", lambda self, name: switches.append(name) or switch(self, name)
    )

    with pytest.raises(OdqaError, match="unknown mixed precision 'fp8'; choose from auto, no, fp16, bf16"):
        resolve_precision("fp8")
    if not torch.cuda.is_available():
        assert resolve_precision("auto") == "no"
        with pytest.raises(OdqaError, match="fp16 needs a GPU"):
            resolve_precision("fp16")
    for precision in ("no", "bf16"):
        config = ReaderTrainingConfig(
            model=str(tiny_encoder),
            train=[str(korquad_small)],
            out=str(tmp_path / precision),
            max_steps=2,
            batch_size=8,
            mixed_precision=precision,
            reader=WINDOWS,
        )
        state = train_reader(config, resume=False)
        assert state["step"] == 2
        on_cpu = not torch.cuda.is_available()
        assert switches == (["eager", "sdpa"] if precision == "bf16" and on_cpu else [])
    weights = load_file(str(tmp_path / "bf16/model.safetensors"))
    assert {t.dtype for t in weights.values()} == {torch.float32}


def test_a_missing_folder_under_an_existing_one_is_refused_at_once(tmp_path, monkeypatch):
    """'runs/reader-1' looks like a hub id; when runs/ is a folder here it is a path that does not exist."""
    from odqa.models.loading import check_model_dir

    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(OdqaError, match="model folder not found: runs/reader-1"):
        check_model_dir("runs/reader-1")
    check_model_dir("klue/roberta-large")  # no klue/ here: a hub id, passed through


@pytest.fixture
def hub(monkeypatch):
    """The Hugging Face Hub as `check_hub_model` sees it, with no network: nothing cached, and
    `hub.answer` raised by (or `None`: returned from) every model lookup, which are counted."""
    import huggingface_hub

    from odqa.models.tokenizer import check_hub_model

    state = SimpleNamespace(answer=None, asked=[], cached=None)

    def model_info(name, timeout):
        state.asked.append((name, timeout))
        if state.answer is not None:
            raise state.answer

    monkeypatch.setattr(huggingface_hub, "model_info", model_info)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda name, file: state.cached)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    check_hub_model.cache_clear()
    yield state
    check_hub_model.cache_clear()


def test_a_model_name_the_hub_cannot_confirm_is_refused_at_once(hub, monkeypatch):
    """'runs/reader-1' with no runs/ here has a hub id's shape: one quick question to the hub decides,
    instead of a minute of transformers' retries ending in a hub error."""
    from huggingface_hub.errors import RepositoryNotFoundError

    from odqa.models.loading import load_encoder
    from odqa.models.tokenizer import check_hub_model, load_tokenizer

    hub.answer = ConnectionError("Name or service not known")
    with pytest.raises(OdqaError, match="runs/reader-1: no such folder here, and the Hugging Face Hub cannot be"):
        load_tokenizer("runs/reader-1")
    with pytest.raises(OdqaError, match="cannot be reached"):
        load_encoder("runs/reader-1")
    assert [timeout for _, timeout in hub.asked] == [10, 10]  # asked with a short timeout, not retried

    missing = RepositoryNotFoundError.__new__(RepositoryNotFoundError)  # what the hub answers an unknown id
    Exception.__init__(missing, "404")
    hub.answer = missing
    with pytest.raises(OdqaError, match="someone/no-such-model: no such folder here, and no such model on the"):
        check_hub_model("someone/no-such-model")

    hub.answer = None  # the hub has it: passed on to transformers, and asked once
    check_hub_model("klue/roberta-large")
    check_hub_model("klue/roberta-large")
    assert hub.asked[-1] == ("klue/roberta-large", 10) and len(hub.asked) == 4

    hub.cached = "/cache/models--klue--bert-base/config.json"  # in the local hub cache: nothing asked
    check_hub_model("klue/bert-base")
    assert len(hub.asked) == 4

    hub.cached = None
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OdqaError, match="other/model: no such folder here, and HF_HUB_OFFLINE is set"):
        check_hub_model("other/model")
    assert len(hub.asked) == 4


def test_gradient_accumulation_counts_optimizer_steps(tiny_encoder, korquad_small, tmp_path):
    """grad_accum=2: each optimizer step takes two batches, so 2 steps read 4 batches of 4."""
    config = ReaderTrainingConfig(
        model=str(tiny_encoder),
        train=[str(korquad_small)],
        out=str(tmp_path / "accum"),
        batch_size=4,
        grad_accum=2,
        max_steps=2,
        group_by_length=False,
        reader=WINDOWS,
    )
    state = train_reader(config, quiet=True, resume=False)
    assert state["step"] == 2 and state["finished"]
    windows = state["history"][-1]["examples_per_s"] * state["history"][-1]["seconds"]
    assert windows == pytest.approx(16, abs=0.5)


def test_max_minutes_stops_after_a_checkpoint_and_resumes(tiny_encoder, korquad_small, tmp_path):
    common = dict(
        model=str(tiny_encoder), train=[str(korquad_small)], out=str(tmp_path / "timed"), batch_size=4, reader=WINDOWS
    )
    state = train_reader(ReaderTrainingConfig(max_steps=6, max_minutes=1e-9, **common), quiet=True, resume=False)
    assert state["step"] == 1 and not state["finished"]  # out of time after the first step
    assert (tmp_path / "timed" / "checkpoint-last" / "trainer_state.json").exists()
    state = train_reader(ReaderTrainingConfig(max_steps=6, max_minutes=1e-9, **common), quiet=True)
    assert state["step"] == 2  # the rerun continued from the checkpoint, one more step


def test_bf16_training_on_a_cpu_runs_eager_attention_which_computes_what_the_fused_kernel_does(tiny_encoder):
    """`TrainingAttention` (bf16 on a CPU): while training, the encoder runs transformers' eager
    attention, and `restore` gives it back PyTorch's fused kernel; both give the same outputs,
    padding included. Disabled (fp32, or a GPU), it leaves the encoder alone."""
    from transformers import AutoModelForQuestionAnswering

    from odqa.training.attention import TrainingAttention

    model = AutoModelForQuestionAnswering.from_pretrained(str(tiny_encoder)).eval()
    assert model.config._attn_implementation == "sdpa"
    ids = torch.randint(5, 100, (2, 24))
    mask = torch.ones_like(ids)
    mask[0, 16:] = 0
    with torch.no_grad():
        fused = model(input_ids=ids, attention_mask=mask).start_logits

    attention = TrainingAttention(model, enabled=True)
    attention.train()
    assert model.config._attn_implementation == "eager"
    with torch.no_grad():
        eager = model(input_ids=ids, attention_mask=mask).start_logits
    torch.testing.assert_close(eager, fused, rtol=1e-4, atol=1e-5)
    attention.restore()
    assert model.config._attn_implementation == "sdpa"

    TrainingAttention(model, enabled=False).train()
    assert model.config._attn_implementation == "sdpa"
