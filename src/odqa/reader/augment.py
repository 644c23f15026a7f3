"""Named, seeded augmentations of a reader's training windows (the competition teams' context
masking). Each adds masked copies of a `share` of the windows: `mask` replaces a `rate` of the
context tokens, one by one, with the tokenizer's mask token; `span-mask` masks runs of tokens
(lengths drawn as SpanBERT does, geometric with mean ~3, at most 10) until `rate` is reached. The
question, special tokens and every token of the answer are never touched, so the labels stay true.

A new augmentation is a function (windows, chosen window indices, rate, mask id, rng) → the
masked input ids of those windows, added to `AUGMENTATIONS`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from odqa.errors import OdqaError


class AugmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    share: float = Field(0.5, description="share of the training windows that get a masked copy")
    rate: float = Field(0.15, description="share of each copy's maskable context tokens masked")


def maskable(windows, w: int) -> np.ndarray:
    """Positions of window w's context tokens outside its answer (labels are token positions)."""
    inside = windows.offsets[w][:, 0] >= 0
    if windows.start_positions is not None and windows.start_positions[w] > 0:
        inside[windows.start_positions[w] : windows.end_positions[w] + 1] = False
    return np.flatnonzero(inside)


def _token_mask(windows, chosen, rate, mask_id, rng) -> list[np.ndarray]:
    out = []
    for w in chosen:
        ids = np.array(windows.input_ids[w], copy=True)
        candidates = maskable(windows, w)
        n = round(rate * len(candidates))
        ids[rng.choice(candidates, size=n, replace=False)] = mask_id
        out.append(ids)
    return out


def _span_mask(windows, chosen, rate, mask_id, rng, p: float = 0.2, longest: int = 10) -> list[np.ndarray]:
    out = []
    for w in chosen:
        ids = np.array(windows.input_ids[w], copy=True)
        candidates = maskable(windows, w)
        allowed = np.zeros(len(ids), dtype=bool)
        allowed[candidates] = True
        goal, masked = round(rate * len(candidates)), 0
        for _ in range(4 * len(candidates) + 1):  # bounded: a span may land on few allowed tokens
            if masked >= goal or not len(candidates):
                break
            length = min(int(rng.geometric(p)), longest, goal - masked)
            start = int(rng.choice(candidates))
            span = np.arange(start, min(start + length, len(ids)))
            span = span[allowed[span]]
            ids[span] = mask_id
            allowed[span] = False
            masked += len(span)
        out.append(ids)
    return out


AUGMENTATIONS: dict[str, Callable] = {"mask": _token_mask, "span-mask": _span_mask}


def check_augmentations(augment: list[AugmentConfig]) -> None:
    for a in augment:
        if a.name not in AUGMENTATIONS:
            raise OdqaError(f"unknown augmentation {a.name!r}; choose one of {', '.join(AUGMENTATIONS)}")
        for what in ("share", "rate"):
            value = getattr(a, what)
            if not 0 <= value <= 1:
                raise OdqaError(f"augmentation {a.name!r}: {what} must be between 0 and 1, got {value}")


def augment_windows(windows, augment: list[AugmentConfig], mask_id: int | None, seed: int):
    """The windows followed by each augmentation's masked copies (same labels and offsets), seeded."""
    check_augmentations(augment)
    if not augment:
        return windows
    if mask_id is None:
        raise OdqaError("masking augmentations need a tokenizer with a mask token; this one has none")
    ids, rows = list(windows.input_ids), [np.arange(len(windows))]
    for n, a in enumerate(augment):
        rng = np.random.default_rng([seed, n])
        chosen = np.sort(rng.choice(len(windows), size=round(a.share * len(windows)), replace=False))
        ids += AUGMENTATIONS[a.name](windows, chosen, a.rate, mask_id, rng)
        rows.append(chosen)
    # The copies keep their window's offsets, pair and labels: only the input ids differ.
    return dataclasses.replace(windows.subset(np.concatenate(rows)), input_ids=ids)
