"""Windows over (question, context) pairs: offsets map back to the exact answer text, labels,
tokenizers with and without token type ids, and the Hangul tokenizer guard."""

import pytest

pytest.importorskip("transformers")

from odqa.errors import OdqaError
from odqa.io.squad import locate_answer
from odqa.reader.features import WindowConfig, build_windows

SENTENCE = "세종은 조선의 제4대 왕이다. "
CONTEXT = SENTENCE * 6 + "세종은 훈민정음을 창제하였다. " + SENTENCE * 6


def test_windows_crossing_the_answer_map_back_to_it(klue_tokenizer):
    start = CONTEXT.index("훈민정음")
    answer = (start, start + len("훈민정음"))
    windows = build_windows(
        klue_tokenizer, ["누가 훈민정음을 만들었나?"], [CONTEXT], WindowConfig(40, 16, 16), answers=[answer]
    )
    assert len(windows) > 3  # the context needs several overlapping windows
    labelled = 0
    for w in range(len(windows)):
        offsets = windows.offsets[w]
        context_tokens = offsets[:, 0] >= 0
        covered = (offsets[context_tokens, 0].min(), offsets[context_tokens, 1].max())
        s, e = windows.start_positions[w], windows.end_positions[w]
        if covered[0] <= answer[0] and answer[1] <= covered[1]:
            assert CONTEXT[offsets[s, 0] : offsets[e, 1]] == "훈민정음"
            labelled += 1
        else:
            assert (s, e) == (0, 0)  # the window without the answer is labelled no-answer
        # every context token's offsets slice the context to the token's own text
        for token_id, (a, b) in zip(windows.input_ids[w], offsets):
            if a >= 0:
                assert klue_tokenizer.convert_ids_to_tokens(int(token_id)).removeprefix("##") == CONTEXT[a:b]
    assert labelled >= 2  # the answer sits in the overlap of two windows
    assert windows.token_type_ids is not None


def test_roberta_style_tokenizer_has_no_token_types(tmp_path):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    text = "The Eiffel Tower is in Paris. Paris is the capital of France. " * 20
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([text], vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(tmp_path))
    tokenizer = RobertaTokenizerFast(vocab=str(tmp_path / "vocab.json"), merges=str(tmp_path / "merges.txt"))
    context = "Paris is the capital of France. " * 8 + "The Eiffel Tower is in Paris."
    start = context.index("Eiffel Tower")
    windows = build_windows(
        tokenizer, ["Where is the Eiffel Tower?"], [context], WindowConfig(48, 8, 16), answers=[(start, start + 12)]
    )
    assert windows.token_type_ids is None
    hits = [w for w in range(len(windows)) if windows.start_positions[w] > 0]
    assert hits
    w = hits[0]
    s, e = windows.start_positions[w], windows.end_positions[w]
    assert context[windows.offsets[w][s, 0] : windows.offsets[w][e, 1]].strip() == "Eiffel Tower"


def test_long_questions_are_cut_and_bad_pairs_refused(klue_tokenizer):
    question = "세종은 " * 100 + "누구인가?"
    windows = build_windows(klue_tokenizer, [question], ["세종은 조선의 왕이다."], WindowConfig(64, 8, 16))
    assert windows.truncated_questions == [0] and len(windows.input_ids[0]) <= 64
    with pytest.raises(OdqaError, match="context of pair 0 .* is empty"):
        build_windows(klue_tokenizer, ["질문"], ["  "])
    with pytest.raises(OdqaError, match="question 0 is empty"):
        build_windows(klue_tokenizer, [""], ["문맥"])
    with pytest.raises(OdqaError, match="leaves .* context tokens"):
        WindowConfig(max_length=64, max_question_tokens=64).check()
    with pytest.raises(OdqaError, match="stride"):
        WindowConfig(max_length=128, stride=100, max_question_tokens=32).check()


def test_answer_offsets_are_repaired_or_refused():
    context = "조선의 왕 세종은 훈민정음을 창제하였다."
    right = context.index("세종")
    assert locate_answer(context, "세종", right).start == right
    assert locate_answer(context, "세종", right + 3).start == right  # off by a few characters
    assert locate_answer(context, " 세종 ", right - 1).start == right  # spaces around the text
    with pytest.raises(OdqaError, match="does not match its offset"):
        locate_answer(context, "태종", right)


def test_hangul_survives_a_tokenizer_round_trip(tmp_path, klue_tokenizer):
    """transformers 5 rebuilds a lower-casing BERT normalizer with accent stripping, which turns
    Hangul into [UNK]; load_tokenizer detects and repairs it, save_tokenizer keeps it repaired."""
    from transformers import AutoTokenizer, BertTokenizerFast

    from odqa.models.tokenizer import load_tokenizer, save_tokenizer, unk_share

    vocab = tmp_path / "vocab.txt"
    vocab.write_text(
        "\n".join(klue_tokenizer.convert_ids_to_tokens(list(range(len(klue_tokenizer))))), encoding="utf-8"
    )
    broken = BertTokenizerFast(vocab=str(vocab), do_lower_case=True)
    assert unk_share(broken) > 0.5  # the bug, reproduced
    broken.save_pretrained(tmp_path / "saved")
    assert unk_share(AutoTokenizer.from_pretrained(tmp_path / "saved")) > 0.5
    repaired = load_tokenizer(tmp_path / "saved")
    assert unk_share(repaired) == 0.0
    save_tokenizer(repaired, tmp_path / "fixed")
    assert unk_share(AutoTokenizer.from_pretrained(tmp_path / "fixed")) == 0.0
    assert unk_share(load_tokenizer(tmp_path / "fixed")) == 0.0


def test_slow_tokenizers_are_refused(monkeypatch, tmp_path):
    import transformers

    from odqa.models.tokenizer import load_tokenizer

    class Slow:
        is_fast = False

    (tmp_path / "tokenizer_config.json").write_text("{}")
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: Slow())
    with pytest.raises(OdqaError, match="slow .* tokenizer; odqa needs a fast one"):
        load_tokenizer(tmp_path)
