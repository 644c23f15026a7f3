"""(question, context) pairs → windows of token ids with character offsets into the context.

One window per `max_length` slice of the context, consecutive windows overlapping by `stride`
tokens (the Hugging Face convention). Each window keeps, per token, the character span it covers
in its context (-1 for question and special tokens), so every later stage speaks in characters.
Works for any fast tokenizer that encodes pairs as question-then-context (BERT, RoBERTa, ELECTRA);
token type ids are kept only where the tokenizer makes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from odqa.errors import OdqaError

# Room left for the context when the question takes its maximum: below this, windows are useless.
MIN_CONTEXT_TOKENS = 16


@dataclass(frozen=True)
class WindowConfig:
    max_length: int = 384
    stride: int = 128
    max_question_tokens: int = 64

    def check(self) -> None:
        room = self.max_length - self.max_question_tokens - 4
        if room < MIN_CONTEXT_TOKENS:
            raise OdqaError(
                f"max_length {self.max_length} leaves {room} context tokens after a question of "
                f"{self.max_question_tokens} tokens; raise max_length or lower max_question_tokens"
            )
        if not 0 <= self.stride < room:
            raise OdqaError(f"stride {self.stride} must be between 0 and {room - 1} (the context room of a window)")


@dataclass
class Windows:
    """Windows over `pairs` (question, context) pairs; all per-window lists are aligned."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    offsets: list[np.ndarray]  # (tokens, 2) character offsets into the pair's context; -1 outside it
    pair: np.ndarray  # window → index of its (question, context) pair
    start_positions: np.ndarray | None = None  # training labels; 0 (the first token) = no answer here
    end_positions: np.ndarray | None = None
    truncated_questions: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.input_ids)

    def subset(self, indices: Sequence[int]) -> Windows:
        """The windows at `indices`, in that order (e.g. a sample of the no-answer windows)."""
        idx = [int(i) for i in indices]
        pick = lambda values: None if values is None else [values[i] for i in idx]
        labels = lambda values: None if values is None else values[idx]
        return Windows(
            pick(self.input_ids),
            pick(self.token_type_ids),
            pick(self.offsets),
            self.pair[idx],
            labels(self.start_positions),
            labels(self.end_positions),
            self.truncated_questions,
        )

    def extended(self, other: Windows) -> Windows:
        """These windows followed by `other`'s, labels and all."""
        if (self.token_type_ids is None) != (other.token_type_ids is None) or (self.start_positions is None) != (
            other.start_positions is None
        ):
            raise OdqaError("windows made by different tokenizers or with and without labels cannot be joined")
        join = lambda a, b: None if a is None else np.concatenate([a, b])
        return Windows(
            self.input_ids + other.input_ids,
            None if self.token_type_ids is None else self.token_type_ids + other.token_type_ids,
            self.offsets + other.offsets,
            np.concatenate([self.pair, other.pair]),
            join(self.start_positions, other.start_positions),
            join(self.end_positions, other.end_positions),
            self.truncated_questions,
        )

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def _truncate_questions(tokenizer, questions: Sequence[str], max_tokens: int) -> tuple[list[str], list[int]]:
    encoded = tokenizer(list(questions), add_special_tokens=False, return_offsets_mapping=True)
    kept, truncated = [], []
    for i, (question, offsets) in enumerate(zip(questions, encoded["offset_mapping"])):
        if len(offsets) > max_tokens:
            kept.append(question[: offsets[max_tokens - 1][1]])
            truncated.append(i)
        else:
            kept.append(question)
    return kept, truncated


def _label(offsets: np.ndarray, context_tokens: np.ndarray, start_char: int, end_char: int) -> tuple[int, int]:
    """Token positions of the first and last token of [start_char, end_char), or (0, 0) when the
    window does not hold the whole answer."""
    starts, ends = offsets[context_tokens, 0], offsets[context_tokens, 1]
    if len(context_tokens) == 0 or start_char < starts[0] or end_char > ends[-1]:
        return 0, 0
    first = int(np.searchsorted(ends, start_char, side="right"))  # first token ending after the start
    last = int(np.searchsorted(starts, end_char, side="left")) - 1  # last token starting before the end
    if first > last:
        return 0, 0
    return int(context_tokens[first]), int(context_tokens[last])


