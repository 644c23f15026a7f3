"""Several readers as one: readers on different tokenizers (KLUE's and multilingual BERT's
WordPiece) read the same passages and vote by character offsets, in the pipeline and the CLI."""

import json
import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("accelerate")

from conftest import SHARED, tiny_bert_config
from odqa.errors import OdqaError

MBERT_TOKENIZER = SHARED / "tokenizers" / "bert-base-multilingual-cased"


@pytest.fixture(scope="module")
def mbert_reader(tmp_path_factory, korean_qa_file):
    """A tiny reader on multilingual BERT's tokenizer, overfitted to the same questions as
    `korean_reader` (which uses KLUE's tokenizer)."""
    import torch
    from transformers import BertForQuestionAnswering

    from odqa.models.tokenizer import load_tokenizer, save_tokenizer
    from odqa.training.reader import ReaderTrainingConfig, train_reader

    if not MBERT_TOKENIZER.exists():
        pytest.skip(f"shared tokenizer not found at {MBERT_TOKENIZER}")
    tokenizer = load_tokenizer(MBERT_TOKENIZER)
    torch.manual_seed(1)
    encoder = tmp_path_factory.mktemp("mbert-encoder")
    BertForQuestionAnswering(tiny_bert_config(tokenizer)).save_pretrained(encoder)
    save_tokenizer(tokenizer, encoder)
    out = tmp_path_factory.mktemp("mbert-reader") / "reader"
    config = ReaderTrainingConfig(
        model=str(encoder),
        train=[str(korean_qa_file)],
        out=str(out),
        epochs=60,
        lr=3e-3,
        batch_size=8,
        warmup_ratio=0.0,
        save_steps=10**6,
        reader={"max_length": 128, "stride": 32, "max_question_tokens": 32},
    )
    train_reader(config, quiet=True, resume=False)
    return out


def questions_and_contexts(korean_qa_file):
    from odqa.io.squad import read_qa_examples

    examples = read_qa_examples(korean_qa_file)
    # each question against its own context and another one, so spans of two passages compete
    contexts = [[e.context, examples[(i + 1) % len(examples)].context] for i, e in enumerate(examples)]
    return examples, [e.question for e in examples], contexts


@pytest.mark.slow  # trains a second tiny reader (~20 s)
def test_readers_on_two_tokenizers_vote_by_characters(korean_reader, mbert_reader, korean_qa_file):
    from odqa.ensemble import EnsembleConfig, combine_question
    from odqa.reader import Reader
    from odqa.reader.ensemble import EnsembleReader

    examples, questions, contexts = questions_and_contexts(korean_qa_file)
    klue, mbert = Reader.load(korean_reader), Reader.load(mbert_reader)
    assert klue.tokenizer.vocab_size != mbert.tokenizer.vocab_size

    ensemble = EnsembleReader([klue, mbert], weights=[2, 1])
    voted, _ = ensemble.read_candidates(questions, contexts)
    each = [reader.read_candidates(questions, contexts) for reader in (klue, mbert)]
    for qi in range(len(questions)):
        expected = combine_question(
            [[s.to_dict() for s in spans[qi]] for spans, _ in each], EnsembleConfig(weights=(2, 1), n_best=10**9)
        )
        assert [(s.context_index, s.start, s.end) for s in voted[qi]] == [
            (c["context"], c["start"], c["end"]) for c in expected
        ]
        # a span both readers found, on different tokens, is one candidate with both probabilities
        both = [c for c in expected if c["votes"] == 2]
        assert both, questions[qi]

    answers = [r.text for r in ensemble.read(questions, contexts)]
    assert answers == [e.answers[0].text for e in examples]

    # a reader weighted 0 only abstains: the ensemble is the other reader, scores and all
    alone = klue.read(questions, contexts)
    muted = EnsembleReader([klue, mbert], weights=[1, 0]).read(questions, contexts)
    for a, b in zip(alone, muted):
        assert [(s.text, s.context_index, s.start) for s in a.nbest] == [
            (s.text, s.context_index, s.start) for s in b.nbest
        ]
        assert all(math.isclose(x.score, y.score, abs_tol=1e-5) for x, y in zip(a.nbest, b.nbest))


def test_an_ensemble_refuses_what_cannot_vote(korean_reader):
    from odqa.reader import Reader
    from odqa.reader.ensemble import EnsembleReader, load_readers

    reader = Reader.load(korean_reader)
    with pytest.raises(OdqaError, match="hard voting on answer texts works on n-best files"):
        EnsembleReader([reader, reader], method="hard")
    with pytest.raises(OdqaError, match="at least two readers"):
        EnsembleReader([reader])
    with pytest.raises(OdqaError, match="3 weights given for 2 readers"):
        EnsembleReader([reader, reader], weights=[1, 1, 1])
    with pytest.raises(OdqaError, match="mode must be prob"):
        load_readers([korean_reader, korean_reader], mode="logits")
    logits = Reader.load(korean_reader, mode="logits")
    with pytest.raises(OdqaError, match="reader 2 scores spans by logits"):
        EnsembleReader([reader, logits])


@pytest.mark.slow  # odqa processes, each importing torch
def test_ask_and_predict_take_several_readers(korean_docs_index, korean_reader, mbert_reader, tmp_path):
    from test_cli import odqa

    run = odqa(
        "ask",
        "--index",
        korean_docs_index,
        "--reader",
        korean_reader,
        "--reader",
        mbert_reader,
        "--reader-weights",
        "1,1",
        "--json",
        "훈민정음을 창제한 왕은?",
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["answer"]["text"] == "세종"

    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "a", "question": "대한민국의 수도는?"}, ensure_ascii=False) + "\n")
    out = tmp_path / "p"
    args = ["predict", "--index", korean_docs_index, "--reader", korean_reader, "--reader", mbert_reader]
    run = odqa(*args, "--questions", questions, "--out", out, "-q")
    assert run.returncode == 0, run.stderr
    assert json.loads((out / "predictions.json").read_text(encoding="utf-8")) == {"a": "서울특별시"}
    nbest = json.loads((out / "nbest_predictions.json").read_text(encoding="utf-8"))["a"]
    assert nbest[0]["text"] == "서울특별시" and nbest[0]["score"] <= 0  # a log probability, as with one reader

    bad = odqa("ask", "--index", korean_docs_index, "--reader", korean_reader, "--reader", mbert_reader,
               "--ensemble", "hard", "서울?")  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "odqa ensemble --method hard" in bad.stderr
