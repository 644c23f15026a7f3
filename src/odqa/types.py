"""Small frozen value types shared by every stage. Offsets are character offsets, end-exclusive."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Document:
    id: str
    text: str
    title: str = ""


@dataclass(frozen=True, slots=True)
class PassageSource:
    """Where a passage's text came from: `document.text[start:end] == passage body`."""

    doc_id: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Passage:
    """A retrieval unit. `text` is what is indexed; `body_start` is where the document's own
    text begins inside `text` (after an optional prepended title), so
    `text[body_start:] == document.text[source.start:source.end]` for every source."""

    id: int
    text: str
    title: str
    sources: tuple[PassageSource, ...]
    body_start: int = 0

    @property
    def doc_id(self) -> str:
        return self.sources[0].doc_id

    @property
    def body(self) -> str:
        return self.text[self.body_start :]


@dataclass(frozen=True, slots=True)
class Hit:
    passage_id: int
    score: float
    rank: int
    passage: Passage | None = field(default=None, compare=False)
