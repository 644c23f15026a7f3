"""Question generation with a generator the user gives: answer candidates are names and numbers
found by Kiwi, questions come from a sequence-to-sequence model (here a tiny random one), and the
result is SQuAD-format training data whose answers sit at their offsets."""

import json

import pytest

from odqa.errors import OdqaError


def test_answer_candidates_are_names_and_numbers():
    pytest.importorskip("kiwipiepy")
    from odqa.training.qgen import answer_candidates

    text = "세종은 조선의 제4대 왕이다. 1443년에 훈민정음을 창제하였다. 피타고라스 정리는 직각삼각형에 관한 정리이다."
    found = [text[s:e] for s, e in answer_candidates(text)]
    for expected in ("세종", "조선", "제4대", "1443년", "훈민정음", "피타고라스 정리"):
        assert expected in found, found
    assert "창제" not in found and "정리" not in found  # common nouns alone are not asked about


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory, klue_tokenizer):
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    from odqa.models.tokenizer import save_tokenizer

    torch.manual_seed(0)
    tok = klue_tokenizer
    config = BartConfig(
        vocab_size=len(tok),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=600,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id,
        decoder_start_token_id=tok.cls_token_id,
        forced_eos_token_id=None,
    )
    path = tmp_path_factory.mktemp("generator")
    BartForConditionalGeneration(config).save_pretrained(path)
    save_tokenizer(tok, path)
    return path


@pytest.mark.slow  # odqa processes, each importing torch
def test_generated_questions_are_training_data(tiny_generator, corpus_file, tmp_path):
    from odqa.io.squad import read_qa_examples
    from test_cli import odqa

    out = tmp_path / "generated.json"
    run = odqa("generate-questions", "--generator", tiny_generator, "--contexts", corpus_file, "--out", out,
               "--per-context", "2", "--num-beams", "2")  # fmt: skip
    assert run.returncode == 0, run.stderr
    examples = read_qa_examples(out, require_answers=True)  # what train-reader reads
    assert len(examples) >= 6 and all(e.question.strip() for e in examples)
    for e in examples:
        assert e.context[e.answers[0].start : e.answers[0].end] == e.answers[0].text
    again = tmp_path / "again.json"
    run = odqa("generate-questions", "--generator", tiny_generator, "--contexts", corpus_file, "--out", again,
               "--per-context", "2", "--num-beams", "2")  # fmt: skip
    assert json.loads(again.read_text()) == json.loads(out.read_text())  # seeded and greedy: the same file

    bad = odqa("generate-questions", "--generator", tiny_generator, "--contexts", corpus_file, "--out", tmp_path / "b",
               "--input-format", "{context}")  # fmt: skip
    assert bad.returncode == 2 and "must hold {answer} and {context}" in bad.stderr
    missing = odqa("generate-questions", "--generator", tmp_path / "nothing", "--contexts", corpus_file, "--out", out)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_generation_settings_are_checked():
    from odqa.training.qgen import GenerationConfig

    with pytest.raises(OdqaError, match="per_context"):
        GenerationConfig(per_context=0).check()
