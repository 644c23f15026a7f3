"""Input formats for relation extraction: where the subject and object are marked in the sentence.

Each format is a pair of small functions (the text before and after an entity, by role and type)
in `FORMATS`, plus the special tokens it needs added to the tokenizer (none for the punctuation
formats, whose markers are characters every vocabulary has — the variant that moved the KLUE-RE
teams most). Markers are inserted by character offsets, never by replacing the entity's string,
so an entity whose word appears elsewhere in the sentence is marked where it was annotated. Each
character of the marked text knows the sentence character it came from (`origin`, -1 for marker
characters), so everything downstream maps back to the sentence.

    entity            <subj>이순신</subj> … <obj>한산도</obj>              (4 added tokens)
    typed             <subj:PER>이순신</subj:PER> … <obj:LOC>한산도</obj:LOC> (added per type)
    punct             @ 이순신 @ … # 한산도 #
    typed-punct       @ * 사람 * 이순신 @ … # ^ 지명 ^ 한산도 #               (Korean type words)
    typed-punct-en    @ * person * 이순신 @ … # ^ location ^ 한산도 #
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from odqa.errors import OdqaError
from odqa.relation.data import Entity

SUBJECT, OBJECT = "subject", "object"

# KLUE-RE's entity types; a type not listed here is written as it is
KOREAN_TYPE_WORDS = {"PER": "사람", "ORG": "단체", "LOC": "지명", "DAT": "날짜", "POH": "기타", "NOH": "수량"}
ENGLISH_TYPE_WORDS = {
    "PER": "person",
    "ORG": "organization",
    "LOC": "location",
    "DAT": "date",
    "POH": "other",
    "NOH": "number",
}


@dataclass(frozen=True)
class MarkerFormat:
    """`before(role, type)` and `after(role, type)` wrap an entity; `tokens(types)` lists the
    special tokens the format needs in the vocabulary (an empty list for plain characters)."""

    before: Callable[[str, str], str]
    after: Callable[[str, str], str]
    tokens: Callable[[Iterable[str]], list[str]]


def _short(role: str) -> str:
    return "subj" if role == SUBJECT else "obj"


def _typed_punct(words: dict[str, str]) -> MarkerFormat:
    def before(role: str, kind: str) -> str:
        word = words.get(kind, kind)
        return f"@ * {word} * " if role == SUBJECT else f"# ^ {word} ^ "

    return MarkerFormat(before, lambda role, kind: " @" if role == SUBJECT else " #", lambda types: [])


FORMATS: dict[str, MarkerFormat] = {
    "entity": MarkerFormat(
        lambda role, kind: f"<{_short(role)}>",
        lambda role, kind: f"</{_short(role)}>",
        lambda types: ["<subj>", "</subj>", "<obj>", "</obj>"],
    ),
    "typed": MarkerFormat(
        lambda role, kind: f"<{_short(role)}:{kind}>",
        lambda role, kind: f"</{_short(role)}:{kind}>",
        lambda types: [f"{t}{r}:{k}>" for k in sorted(types) for r in ("subj", "obj") for t in ("<", "</")],
    ),
    "punct": MarkerFormat(
        lambda role, kind: "@ " if role == SUBJECT else "# ",
        lambda role, kind: " @" if role == SUBJECT else " #",
        lambda types: [],
    ),
    "typed-punct": _typed_punct(KOREAN_TYPE_WORDS),
    "typed-punct-en": _typed_punct(ENGLISH_TYPE_WORDS),
}


def check_format(name: str) -> MarkerFormat:
    if name not in FORMATS:
        raise OdqaError(f"unknown relation input format {name!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[name]


@dataclass(frozen=True)
class MarkedText:
    """A sentence with its entities marked. `subject`/`object`: the entity's characters in
    `text` (half-open; markers of the other entity inside a nested span included); `*_marker`:
    where the entity's opening marker starts; `origin[i]`: the sentence character `text[i]`
    came from, or -1 for an inserted character."""

    text: str
    subject: tuple[int, int]
    object: tuple[int, int]
    subject_marker: int
    object_marker: int
    origin: np.ndarray


def mark(sentence: str, subject: Entity, obj: Entity, format_name: str) -> MarkedText:
    """Insert the format's markers around `subject` and `obj` by their character offsets.

    Where boundaries meet, an entity closes before the next opens (adjacent entities), the
    longer of two spans opening at one character opens first and closes last (nesting), and of
    two identical spans the subject is the outer one. Crossing spans are marked as annotated."""
    fmt = check_format(format_name)
    events = []  # (position, closes before opens, order among equals, role, entity, is_open)
    for rank, (role, entity) in enumerate(((SUBJECT, subject), (OBJECT, obj))):
        length = entity.end - entity.start
        events.append((entity.start, 1, (-length, rank), role, entity, True))
        events.append((entity.end, 0, (length, -rank), role, entity, False))
    events.sort(key=lambda e: e[:3])

    pieces, origin, size, cursor = [], [], 0, 0
    opened, marker_at, spans = {}, {}, {}

    def add(text: str, source_start: int | None) -> None:
        nonlocal size
        pieces.append(text)
        origin.append(
            np.arange(source_start, source_start + len(text)) if source_start is not None else np.full(len(text), -1)
        )
        size += len(text)

    for position, _, _, role, entity, is_open in events:
        add(sentence[cursor:position], cursor)
        cursor = position
        if is_open:
            marker_at[role] = size
            add(fmt.before(role, entity.type), None)
            opened[role] = size
        else:
            spans[role] = (opened[role], size)
            add(fmt.after(role, entity.type), None)
    add(sentence[cursor:], cursor)
    return MarkedText(
        "".join(pieces),
        spans[SUBJECT],
        spans[OBJECT],
        marker_at[SUBJECT],
        marker_at[OBJECT],
        np.concatenate(origin).astype(np.int64),
    )


def _final_consonant(word: str) -> bool:
    """Whether the last syllable of `word` has a final consonant (받침): it takes 과, not 와."""
    last = word.rstrip()[-1:] or " "
    if "가" <= last <= "힣":
        return (ord(last) - 0xAC00) % 28 != 0
    return last.isdigit() and last in "013678"  # 영, 일, 삼, 육, 칠, 팔 end in a consonant


def relation_question(subject: Entity, obj: Entity) -> str:
    """The question-style second segment: '이순신과 한산도의 관계는?' (과/와 by the final consonant)."""
    particle = "과" if _final_consonant(subject.word) else "와"
    return f"{subject.word}{particle} {obj.word}의 관계는?"
