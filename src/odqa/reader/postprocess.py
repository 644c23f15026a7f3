"""Korean answer clean-up on character spans: unbalanced brackets/quotes repaired against the
context, and trailing particles (조사, POS J*) stripped using one or more morphological analyzers,
which read the span together with the word after it.

Both work on (start, end) offsets into the context, so a cleaned answer is still an exact span.
Whether this helps is measured in `benchmarks/reader.py`, not assumed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from odqa.errors import OdqaError

PAIRS = {"(": ")", "«": "»", "《": "》", "「": "」", "『": "』", "〈": "〉", "“": "”", "‘": "’", "[": "]", "<": ">"}
CLOSERS = {v: k for k, v in PAIRS.items()}
SYMMETRIC = ('"', "'")
# A particle follows a noun-like morpheme: nouns, numbers, foreign words, hanja, symbols, suffixes.
_BEFORE_PARTICLE = ("N", "SL", "SH", "SN", "SS", "SY", "XSN", "ETN")


def _has_hangul(text: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in text)


def repair_brackets(context: str, start: int, end: int) -> tuple[int, int]:
    """Balance brackets and quotes in context[start:end]: take in the partner right outside the span
    when it is there, otherwise drop the lone bracket at an edge or cut the span before it."""
    for _ in range(4):  # a few passes settle nested cases
        text = context[start:end]
        changed = False
        for opener, closer in PAIRS.items():
            opens, closes = text.count(opener), text.count(closer)
            if opens > closes:
                if context[end : end + 1] == closer:
                    end += 1
                elif text.startswith(opener):
                    start += 1
                elif text.endswith(opener):
                    end -= 1
                else:
                    end = start + text.rindex(opener)
                changed = True
                break
            if closes > opens:
                if start > 0 and context[start - 1] == opener:
                    start -= 1
                elif text.endswith(closer):
                    end -= 1
                elif text.startswith(closer):
                    start += 1
                else:
                    start = start + text.index(closer) + 1
                changed = True
                break
        if not changed:
            for quote in SYMMETRIC:
                if text.count(quote) % 2:
                    if text.startswith(quote):
                        start += 1 if context[end : end + 1] != quote else 0
                        end += 1 if context[end : end + 1] == quote else 0
                    elif text.endswith(quote):
                        end -= 1
                    changed = True
                    break
        while start < end and context[start].isspace():
            start, changed = start + 1, True
        while end > start and context[end - 1].isspace():
            end, changed = end - 1, True
        if not changed:
            break
    return start, end


def drop_parenthetical(context: str, start: int, end: int) -> tuple[int, int]:
    """A span that ends with a parenthetical after other text ends before it: "박규수(朴珪壽)" →
    "박규수", "블록체인(blockchain)" → "블록체인". Annotators mostly leave the gloss out
    (benchmarks/korean_model.py, stage `glosses`, counts both ways on KorQuAD and the competition)."""
    text = context[start:end]
    if not text.endswith((")", "）")):
        return start, end
    depth = 0
    for i in range(len(text) - 1, -1, -1):  # the opener of the final closer
        depth += text[i] in ")）"
        depth -= text[i] in "(（"
        if depth == 0:
            head = text[:i].rstrip()
            return (start, start + len(head)) if head else (start, end)
    return start, end


@lru_cache(maxsize=4)
def _mecab():
    try:
        import mecab
    except ImportError:
        raise OdqaError("particle stripping with 'mecab' needs python-mecab-ko: pip install 'odqa[korean]'") from None
    tagger = mecab.MeCab()
    return lambda text: [(m.pos, m.span.start, m.span.end) for m in tagger.parse(text)]


@lru_cache(maxsize=4)
def _kiwi():
    try:
        from kiwipiepy import Kiwi
    except ImportError:
        raise OdqaError("particle stripping with 'kiwi' needs kiwipiepy: pip install 'odqa[korean]'") from None
    kiwi = Kiwi()
    return lambda text: [(t.tag, t.start, t.start + t.len) for t in kiwi.tokenize(text)]


TAGGERS = {"mecab": _mecab, "kiwi": _kiwi}  # text → (POS tag, start, end) of each morpheme


def _tagger(analyzer: str):
    if analyzer not in TAGGERS:
        raise OdqaError(f"unknown analyzer for particles {analyzer!r}; choose one of {', '.join(TAGGERS)}")
    return TAGGERS[analyzer]()


def _noun_end(morphemes: Sequence[tuple[str, int, int]], length: int) -> int:
    """Where the noun-like word before the trailing particles (J*, or a copula 이다 with its endings)
    of text[:length] ends, given the morphemes of a text that may run on past `length`; `length`
    itself when nothing trails a noun there or `length` falls inside a morpheme."""
    inside = [(tag, end) for tag, _, end in morphemes if end <= length]
    if not inside or inside[-1][1] != length:
        return length
    i = len(inside) - 1
    while i > 0 and inside[i][0].startswith(("J", "VCP", "E")) and inside[i][0] != "ETN":  # ETN: 하기를 → 하기
        i -= 1
    if i == len(inside) - 1 or not inside[i][0].startswith(_BEFORE_PARTICLE):
        return length
    return inside[i][1]


def particle_length(text: str, analyzer: str = "kiwi") -> int:
    """How many trailing characters of `text`, read on its own, are particles after a noun-like
    word (0 if none). A span read within its sentence is judged better: see `strip_particle`."""
    stem = text.rstrip()
    return len(stem) - _noun_end(_tagger(analyzer)(stem), len(stem))


def _right_context(context: str, end: int) -> int:
    """The end of the word after the one `end` falls in, on the same line."""
    j = end
    while j < len(context) and not context[j].isspace():
        j += 1
    while j < len(context) and context[j] in " \t":
        j += 1
    while j < len(context) and not context[j].isspace():
        j += 1
    return j


def strip_particle(
    context: str, start: int, end: int, analyzers: Sequence[str] = ("kiwi",), in_context: bool = True
) -> tuple[int, int]:
    """Drop trailing particles (and a copula: "상점이었는데" → "상점") from context[start:end] when every
    analyzer agrees. The span is analysed with the next word of its sentence after it: cut from its
    sentence, "시트르산 회로" reads as 회/로 and "고양이의" as a noun 의, which in context are 회로 and
    the particle 의 (KorQuAD dev + competition train gold answers: more answer+particle spans
    repaired and fewer intact answers changed, benchmarks/reader.py stage ko-cleanup). `in_context=False`
    analyses the span alone (the benchmark's comparison)."""
    while end > start and context[end - 1].isspace():
        end -= 1
    if not _has_hangul(context[end - 1 : end]):
        return start, end
    text = context[start : _right_context(context, end) if in_context else end]
    ends = {_noun_end(_tagger(a)(text), end - start) for a in analyzers}
    if len(ends) != 1:
        return start, end
    new_end = start + ends.pop()
    if not context[start:new_end].strip():
        return start, end
    while new_end > start and context[new_end - 1].isspace():
        new_end -= 1
    return start, new_end


def clean_span(
    context: str,
    start: int,
    end: int,
    particles: bool = True,
    brackets: bool = True,
    analyzers: Sequence[str] = ("kiwi",),
    glosses: bool = True,
    in_context: bool = True,
) -> tuple[int, int]:
    """The Korean clean-up: brackets first (so a particle after a closing bracket is seen), then the
    particle, then brackets again (stripping can expose a lone bracket), then a trailing
    parenthetical gloss. Non-Hangul spans are kept."""
    if not _has_hangul(context[start:end]):
        return start, end
    if brackets:
        start, end = repair_brackets(context, start, end)
    if particles and end > start:
        start, end = strip_particle(context, start, end, analyzers, in_context)
        if brackets:
            start, end = repair_brackets(context, start, end)
    if glosses and end > start:
        start, end = drop_parenthetical(context, start, end)
    return start, end


# Counter words a "몇 …" question asks for (longest first, so 주년 wins over 년, 개월 over 개).
_UNIT_WORDS = (
    "년 월 일 시 분 초 명 개 살 세 번 회 차 층 척 대 권 편 곡 장 마리 채 주년 주 개월 시간 위 등 점 골 승 패 배 "
    "배럴 달러 원 엔 톤 킬로미터 미터 센티미터 킬로그램 그램 리터 퍼센트 km m cm kg g %"
)
UNITS = tuple(sorted(_UNIT_WORDS.split(), key=len, reverse=True))
_FEW = re.compile(r"몇\s*(" + "|".join(re.escape(u) for u in UNITS) + r")")
# "… 시작된 해는?": 해 as its own word (견해, 피해 and 이해 are not years), or 연도 / 년도
_YEAR = re.compile(r"(?:(?:^|\s)해|연도|년도)(?:는|가|를|에|였나|였는가|인가|일까|입니까)?\s*[?？]?\s*$")
_NUMBER = r"(?:(?:서기|기원전|BC|AD)\s*)?\d[\d,.]*(?:\s*[십백천만억조]+(?:\s*\d[\d,.]*)?)*\s*"
# a particle right after the unit ("58명의 승객"): the unit still ends the answer
_PARTICLE = r"(의|이|가|은|는|을|를|에서|에|으로|로|과|와|까지|부터|만)?"
# words that qualify the number belong to the answer ("3천 명 이상", "1950년 이후"): kept
_QUALIFIER = re.compile(
    r"\s*(?:(?:이상|이하|미만|초과|가량|정도|남짓|안팎|내외|여|쯤|전후|이후|이전|전|후|동안|만에|간)(?:\s|$)|[~∼–-])"
)


def asked_unit(question: str) -> str | None:
    """The counter word a question asks its answer in: "몇 명이 …?" → 명, "… 시작된 해는?" → 년;
    None when it asks for something else, or for several ("몇 년 몇 월 며칠", "몇%와 몇%")."""
    question = question.strip()
    if question.count("몇") + question.count("며칠") > 1:
        return None
    found = _FEW.search(question)
    if found:
        return found.group(1)
    if "몇" not in question and _YEAR.search(question):
        return "년"
    return None


def trim_to_unit(context: str, start: int, end: int, unit: str, question: str = "") -> tuple[int, int]:
    """A span that begins with a number in the asked unit and goes on past it ("1950년 6월 25일
    새벽 4시" for a year, "58명의 승객" for 몇 명) ends after the unit. Kept: a span where the unit
    is part of a longer word ("1950년대 후반"), a qualified number or a range ("3천 명 이상", "1869년부터
    1875년까지"), one whose next word follows the unit in the question too ("4번 타자" for "몇 번 타자였나?"), and one
    that does not begin with such a number."""
    suffix = "도?" if unit == "년" else ""
    begin = start
    while begin < end and context[begin].isspace():  # a token's offsets may take the space before it
        begin += 1
    text = context[begin:end]
    found = re.match(f"({_NUMBER}{re.escape(unit)}{suffix}){_PARTICLE}(?=[\\s,;:/·])", text)
    if not found:
        return start, end
    rest = text[found.end() :]
    if _QUALIFIER.match(rest) or (found.group(2) in ("부터", "에서") and re.match(r"\s*\d", rest)):
        return start, end
    following = rest.split()
    word = re.sub(r"\W+$", "", following[0])[:2] if following else ""
    if word and re.search(re.escape(unit) + r"\s*" + re.escape(word), question):  # "몇 번 타자" asks "4번 타자"
        return start, end
    return start, begin + found.end(1)
