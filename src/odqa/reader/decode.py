"""Decoding: start/end logits + offsets → scored answer spans in characters. Pure numpy.

Two span scorers, chosen by name from `SCORERS`:
- `logits`: start logit + end logit (the Hugging Face reference). Cheap, but logits of different
  windows/passages live on different scales.
- `prob`: log of (softmax start probability × softmax end probability), each softmax taken over
  its own window. Comparable across windows and passages, which is what open-domain reading needs.

`top_spans` finds the exact n best spans per window (every start/end pair within the length limit
is scored: no top-n-starts × top-n-ends shortlist that can miss the best pair); `aggregate` pools
the spans of all windows of all passages of one question, optionally merging equal answer texts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from odqa.errors import OdqaError
from odqa.types import Span

NEG = np.float32(-1e30)


def _log_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    x = np.where(mask, logits, -np.inf)
    peak = x.max(axis=-1, keepdims=True)
    out = x - peak - np.log(np.exp(x - peak).sum(axis=-1, keepdims=True))
    return np.where(mask, out, NEG).astype(np.float32)


def _logit_scores(start: np.ndarray, end: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return start.astype(np.float32), end.astype(np.float32)


def _prob_scores(start: np.ndarray, end: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _log_softmax(start, mask), _log_softmax(end, mask)


# name → (start logits, end logits, attention mask) → per-token start and end scores that add up.
SCORERS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "logits": _logit_scores,
    "prob": _prob_scores,
}


def check_mode(mode: str) -> str:
    if mode not in SCORERS:
        raise OdqaError(f"unknown span scoring {mode!r}; choose one of {', '.join(SCORERS)}")
    return mode


@dataclass(frozen=True)
class WindowSpans:
    """The n best spans of each window, in token positions, best first (score -inf = none)."""

    start: np.ndarray  # (windows, n) token positions
    end: np.ndarray  # (windows, n)
    score: np.ndarray  # (windows, n)
    null: np.ndarray  # (windows,) score of the no-answer span (first token, first token)


def top_spans(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    offsets: np.ndarray,
    attention_mask: np.ndarray,
    n: int = 20,
    max_answer_tokens: int = 30,
    mode: str = "logits",
    lines: np.ndarray | None = None,
) -> WindowSpans:
    """Exact n best (start ≤ end < start + max_answer_tokens) spans inside the context of each
    window. Inputs are (windows, tokens) arrays padded alike; `offsets` (windows, tokens, 2) is -1
    outside the context. With `lines` (windows, tokens, 2: the line each token starts and ends on,
    from `token_lines`) a span must start and end on one line."""
    check_mode(mode)
    if max_answer_tokens < 1 or n < 1:
        raise OdqaError("n and max_answer_tokens must be at least 1")
    attention = attention_mask.astype(bool)
    start_scores, end_scores = SCORERS[mode](start_logits, end_logits, attention)
    null = start_scores[:, 0] + end_scores[:, 0]
    in_context = offsets[..., 0] >= 0
    windows, tokens = start_scores.shape
    span = min(max_answer_tokens, tokens)
    starts = np.where(in_context, start_scores, NEG)
    # ends[w, s, j] = score of ending at s + j; out-of-range ends are NEG.
    padded = np.concatenate([np.where(in_context, end_scores, NEG), np.full((windows, span), NEG, np.float32)], axis=1)
    gather = np.arange(tokens)[:, None] + np.arange(span)[None, :]
    band = starts[:, :, None] + padded[:, gather]
    if lines is not None:
        end_lines = np.concatenate([lines[..., 1], np.full((windows, span), -1, lines.dtype)], axis=1)
        band = np.where(end_lines[:, gather] == lines[..., 0][:, :, None], band, NEG)
    flat = band.reshape(windows, -1)
    n = min(n, flat.shape[1])
    best = (
        np.argpartition(-flat, n - 1, axis=1)[:, :n]
        if n < flat.shape[1]
        else np.tile(np.arange(flat.shape[1]), (windows, 1))
    )
    best_scores = np.take_along_axis(flat, best, axis=1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    best = np.take_along_axis(best, order, axis=1)
    best_scores = np.take_along_axis(best_scores, order, axis=1)
    valid = best_scores > NEG / 2
    s, j = np.divmod(best, span)
    return WindowSpans(
        start=np.where(valid, s, -1),
        end=np.where(valid, s + j, -1),
        score=np.where(valid, best_scores, -np.inf).astype(np.float32),
        null=null.astype(np.float32),
    )


def token_lines(context: str, offsets: np.ndarray) -> np.ndarray:
    """(tokens, 2): the line (count of line breaks before it) on which each token's first and last
    character lie, from its character `offsets`; -1 outside the context. No answer in KorQuAD, TyDi
    or the competition's data crosses a line break, while a passage's title ends in one."""
    before = np.concatenate([[0], np.cumsum(np.frombuffer(context.encode("utf-32-le"), np.uint32) == 10)])
    inside = offsets[..., 0] >= 0
    first = before[np.clip(offsets[..., 0], 0, len(context))]
    last = before[np.clip(np.maximum(offsets[..., 1] - 1, offsets[..., 0]), 0, len(context))]
    return np.stack([np.where(inside, first, -1), np.where(inside, last, -1)], axis=-1)


def window_candidates(
    spans: WindowSpans, row: int, offsets: np.ndarray, context: str, context_index: int
) -> list[Span]:
    """Character spans of one window's best token spans."""
    out = []
    for s, e, score in zip(spans.start[row], spans.end[row], spans.score[row]):
        if s < 0:
            break
        char_start, char_end = int(offsets[s, 0]), int(offsets[e, 1])
        out.append(Span(context[char_start:char_end], char_start, char_end, float(score), context_index))
    return out


def aggregate(
    candidates: Sequence[Span],
    n: int = 20,
    merge: str = "none",
    mode: str = "logits",
) -> list[Span]:
    """The n best spans of one question over all its windows and passages.

    Windows overlap, so the same (context, start, end) can come from two windows: its best score
    is kept. `merge="max"` keeps one span per distinct answer text (its best occurrence); in `prob`
    mode `merge="sum"` adds up the probabilities of every occurrence of the same text."""
    if merge not in ("none", "max", "sum"):
        raise OdqaError(f"unknown merge {merge!r}; choose none, max or sum")
    best_at: dict[tuple[int, int, int], Span] = {}
    for span in candidates:
        key = (span.context_index, span.start, span.end)
        if key not in best_at or span.score > best_at[key].score:
            best_at[key] = span
    spans = [s for s in best_at.values() if s.text.strip()]
    if merge != "none":
        by_text: dict[str, list[Span]] = {}
        for span in spans:
            by_text.setdefault(span.text.strip(), []).append(span)
        merged = []
        for group in by_text.values():
            top = max(group, key=lambda s: s.score)
            if merge == "sum" and len(group) > 1:
                if mode != "prob":
                    raise OdqaError("merge='sum' adds probabilities: use it with mode='prob'")
                total = float(np.log(np.sum(np.exp([s.score for s in group]))))
                top = Span(top.text, top.start, top.end, total, top.context_index)
            merged.append(top)
        spans = merged
    spans.sort(key=lambda s: (-s.score, s.context_index, s.start))
    return spans[:n]


def no_answer_wins(best: Span | None, null_scores: Sequence[float], threshold: float = 0.0) -> bool:
    """SQuAD 2.0 rule: answer nothing when the weakest window's no-answer score beats the best span
    by more than `threshold`."""
    if best is None:
        return True
    return min(null_scores) > best.score + threshold
