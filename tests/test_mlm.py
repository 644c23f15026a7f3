"""Masked-LM pretraining: packing, masking, and an encoder a reader can be fine-tuned from."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from odqa.training.mlm import MlmConfig, mask_tokens, pack_sequences, pretrain_mlm


def test_packing_fills_rows_framed_by_special_tokens(klue_tokenizer):
    texts = ["세종은 조선의 제4대 왕이다."] * 20
    rows = pack_sequences(klue_tokenizer, texts, max_length=16)
    assert rows.shape[1] == 16 and len(rows) >= 5
    assert (rows[:, 0] == klue_tokenizer.cls_token_id).all() and (rows[:, -1] == klue_tokenizer.sep_token_id).all()
    assert klue_tokenizer.pad_token_id not in rows  # packed: no padding anywhere


def test_masking_follows_bert_and_spares_special_tokens(klue_tokenizer):
    rows = pack_sequences(klue_tokenizer, ["한강은 서울을 지나 황해로 흐르는 강이다."] * 200, max_length=64)
    inputs, labels = mask_tokens(rows, klue_tokenizer, 0.15, np.random.default_rng(0))
    chosen = labels != -100
    assert 0.12 < chosen.mean() < 0.18
    assert not chosen[:, 0].any() and not chosen[:, -1].any()
    masked = (inputs == klue_tokenizer.mask_token_id) & chosen
    assert 0.75 < masked.sum() / chosen.sum() < 0.85
    assert (inputs[~chosen] == rows[~chosen]).all()


def test_pretrain_then_fine_tune(tmp_path, corpus_file, klue_tokenizer):
    from transformers import AutoModelForQuestionAnswering

    config = MlmConfig(
        tokenizer=str(tmp_path / "missing"),
        corpus=[str(corpus_file)],
        out=str(tmp_path / "enc"),
        size="tiny",
        max_length=16,
        batch_size=4,
        max_steps=3,
    )
    from odqa.errors import OdqaError

    with pytest.raises(OdqaError, match="tokenizer folder not found"):
        pretrain_mlm(config, quiet=True)
    from conftest import KLUE_TOKENIZER

    config = config.model_copy(update={"tokenizer": str(KLUE_TOKENIZER)})
    state = pretrain_mlm(config, quiet=True)
    assert state["step"] == 3 and (tmp_path / "enc" / "model.safetensors").exists()
    model = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "enc")
    assert model.config.num_hidden_layers == 2
