"""Passages: offsets always slice back to the text, overlap, titles, dedup keeps every source."""

import random

import pytest

from odqa import Document, OdqaError
from odqa.corpus import CorpusConfig, build_passages, clean_text, split_document


def random_document(rng: random.Random, i: int) -> Document:
    words = ["서울", "대한민국", "수도", "강", "a", "bc", "123", "역사는", "흐른다."]
    paragraphs = []
    for _ in range(rng.randint(1, 8)):
        paragraphs.append(" ".join(rng.choice(words) for _ in range(rng.randint(1, 120))))
    return Document(id=str(i), title=f"문서 {i}", text="\n".join(paragraphs))


@pytest.mark.parametrize("title", [False, True])
@pytest.mark.parametrize("target,overlap", [(100, 0), (200, 50), (500, 0), (60, 30)])
def test_offsets_slice_back_to_passage_text(title, target, overlap):
    rng = random.Random(target + overlap)
    documents = [random_document(rng, i) for i in range(60)]
    config = CorpusConfig(
        target_chars=target, max_chars=max(target * 2, 100), overlap_chars=overlap, title=title, dedup=False
    )
    cleaned = {d.id: clean_text(d.text, config) for d in documents}
    passages, stats = build_passages(documents, config)
    assert stats["passages"] == len(passages) and stats["documents"] == 60
    for p in passages:
        for s in p.sources:
            assert cleaned[s.doc_id][s.start : s.end] == p.body
        assert p.text == (f"{p.title}\n" if title else "") + p.body
        assert len(p.body) <= config.max_chars


def test_every_character_is_covered_in_order():
    text = "\n".join(["가" * 50] * 7)
    spans = split_document(text, CorpusConfig(target_chars=120, max_chars=200))
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (s1, e1), (s2, _) in zip(spans, spans[1:]):
        assert s2 == e1 + 1  # no overlap asked: next passage starts after the newline


def test_overlap_repeats_trailing_segments():
    text = "\n".join(f"문단{i} " + "나" * 40 for i in range(6))
    spans = split_document(text, CorpusConfig(target_chars=100, overlap_chars=50))
    for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
        assert s2 < e1 and e2 > e1


def test_long_paragraph_splits_on_sentences():
    sentence = "이것은 꽤 긴 문장이다. "
    text = (sentence * 40).strip()
    spans = split_document(text, CorpusConfig(target_chars=100, max_chars=150))
    assert len(spans) > 3
    assert all(text[s:e].endswith(".") for s, e in spans)


def test_dedup_keeps_every_source_id():
    docs = [
        Document("a", "같은 본문이다.", "제목"),
        Document("b", "다른 본문.", "제목"),
        Document("c", "같은 본문이다.", "제목2"),
    ]
    passages, stats = build_passages(docs, CorpusConfig(title=False))
    assert stats["passages"] == 2
    shared = next(p for p in passages if p.body == "같은 본문이다.")
    assert [s.doc_id for s in shared.sources] == ["a", "c"]
    # with titles the texts differ, so nothing merges
    passages, _ = build_passages(docs, CorpusConfig(title=True))
    assert len(passages) == 3


def test_cleaning_literal_newlines_and_markup():
    config = CorpusConfig()
    assert clean_text("첫 줄\\n\\n둘째 <b>줄</b> ( , ) &amp; 끝", config) == "첫 줄\n둘째 줄 & 끝"
    assert clean_text("a\\nb", CorpusConfig(literal_newlines=False)) == "a\\nb"


def test_empty_corpus_is_an_error():
    with pytest.raises(OdqaError, match="no passages"):
        build_passages([], CorpusConfig())


def test_bad_config_is_refused():
    with pytest.raises(OdqaError, match=r"bad corpus config: .*overlap_chars \(100\) must be < target_chars \(100\)"):
        CorpusConfig.from_dict({"target_chars": 100, "overlap_chars": 100})
    with pytest.raises(OdqaError, match="bad corpus config: .*sentences"):
        CorpusConfig.from_dict({"sentences": True})
