"""Relation predictions on disk, and soft voting over them.

A predictions file holds one JSON object per line: `{guid, label, probabilities: {label: p}}` —
self-describing, so models with label lists in another order can still be compared and voted.
An ensemble averages probabilities with weights; `choose_weights` picks them on held-out
predictions (out-of-fold, or a part of the training data no member saw), never on the set the
ensemble is then scored on."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from odqa.errors import OdqaError
from odqa.relation.data import RelationExample
from odqa.relation.metrics import auprc, micro_f1


def write_predictions(path: str | Path, guids: list[str], probabilities: np.ndarray, labels: list[str]) -> None:
    """Atomically write one line per example: the most probable label and every probability."""
    from odqa.io.atomic import atomic_write_text

    lines = []
    for guid, row in zip(guids, probabilities):
        lines.append(
            json.dumps(
                {
                    "guid": guid,
                    "label": labels[int(row.argmax())],
                    "probabilities": {name: round(float(p), 6) for name, p in zip(labels, row)},
                },
                ensure_ascii=False,
            )
        )
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_predictions(path: str | Path, labels: list[str]) -> tuple[list[str], np.ndarray]:
    """(guids, probabilities in `labels` order) of a predictions file; a line without
    probabilities counts as probability 1 on its label."""
    from odqa.io.files import iter_jsonl

    path = Path(path)
    if not path.exists():
        raise OdqaError(f"predictions file not found: {path}")
    index = {name: i for i, name in enumerate(labels)}
    guids, rows = [], []
    for number, raw in iter_jsonl(path):
        if "guid" not in raw:
            raise OdqaError(f"{path}:{number}: expected an object with guid, label and probabilities")
        row = np.zeros(len(labels), dtype=np.float64)
        probabilities = raw.get("probabilities")
        if isinstance(probabilities, dict):
            unknown = sorted(set(probabilities) - set(index))
            if unknown:
                raise OdqaError(f"{path}:{number}: unknown label {unknown[0]!r} in probabilities")
            for name, p in probabilities.items():
                row[index[name]] = float(p)
        elif raw.get("label") in index:
            row[index[raw["label"]]] = 1.0
        else:
            raise OdqaError(f"{path}:{number}: {raw['guid']}: unknown label {raw.get('label')!r}")
        guids.append(str(raw["guid"]))
        rows.append(row)
    if not rows:
        raise OdqaError(f"{path}: no predictions")
    return guids, np.stack(rows)


def aligned(path: str | Path, examples: list[RelationExample], labels: list[str]) -> np.ndarray:
    """A predictions file's probabilities in the order of `examples`; every example must have one."""
    guids, probabilities = read_predictions(path, labels)
    position = {g: i for i, g in enumerate(guids)}
    missing = [e.guid for e in examples if e.guid not in position]
    if missing:
        raise OdqaError(f"{path}: no prediction for {len(missing)} of {len(examples)} examples (e.g. {missing[0]})")
    return probabilities[[position[e.guid] for e in examples]]


def soft_vote(members: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    """The weighted mean of the members' probabilities (equal weights by default)."""
    if not members:
        raise OdqaError("an ensemble needs at least one member")
    shapes = {m.shape for m in members}
    if len(shapes) != 1:
        raise OdqaError(f"ensemble members disagree in shape: {sorted(shapes)}")
    weights = np.ones(len(members)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(weights) != len(members) or (weights < 0).any() or weights.sum() <= 0:
        raise OdqaError(
            f"need one non-negative weight per member ({len(members)}), not all zero; got {weights.tolist()}"
        )
    return np.tensordot(weights / weights.sum(), np.stack(members), axes=1)


def choose_weights(
    members: list[np.ndarray], gold: np.ndarray, labels: list[str], steps: int = 4, rounds: int = 3
) -> list[float]:
    """Weights (multiples of 1/steps, coordinate ascent from equal weights) that maximise the
    held-out micro-F1, AUPRC breaking ties. With one member: [1.0]."""
    if len(members) == 1:
        return [1.0]

    def score(weights) -> tuple[float, float]:
        if sum(weights) == 0:
            return (-1.0, -1.0)
        voted = soft_vote(members, weights)
        return micro_f1(voted.argmax(1), gold, labels), auprc(voted, gold)

    best = [1.0] * len(members)
    best_score = score(best)
    grid = [i / steps for i in range(0, 2 * steps + 1)]
    for _ in range(rounds):
        improved = False
        for member, value in itertools.product(range(len(members)), grid):
            trial = list(best)
            trial[member] = value
            trial_score = score(trial)
            if trial_score > best_score:
                best, best_score, improved = trial, trial_score, True
        if not improved:
            break
    total = sum(best)
    return [w / total for w in best]
