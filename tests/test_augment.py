"""Masking augmentations of training windows: seeded, and never touching the question, the special
tokens or the answer."""

import numpy as np
import pytest

from odqa.errors import OdqaError
from odqa.reader.augment import AugmentConfig, augment_windows, maskable
from odqa.reader.features import WindowConfig, build_windows

CONTEXT = (
    "이순신은 조선 중기의 무신이다. 임진왜란 때 한산도 앞바다에서 학익진을 펼쳐 왜군을 크게 물리쳤다. "
    "그는 전라좌도 수군절도사로서 거북선을 만들었고, 노량 해전에서 전사하였다."
)
QUESTIONS = [("이순신이 학익진을 펼친 곳은?", "한산도 앞바다"), ("이순신이 전사한 해전은?", "노량 해전")]


@pytest.fixture
def windows(klue_tokenizer):
    answers = [(CONTEXT.index(a), CONTEXT.index(a) + len(a)) for _, a in QUESTIONS]
    config = WindowConfig(max_length=48, stride=16, max_question_tokens=16)
    return build_windows(klue_tokenizer, [q for q, _ in QUESTIONS], [CONTEXT] * 2, config, answers=answers)


@pytest.mark.parametrize("name", ["mask", "span-mask"])
def test_masking_keeps_the_question_and_the_answer(windows, klue_tokenizer, name):
    mask_id = klue_tokenizer.mask_token_id
    augmented = augment_windows(windows, [AugmentConfig(name=name, share=1.0, rate=0.5)], mask_id, seed=1)
    n = len(windows)
    assert len(augmented) == 2 * n and (augmented.pair[n:] == windows.pair).all()
    assert (augmented.start_positions[n:] == windows.start_positions).all()
    answered = 0
    for w in range(n):
        original, copy = windows.input_ids[w], augmented.input_ids[n + w]
        changed = np.flatnonzero(original != copy)
        assert set(changed) <= set(maskable(windows, w)), "only context tokens outside the answer change"
        assert (copy[changed] == mask_id).all()
        assert len(changed) >= 0.3 * len(maskable(windows, w))
        s, e = windows.start_positions[w], windows.end_positions[w]
        if s > 0:  # the answer still reads the same through the offsets
            answered += 1
            lo, hi = windows.offsets[w][s][0], windows.offsets[w][e][1]
            assert CONTEXT[lo:hi] in [a for _, a in QUESTIONS]
            assert (copy[s : e + 1] == original[s : e + 1]).all()
    assert answered >= 1
    assert (augmented.input_ids[0] == windows.input_ids[0]).all()  # the originals come first, untouched


def test_augmentation_is_reproducible_by_seed(windows, klue_tokenizer):
    mask_id = klue_tokenizer.mask_token_id
    configs = [AugmentConfig(name="mask", share=0.5, rate=0.3), AugmentConfig(name="span-mask", share=0.5)]
    first = augment_windows(windows, configs, mask_id, seed=7)
    again = augment_windows(windows, configs, mask_id, seed=7)
    other = augment_windows(windows, configs, mask_id, seed=8)
    assert len(first) == len(windows) + 2 * round(0.5 * len(windows))
    assert all((a == b).all() for a, b in zip(first.input_ids, again.input_ids))
    assert any(len(a) != len(b) or (a != b).any() for a, b in zip(first.input_ids, other.input_ids))


def test_bad_augmentations_are_named(windows):
    with pytest.raises(OdqaError, match="share must be between 0 and 1, got 1.5"):
        augment_windows(windows, [AugmentConfig(name="mask", share=1.5)], 4, seed=0)
    with pytest.raises(OdqaError, match="unknown augmentation 'shuffle'; choose one of mask, span-mask"):
        augment_windows(windows, [AugmentConfig(name="shuffle")], 4, seed=0)
    with pytest.raises(OdqaError, match="need a tokenizer with a mask token"):
        augment_windows(windows, [AugmentConfig(name="mask")], None, seed=0)
    assert augment_windows(windows, [], None, seed=0) is windows


def test_train_reader_trains_on_the_masked_copies(tmp_path, tiny_encoder, korean_qa_file):
    pytest.importorskip("accelerate")
    import json

    from odqa.training.reader import ReaderTrainingConfig, train_reader

    def train(out, augment):
        config = ReaderTrainingConfig(
            model=str(tiny_encoder),
            train=[str(korean_qa_file)],
            out=str(tmp_path / out),
            max_steps=1,
            batch_size=4,
            augment=augment,
            reader={"max_length": 128, "stride": 32, "max_question_tokens": 32},
        )
        train_reader(config, quiet=True, resume=False)
        return json.loads((tmp_path / out / "odqa_reader.json").read_text(encoding="utf-8"))

    plain = train("plain", [])["counts"]["train_windows"]
    saved = train("masked", [{"name": "span-mask", "share": 1.0, "rate": 0.2}])
    assert saved["counts"]["train_windows"] == 2 * plain
    assert saved["training"]["augment"] == [{"name": "span-mask", "share": 1.0, "rate": 0.2}]
