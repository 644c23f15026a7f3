"""A trainer as a small spec on the shared loop (`odqa.training.loop`): what to optimise, how to
batch it, what to save. The reader, bi-encoder, reranker and masked-LM trainers each build one
`TrainingTask` from their data and hand it to `run_task`."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from odqa.fingerprints import file_fingerprint
from odqa.io.atomic import atomic_write_text
from odqa.runs import library_versions
from odqa.training.loop import LoopSettings, save_into, train


@dataclass
class TrainingTask:
    """One trainer as a spec on the shared loop: the model to optimise (its forward pass goes
    through the loop's wrapper), one length per training item, `collate(indices) -> tensors`,
    and `save(trained, folder, record)` that writes the model folder (the loop calls it with the
    best model so far, into a temporary folder moved into place). `record` (from
    `training_record`) is written beside the model with the metrics. Optional: `step` when the
    loss is not `model(**batch).loss`, `evaluate(trained) -> metrics` and the `score_key` that
    decides the best, `unused_parameters` when the loss does not reach every weight, `difficulty`
    per item for a curriculum from a difficulty file (`odqa.training.curriculum`)."""

    model: object
    lengths: np.ndarray
    collate: Callable[[np.ndarray], dict]
    save: Callable[[object, Path, dict], None]
    record: dict
    step: Callable[[object, dict, object], object] | None = None
    evaluate: Callable[[object], dict] | None = None
    score_key: str | None = None
    unused_parameters: bool = False
    difficulty: np.ndarray | None = None


def training_record(config: LoopSettings, data: dict, counts: dict) -> dict:
    """What a saved model says about its training: the config, fingerprints of its data files
    (`data`: name → a path, a list of paths, or None), counts, library versions."""

    def fingerprints(value):
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            return [fingerprints(v) for v in value]
        return file_fingerprint(value)

    return {
        "training": config.to_dict(),
        "data": {name: fingerprints(value) for name, value in data.items()},
        "counts": counts,
        "versions": library_versions(),
    }


def run_task(task: TrainingTask, settings: LoopSettings, out: str | Path, quiet: bool, resume: bool) -> dict:
    """Train `task` under `settings` into `out`: the config it ran with is written first, the best
    model as it goes, the trainer state at the end."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "training_config.json", json.dumps(settings.to_dict(), ensure_ascii=False, indent=2))

    def save_best(trained, metrics: dict) -> None:
        save_into(out, lambda folder: task.save(trained, folder, {**task.record, "metrics": metrics}))
        trained.train()

    return train(
        task.model,
        task.lengths,
        task.collate,
        settings,
        out,
        evaluate=task.evaluate,
        score_key=task.score_key,
        save_best=save_best,
        resume=resume,
        quiet=quiet,
        step=task.step,
        unused_parameters=task.unused_parameters,
        difficulty=task.difficulty,
    )