def build_windows(
    tokenizer,
    questions: Sequence[str],
    contexts: Sequence[str],
    config: WindowConfig = WindowConfig(),
    answers: Sequence[tuple[int, int] | None] | None = None,
    chunk: int = 512,
) -> Windows:
    """Windows for aligned `questions[i]`, `contexts[i]`; with `answers[i] = (start, end)` character
    spans (or None), training labels too."""
    config.check()
    if len(questions) != len(contexts):
        raise OdqaError(f"{len(questions)} questions but {len(contexts)} contexts")
    for i, (question, context) in enumerate(zip(questions, contexts)):
        if not question or not question.strip():
            raise OdqaError(f"question {i} is empty")
        if not context or not context.strip():
            raise OdqaError(f"the context of pair {i} (question {question[:40]!r}) is empty")
    questions, truncated = _truncate_questions(tokenizer, questions, config.max_question_tokens)
    keep_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())
    input_ids, type_ids, offsets_out, pair_of, starts, ends = [], [], [], [], [], []
    for lo in range(0, len(questions), chunk):
        encoded = tokenizer(
            questions[lo : lo + chunk],
            list(contexts[lo : lo + chunk]),
            truncation="only_second",
            max_length=config.max_length,
            stride=config.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_token_type_ids=keep_types,
            padding=False,
        )
        for w, pair in enumerate(encoded["overflow_to_sample_mapping"]):
            pair = lo + int(pair)
            ids = np.asarray(encoded["input_ids"][w], dtype=np.int64)
            in_context = np.fromiter((s == 1 for s in encoded.sequence_ids(w)), dtype=bool, count=len(ids))
            offsets = np.asarray(encoded["offset_mapping"][w], dtype=np.int64).reshape(-1, 2)
            offsets[~in_context] = -1
            input_ids.append(ids)
            offsets_out.append(offsets)
            pair_of.append(pair)
            if keep_types:
                type_ids.append(np.asarray(encoded["token_type_ids"][w], dtype=np.int64))
            if answers is not None:
                span = answers[pair]
                s, e = (0, 0) if span is None else _label(offsets, np.flatnonzero(in_context), *span)
                starts.append(s)
                ends.append(e)
    return Windows(
        input_ids=input_ids,
        token_type_ids=type_ids if keep_types else None,
        offsets=offsets_out,
        pair=np.asarray(pair_of, dtype=np.int64),
        start_positions=np.asarray(starts, dtype=np.int64) if answers is not None else None,
        end_positions=np.asarray(ends, dtype=np.int64) if answers is not None else None,
        truncated_questions=truncated,
    )


def pad_batch(windows: Windows, indices: Sequence[int], pad_id: int) -> dict[str, np.ndarray]:
    """The windows at `indices` padded to their longest: model inputs + offsets (-1 on padding)."""
    width = max(len(windows.input_ids[i]) for i in indices)
    n = len(indices)
    ids = np.full((n, width), pad_id, dtype=np.int64)
    mask = np.zeros((n, width), dtype=np.int64)
    offsets = np.full((n, width, 2), -1, dtype=np.int64)
    types = np.zeros((n, width), dtype=np.int64) if windows.token_type_ids is not None else None
    for row, i in enumerate(indices):
        length = len(windows.input_ids[i])
        ids[row, :length] = windows.input_ids[i]
        mask[row, :length] = 1
        offsets[row, :length] = windows.offsets[i]
        if types is not None:
            types[row, :length] = windows.token_type_ids[i]
    batch = {"input_ids": ids, "attention_mask": mask, "offsets": offsets}
    if types is not None:
        batch["token_type_ids"] = types
    return batch
