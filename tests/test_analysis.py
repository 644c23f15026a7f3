"""Analyzer outputs on crafted Korean sentences, and analyzer configs as users write them."""

import pytest

from odqa import OdqaError
from odqa.analysis import analyzer_from_dict, parse_analyzer_spec
from odqa.analysis.base import MecabConfig, MultiConfig, NgramConfig, WhitespaceConfig

pytest.importorskip("mecab")


def test_mecab_drops_particles_and_endings_keeps_single_characters():
    tokens = MecabConfig(compound="none").build()("세종은 한글을 만들었다. 그는 왕이다.")
    assert "세종" in tokens and "한글" in tokens and "왕" in tokens  # '왕' is one character: kept
    assert "은" not in tokens and "을" not in tokens and "." not in tokens


def test_mecab_compound_modes():
    text = "대한민국의 국립중앙박물관"
    none = MecabConfig(compound="none").build()(text)
    mixed = MecabConfig(compound="mixed").build()(text)
    discard = MecabConfig(compound="discard").build()(text)
    assert "대한민국" in none and "대한" not in none
    assert {"대한민국", "대한", "민국", "박물관", "박물", "관"} <= set(mixed)
    assert "대한민국" not in discard and {"대한", "민국"} <= set(discard)


def test_mecab_lowercases_latin_and_keeps_numbers():
    tokens = MecabConfig().build()("WHO는 2019년에 발표했다")
    assert "who" in tokens and "2019" in tokens and "년" in tokens


def test_mecab_lemmas_add_base_form():
    tokens = MecabConfig(lemmas=True).build()("학교에 갔다")
    assert "갔" in tokens and "가" in tokens


def test_ngram_is_cjk_bigrams_and_keeps_short_runs():
    tokens = NgramConfig(n=2).build()("대한민국 수도 왕 WHO 2019년")
    assert tokens == ["대한", "한민", "민국", "수도", "왕", "who", "2019", "년"]


def test_whitespace_keeps_single_characters():
    assert WhitespaceConfig().build()("A b 왕, 서울!") == ["a", "b", "왕", "서울"]


def test_shingles_add_token_pairs():
    assert WhitespaceConfig(shingles=True).build()("a b c") == ["a", "b", "c", "a_b", "b_c"]


def test_multi_keeps_parts_apart():
    tokens = MultiConfig(parts=(WhitespaceConfig(), NgramConfig(n=2))).build()("서울 수도")
    assert tokens == ["서울", "수도", "1|서울", "1|수도"]


def test_kiwi_analyzer():
    pytest.importorskip("kiwipiepy")
    tokens = analyzer_from_dict({"name": "kiwi"}).build()("세종은 한글을 만들었다.")
    assert "세종" in tokens and "한글" in tokens and "은" not in tokens


def test_configs_round_trip_and_specs_parse():
    config = parse_analyzer_spec("mecab:compound=none,shingles=true")
    assert config == MecabConfig(compound="none", shingles=True)
    assert analyzer_from_dict(config.model_dump(mode="json")) == config
    assert parse_analyzer_spec('{"name": "ngram", "n": 3}') == NgramConfig(n=3)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("nori", "unknown analyzer 'nori'"),
        ("mecab:compound=sideways", "bad analyzer options for 'mecab'"),
        ("ngram:n=0", "bad analyzer options for 'ngram'"),
        ("mecab:nonsense", "nonsense"),
    ],
)
def test_bad_analyzer_specs_are_named(spec, message):
    with pytest.raises(OdqaError, match=message):
        parse_analyzer_spec(spec)


def test_question_words_are_dropped_from_queries_only():
    config = MecabConfig()
    passage = config.build()("누구의 무엇인가")
    query = config.build(query=True)("훈민정음을 만든 사람은 누구인가? 언제 어디서?")
    assert "누구" in passage and "무엇" in passage
    assert "누구" not in query and "언제" not in query and "어디" not in query and "훈민정음" in query
    assert config.build(query=True)("누구?") == ["누구"]  # nothing else left: keep it rather than search nothing
