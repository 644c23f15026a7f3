"""Korean answer clean-up on character spans: unbalanced brackets/quotes repaired against the
context, and a trailing particle (조사, POS J*) stripped using one or more morphological analyzers.

Both work on (start, end) offsets into the context, so a cleaned answer is still an exact span.
Whether this helps is measured in `benchmarks/reader.py`, not assumed."""

from __future__ import annotations

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


@lru_cache(maxsize=4)
def _mecab():
    try:
        import mecab
    except ImportError:
        raise OdqaError("particle stripping with 'mecab' needs python-mecab-ko: pip install 'odqa[korean]'") from None
    tagger = mecab.MeCab()
    return lambda text: [(m.surface, m.pos) for m in tagger.parse(text)]


@lru_cache(maxsize=4)
def _kiwi():
    try:
        from kiwipiepy import Kiwi
    except ImportError:
        raise OdqaError("particle stripping with 'kiwi' needs kiwipiepy: pip install 'odqa[korean]'") from None
    kiwi = Kiwi()
    # Kiwi may normalise surfaces; use its character positions instead.
    return lambda text: [(text[t.start : t.start + t.len], t.tag) for t in kiwi.tokenize(text)]


TAGGERS = {"mecab": _mecab, "kiwi": _kiwi}


def particle_length(text: str, analyzer: str = "mecab") -> int:
    """How many trailing characters of `text` are particles after a noun-like word (0 if none)."""
    if analyzer not in TAGGERS:
        raise OdqaError(f"unknown analyzer for particles {analyzer!r}; choose one of {', '.join(TAGGERS)}")
    morphemes = TAGGERS[analyzer]()(text)
    cut, i = 0, len(morphemes) - 1
    while i > 0 and morphemes[i][1].startswith("J"):
        cut += len(morphemes[i][0])
        i -= 1
    if cut == 0 or not morphemes[i][1].startswith(_BEFORE_PARTICLE):
        return 0
    stem = text.rstrip()
    return cut if cut < len(stem.replace(" ", "")) else 0


def strip_particle(context: str, start: int, end: int, analyzers: Sequence[str] = ("mecab",)) -> tuple[int, int]:
    """Drop a trailing particle from context[start:end] when every analyzer agrees on its length."""
    while end > start and context[end - 1].isspace():
        end -= 1
    text = context[start:end]
    if not _has_hangul(text[-1:]):
        return start, end
    cuts = {particle_length(text, a) for a in analyzers}
    if len(cuts) != 1:
        return start, end
    cut = cuts.pop()
    if cut:
        end -= cut
        while end > start and context[end - 1].isspace():
            end -= 1
    return start, end


def clean_span(
    context: str,
    start: int,
    end: int,
    particles: bool = True,
    brackets: bool = True,
    analyzers: Sequence[str] = ("mecab",),
) -> tuple[int, int]:
    """The Korean clean-up: brackets first (so a particle after a closing bracket is seen), then the
    particle, then brackets again (stripping can expose a lone bracket). Non-Hangul spans are kept."""
    if not _has_hangul(context[start:end]):
        return start, end
    if brackets:
        start, end = repair_brackets(context, start, end)
    if particles and end > start:
        start, end = strip_particle(context, start, end, analyzers)
        if brackets:
            start, end = repair_brackets(context, start, end)
    return start, end
