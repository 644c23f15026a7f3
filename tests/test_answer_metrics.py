"""EM/F1 under the official SQuAD v1.1, KorQuAD 1.0 and KLUE-MRC rules, one case per normalization step."""

import pytest

from odqa.errors import OdqaError
from odqa.metrics import score_predictions
from odqa.metrics.answers import klue_rouge_w, korquad_f1, normalize_korquad, normalize_squad, squad_f1


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Eiffel Tower", "eiffel tower"),  # lower case + article removed
        ("an apple, a pear", "apple pear"),  # articles anywhere, punctuation removed
        ("  New   York ", "new york"),  # whitespace collapsed
        ("U.S.", "us"),  # ASCII punctuation dropped, not replaced by a space
        ("theatre", "theatre"),  # 'the' only as a word
        ("«quoted»", "«quoted»"),  # non-ASCII punctuation is kept by the SQuAD rules
    ],
)
def test_squad_normalization(text, expected):
    assert normalize_squad(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("《삼국사기》", "삼국사기"),  # book brackets become spaces, then stripped
        ("'세종'", "세종"),  # quotes
        ("〈훈민정음〉 해례", "훈민정음 해례"),
        ("서울(수도)", "서울 수도"),  # parentheses become a space
        ("‘한글’", "한글"),
        ("The Beatles", "the beatles"),  # lower case, but no article removal
        ("1,000명", "1000명"),  # ASCII punctuation removed
        ("「금강경」", "「금강경」"),  # not in the official list: kept
    ],
)
def test_korquad_normalization(text, expected):
    assert normalize_korquad(text) == expected


def test_squad_f1_is_token_overlap():
    assert squad_f1("the Eiffel Tower in Paris", "Eiffel Tower") == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))
    assert squad_f1("Paris", "London") == 0.0


def test_korquad_f1_counts_characters_ignoring_spaces():
    # pred "세종대왕" vs gold "세종": 2 common chars, precision 2/4, recall 2/2
    assert korquad_f1("세종대왕", "세종") == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert korquad_f1("세종 대왕", "세종대왕") == 1.0  # spaces ignored
    assert korquad_f1("《세종》", "세종") == 1.0


def test_klue_rouge_w_uses_longest_contiguous_run():
    # "서울특별시" vs "특별시청": longest common run "특별시" (3): p 3/5, r 3/4
    assert klue_rouge_w("서울특별시", "특별시청") == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    # the same characters out of order share only runs of 1
    assert klue_rouge_w("가나다", "다나가") == pytest.approx(1 / 3)


def test_score_predictions_takes_max_over_gold_and_names_missing():
    gold = {"a": ["세종", "세종대왕"], "b": ["서울"]}
    result = score_predictions({"a": "세종대왕", "b": "부산"}, gold, "korquad")
    assert result["exact_match"] == 50.0 and result["f1"] == 50.0
    assert [d.exact_match for d in result["per_question"]] == [1.0, 0.0]
    with pytest.raises(OdqaError, match="1 of 2 questions have no prediction: b"):
        score_predictions({"a": "세종"}, gold, "squad")
    assert score_predictions({"a": "세종"}, gold, "squad", allow_missing=True)["exact_match"] == 50.0
    with pytest.raises(OdqaError, match="unknown answer metric"):
        score_predictions({}, {}, "bleu")
