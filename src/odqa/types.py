"""Small frozen value types shared by every stage. Offsets are character offsets, end-exclusive.

Documents are cut into Passages; a retriever returns Hits; a reader proposes Spans in a context;
the pipeline answers with Answers placed in their passage (and document) and Evidence; training
files give gold AnswerSpans."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


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


@dataclass(frozen=True, slots=True)
class AnswerSpan:
    """A gold answer in a training or evaluation context: `context[start:end] == text`."""

    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass(frozen=True, slots=True)
class Span:
    """A candidate answer: `context[start:end] == text` for the context at `context_index`."""

    text: str
    start: int
    end: int
    score: float
    context_index: int = 0

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "score": self.score,
            "context": self.context_index,
        }


@dataclass(frozen=True)
class Evidence:
    """A retrieved passage, as the answer's evidence."""

    passage_id: int
    rank: int
    score: float
    title: str
    doc_id: str
    text: str


@dataclass(frozen=True)
class Answer:
    """An answer span: `passage.text[start:end] == text`; `doc_start/doc_end` place it in the
    source document when it lies in the passage body (not in a prepended title)."""

    text: str
    score: float
    reader_score: float
    passage_id: int
    passage_rank: int
    title: str
    doc_id: str
    start: int
    end: int
    doc_start: int | None = None
    doc_end: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)
