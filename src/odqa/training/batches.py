"""Which items go into which batch, in which order: shuffled batches of similar lengths, the
curriculum's easiest-first epochs (`odqa.training.curriculum`), and each process's share when
several train together. The loop (`odqa.training.loop`) asks for an epoch's batches here."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from odqa.errors import OdqaError

if TYPE_CHECKING:
    from odqa.training.loop import LoopSettings


def length_grouped_batches(lengths: np.ndarray, batch_size: int, seed: int, group: bool = True) -> list[np.ndarray]:
    """Shuffled batches; with `group`, each run of 50 batches is sorted by length first so that a
    batch holds similar lengths (the Trainer's group_by_length idea), then batches are shuffled."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    if group:
        mega = batch_size * 50
        order = np.concatenate(
            [
                chunk[np.argsort(-lengths[chunk], kind="stable")]
                for chunk in np.array_split(order, max(1, math.ceil(len(order) / mega)))
            ]
        )
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def epoch_batches(lengths: np.ndarray, settings: LoopSettings, epoch: int, difficulty: np.ndarray | None):
    """Epoch `epoch`'s batches: in curriculum order (easiest bucket first) while the curriculum
    lasts, shuffled and length-grouped otherwise. A fractional `curriculum_epochs` orders only the
    first part of its last epoch: that part's easiest-first batches, then the rest shuffled."""
    from odqa.training.curriculum import curriculum_batches

    seed = settings.seed + epoch
    shuffled = length_grouped_batches(lengths, settings.batch_size, seed, settings.group_by_length)
    if difficulty is None or epoch >= settings.curriculum_epochs:
        return shuffled
    ordered = curriculum_batches(
        difficulty, lengths, settings.batch_size, seed, settings.curriculum_buckets, settings.group_by_length
    )
    share = settings.curriculum_epochs - epoch
    if share >= 1:
        return ordered
    # the curriculum's easiest items, as many as `share` of an epoch, first; every item still once
    head = ordered[: round(share * len(ordered))]
    taken = np.zeros(len(lengths), dtype=bool)
    for batch in head:
        taken[batch] = True
    rest = np.flatnonzero(~taken)
    tail = length_grouped_batches(lengths[rest], settings.batch_size, seed, settings.group_by_length)
    return head + [rest[batch] for batch in tail]


def item_difficulty(settings: LoopSettings, lengths: np.ndarray, difficulty: np.ndarray | None) -> np.ndarray | None:
    """What the curriculum orders the items by (None: no curriculum): their lengths, or the given
    difficulties (a difficulty file's scores), checked."""
    from odqa.training.curriculum import LENGTH, check_curriculum

    if settings.curriculum is None:
        return None
    check_curriculum(settings.curriculum, settings.curriculum_buckets, settings.curriculum_epochs)
    if settings.curriculum == LENGTH:
        return np.asarray(lengths, dtype=np.float64)
    if difficulty is None:
        raise OdqaError(f"this trainer cannot order its items by a difficulty file ({settings.curriculum}); use length")
    return np.asarray(difficulty, dtype=np.float64)


def shard_batches(batches: Sequence, rank: int, processes: int) -> Sequence:
    """Process `rank`'s share of an epoch's batches: every `processes`-th one, the same count for
    every process (a remainder that not all could take is left out, as DDP needs equal steps)."""
    if processes == 1:
        return batches
    return batches[rank : len(batches) // processes * processes : processes]


class BatchList:
    """A map-style dataset whose item i is already a collated batch (so accelerate can shard it)."""

    def __init__(self, batches: Sequence[np.ndarray], collate: Callable[[np.ndarray], dict]):
        self.batches, self.collate = batches, collate

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict:
        return self.collate(self.batches[i])
