"""Token features for relation extraction: the marked sentence (and the optional question) as
token ids, with the token positions the heads pool from — each entity's opening marker and its
word's tokens — found through the tokenizer's character offsets.

A sentence longer than the window is cropped around its entities before it is tokenized: the
characters around both entities are kept (one piece when they are close, two joined by ' … '
when they are far apart), so both entities are always in the window."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from odqa.errors import OdqaError
from odqa.relation.data import Entity, RelationExample
from odqa.relation.markers import MarkedText, mark, relation_question

log = logging.getLogger(__name__)

GAP = " … "  # joins the two kept pieces of a cropped sentence


@dataclass
class RelationFeatures:
    """Encoded examples: ragged `input_ids`, and per example the token of each entity's opening
    marker, each entity's token span `[first, last + 1)`, and whether the sentence was cropped."""

    input_ids: list[np.ndarray]
    subject_marker: np.ndarray
    object_marker: np.ndarray
    subject_span: np.ndarray  # (n, 2)
    object_span: np.ndarray  # (n, 2)
    cropped: np.ndarray
    marked: list[MarkedText]

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(ids) for ids in self.input_ids], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.input_ids)

    def batch(self, indices: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
        """Padded arrays for the examples at `indices` (attention mask 0 over the padding)."""
        width = max(len(self.input_ids[i]) for i in indices)
        ids = np.full((len(indices), width), pad_id, dtype=np.int64)
        attention = np.zeros((len(indices), width), dtype=np.int64)
        for row, i in enumerate(indices):
            ids[row, : len(self.input_ids[i])] = self.input_ids[i]
            attention[row, : len(self.input_ids[i])] = 1
        return {
            "input_ids": ids,
            "attention_mask": attention,
            "subject_marker": self.subject_marker[indices],
            "object_marker": self.object_marker[indices],
            "subject_span": self.subject_span[indices],
            "object_span": self.object_span[indices],
        }


def crop(example: RelationExample, context: int) -> tuple[str, Entity, Entity, np.ndarray]:
    """The sentence cut to `context` characters around each entity: (text, subject, object
    re-based to the text, origin of each text character in the sentence; -1 for the gap)."""
    sentence, s, o = example.sentence, example.subject, example.object
    ranges = sorted(
        [
            (max(0, s.start - context), min(len(sentence), s.end + context)),
            (max(0, o.start - context), min(len(sentence), o.end + context)),
        ]
    )
    if ranges[1][0] <= ranges[0][1] + len(GAP):  # overlapping or nearly: one piece
        ranges = [(ranges[0][0], max(ranges[0][1], ranges[1][1]))]
    pieces, origin = [], []
    for a, b in ranges:
        if pieces:
            pieces.append(GAP)
            origin.append(np.full(len(GAP), -1))
        pieces.append(sentence[a:b])
        origin.append(np.arange(a, b))
    source = np.concatenate(origin)
    position = {int(c): i for i, c in enumerate(source) if c >= 0}

    def moved(e: Entity) -> Entity:
        return Entity(e.word, position[e.start], position[e.end - 1] + 1, e.type)

    return "".join(pieces), moved(s), moved(o), source


def _locate(offsets, sequence_ids, marked: MarkedText) -> tuple[int, int, tuple[int, int], tuple[int, int]]:
    """Token of each opening marker and token span of each entity word, from character offsets."""
    first_segment = [i for i, (seq, (a, b)) in enumerate(zip(sequence_ids, offsets)) if seq == 0 and b > a]

    def token_at(char: int) -> int:
        for i in first_segment:
            if offsets[i][1] > char:
                return i
        raise OdqaError(f"no token holds character {char} of {marked.text[:40]!r}…")

    def span(chars: tuple[int, int]) -> tuple[int, int]:
        inside = [i for i in first_segment if offsets[i][0] < chars[1] and offsets[i][1] > chars[0]]
        return inside[0], inside[-1] + 1

    return token_at(marked.subject_marker), token_at(marked.object_marker), span(marked.subject), span(marked.object)


def encode_examples(
    tokenizer, examples: list[RelationExample], format_name: str, max_length: int = 256, question: bool = False
) -> RelationFeatures:
    """Mark, tokenize and locate every example; sentences that do not fit are cropped."""
    if max_length < 32:
        raise OdqaError(f"max_length must be at least 32 tokens, got {max_length}")
    marked = [mark(e.sentence, e.subject, e.object, format_name) for e in examples]
    questions = [relation_question(e.subject, e.object) for e in examples] if question else None
    encoded = tokenizer(
        [m.text for m in marked],
        questions,
        return_offsets_mapping=True,
        add_special_tokens=True,
        truncation=False,
        verbose=False,  # long sentences are cropped around their entities below, not truncated
    )
    ids, cropped = list(encoded["input_ids"]), np.zeros(len(examples), dtype=bool)
    offsets = list(encoded["offset_mapping"])
    sequence_ids = [encoded.sequence_ids(i) for i in range(len(examples))]
    for i, example in enumerate(examples):
        if len(ids[i]) <= max_length:
            continue
        cropped[i] = True
        question_text = questions[i] if questions else None
        marked[i], ids[i], offsets[i], sequence_ids[i] = _fit(
            tokenizer, example, format_name, max_length, question_text, len(ids[i])
        )
    located = [_locate(offsets[i], sequence_ids[i], marked[i]) for i in range(len(examples))]
    if cropped.any():
        log.info(
            "%d of %d sentences cropped around their entities to fit %d tokens",
            cropped.sum(),
            len(examples),
            max_length,
        )
    return RelationFeatures(
        [np.asarray(x, dtype=np.int64) for x in ids],
        np.array([x[0] for x in located], dtype=np.int64),
        np.array([x[1] for x in located], dtype=np.int64),
        np.array([x[2] for x in located], dtype=np.int64).reshape(-1, 2),
        np.array([x[3] for x in located], dtype=np.int64).reshape(-1, 2),
        cropped,
        marked,
    )


def _fit(tokenizer, example: RelationExample, format_name: str, max_length: int, question: str | None, tokens: int):
    """Crop `example` until its marked text fits `max_length` tokens; the marked text's origin
    points into the full sentence."""
    context = int(len(example.sentence) * max_length / tokens / 2)
    while True:
        text, subject, obj, source = crop(example, context)
        marked = mark(text, subject, obj, format_name)
        encoded = tokenizer(
            marked.text,
            question,
            return_offsets_mapping=True,
            add_special_tokens=True,
            truncation=False,
            verbose=False,
        )
        if len(encoded["input_ids"]) <= max_length or context == 0:
            break
        context = int(context * 0.8)
    if len(encoded["input_ids"]) > max_length:
        raise OdqaError(
            f"{example.guid}: its two entities alone take {len(encoded['input_ids'])} tokens, more than the "
            f"window of {max_length}; raise max_length"
        )
    origin = np.where(marked.origin >= 0, source[np.maximum(marked.origin, 0)], -1)
    marked = MarkedText(marked.text, marked.subject, marked.object, marked.subject_marker, marked.object_marker, origin)
    return marked, encoded["input_ids"], encoded["offset_mapping"], encoded.sequence_ids(0)
