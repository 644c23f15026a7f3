"""From documents to passages: cleaning, splitting on paragraph/sentence boundaries with a target
length and overlap, optional title prepending, and deduplication that keeps every source.

Every passage keeps, for each source document, the character span of its body in the (cleaned)
document text, so `document.text[start:end] == passage.body` always holds."""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pydantic import Field, model_validator

from odqa.errors import OdqaError
from odqa.settings import Settings
from odqa.types import Document, Passage, PassageSource

_TAG = re.compile(r"</?[a-zA-Z][^<>]{0,200}>")
_EMPTY_BRACKETS = re.compile(r"\(\s*[,;]?\s*\)|\[\s*\]")
_SPACES = re.compile(r"[ \t\u00a0\u200b]+")
_SENTENCE_END = re.compile(r"(?<=[.?!。？！])\s+")


class CorpusConfig(Settings):
    """How documents become passages. Serialised into every index manifest."""

    what = "corpus config"

    target_chars: int = Field(500, ge=20, description="pack paragraphs up to this many characters")
    max_chars: int = Field(1000, ge=20, description="hard cap; longer paragraphs split on sentences")
    overlap_chars: int = Field(0, ge=0, description="repeat up to this many trailing characters")
    title: bool = Field(True, description="prepend the document title to each passage")
    literal_newlines: bool = Field(True, description="turn the two characters backslash-n into a newline")
    strip_markup: bool = Field(True, description="drop HTML tags, entities and empty brackets")
    dedup: bool = True
    min_chars: int = Field(1, ge=1, description="drop passages whose body is shorter")

    @model_validator(mode="after")
    def _check(self) -> CorpusConfig:
        if self.max_chars < self.target_chars:
            raise ValueError(f"max_chars ({self.max_chars}) must be ≥ target_chars ({self.target_chars})")
        if self.overlap_chars >= self.target_chars:
            raise ValueError(f"overlap_chars ({self.overlap_chars}) must be < target_chars ({self.target_chars})")
        return self


def clean_text(text: str, config: CorpusConfig) -> str:
    if config.literal_newlines:
        text = text.replace("\\n", "\n")
    if config.strip_markup:
        text = html.unescape(_TAG.sub("", text))
        text = _EMPTY_BRACKETS.sub("", text)
    text = _SPACES.sub(" ", text)
    lines = (line.strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _segments(text: str, max_chars: int) -> list[tuple[int, int]]:
    """Spans of paragraphs; a paragraph over `max_chars` becomes sentences, and a sentence over
    `max_chars` is cut at the last space before the limit."""
    spans = []
    start = 0
    for paragraph in text.split("\n"):
        end = start + len(paragraph)
        if len(paragraph) <= max_chars:
            spans.append((start, end))
        else:
            for s_start, s_end in _sentences(paragraph):
                spans.extend(_hard_cut(text, start + s_start, start + s_end, max_chars))
        start = end + 1
    return [(s, e) for s, e in spans if e > s]


def _sentences(paragraph: str) -> Iterator[tuple[int, int]]:
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        yield start, match.start()
        start = match.end()
    yield start, len(paragraph)


def _hard_cut(text: str, start: int, end: int, max_chars: int) -> Iterator[tuple[int, int]]:
    while end - start > max_chars:
        cut = text.rfind(" ", start + max_chars // 2, start + max_chars)
        cut = cut if cut > start else start + max_chars
        yield start, cut
        start = cut + 1 if text[cut : cut + 1] == " " else cut
    yield start, end


def split_document(text: str, config: CorpusConfig) -> list[tuple[int, int]]:
    """Pack consecutive segments into passage spans of about `target_chars`, with overlap."""
    segments = _segments(text, config.max_chars)
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(segments):
        j = i + 1
        while j < len(segments) and segments[j][1] - segments[i][0] <= config.target_chars:
            j += 1
        spans.append((segments[i][0], segments[j - 1][1]))
        if j >= len(segments):
            break
        # The next passage starts with the trailing segments that fit in the overlap budget.
        k = j
        while k - 1 > i and segments[j - 1][1] - segments[k - 1][0] <= config.overlap_chars:
            k -= 1
        i = k
    return spans


@dataclass
class PassageBuilder:
    """Streams documents into passages, deduplicating by text and fingerprinting the result."""

    config: CorpusConfig
    # (id, title) of every document read, in order, passages or not: what an index keeps to be updated
    documents: list[tuple[str, str]] = field(default_factory=list)
    digests: bytes = b""  # the passages' digests in order, as `fingerprint` hashes them
    # the passages cut so far (while `build` runs: whole documents' worth between two documents)
    passages: list[Passage] = field(default_factory=list)

    def build(self, documents: Iterable[Document], allow_empty: bool = False) -> tuple[list[Passage], dict]:
        texts: dict[str, int] = {}
        passages: list[Passage] = []
        self.passages = passages
        n_docs = 0
        for document in documents:
            n_docs += 1
            self.documents.append((document.id, document.title))
            text = clean_text(document.text, self.config)
            prefix = f"{document.title}\n" if self.config.title and document.title else ""
            for start, end in split_document(text, self.config):
                if end - start < self.config.min_chars:
                    continue
                source = PassageSource(document.id, start, end)
                passage_text = prefix + text[start:end]
                existing = texts.get(passage_text) if self.config.dedup else None
                if existing is not None:
                    old = passages[existing]
                    passages[existing] = Passage(old.id, old.text, old.title, old.sources + (source,), old.body_start)
                    continue
                texts[passage_text] = len(passages)
                passages.append(Passage(len(passages), passage_text, document.title, (source,), len(prefix)))
        if not passages and not allow_empty:
            raise OdqaError("the corpus produced no passages: is it empty?")
        self.digests = b"".join(passage_digest(p) for p in passages)
        stats = {"documents": n_docs, "passages": len(passages), "fingerprint": fingerprint_of_digests(self.digests)}
        return passages, stats


def passage_digest(passage: Passage) -> bytes:
    """16 bytes identifying a passage's text and sources."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(passage.text.encode("utf-8"))
    digest.update(b"\x00")
    for source in passage.sources:
        digest.update(f"{source.doc_id}:{source.start}:{source.end};".encode())
    return digest.digest()


def text_hash(text: str) -> int:
    """64 bits of a passage text: what deduplication against an index's passages looks up."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def fingerprint_of_digests(digests: bytes) -> str:
    return hashlib.sha256(digests).hexdigest()[:16]


def fingerprint(passages: Iterable[Passage]) -> str:
    """The collection's identity: a hash of its passages' digests in order (an index updated in
    place recomputes it from the digests it keeps)."""
    return fingerprint_of_digests(b"".join(passage_digest(p) for p in passages))


def build_passages(documents: Iterable[Document], config: CorpusConfig | None = None) -> tuple[list[Passage], dict]:
    return PassageBuilder(config or CorpusConfig()).build(documents)
