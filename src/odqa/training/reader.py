"""Fine-tuning an extractive reader on SQuAD-family files.

Any encoder `AutoModelForQuestionAnswering` can load (a local folder or a hub id, safetensors only,
no remote code) becomes a reader: windows with labels from `odqa.reader.features`, the shared
accelerate loop, EM/F1 on the evaluation file after every epoch with the same decoding `odqa read`
uses, and the best model written to `out/` with its settings, data fingerprints, metrics and
library versions in `odqa_reader.json`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from pydantic import Field

from odqa.errors import OdqaError
from odqa.io.squad import QAExample, read_qa_files
from odqa.models.loading import check_model_dir
from odqa.reader.augment import AugmentConfig, augment_windows, check_augmentations
from odqa.reader.model import Reader, ReaderConfig
from odqa.training.curriculum import LENGTH, check_curriculum, example_difficulty, window_difficulty
from odqa.training.loop import LoopSettings, sample_examples, seed_everything
from odqa.training.negatives import RetrievedNegatives
from odqa.training.task import TrainingTask, run_task, training_record

log = logging.getLogger(__name__)


class ReaderTrainingConfig(LoopSettings):
    what = "reader training config"

    model: str
    train: list[str]
    eval: str | None = None
    out: str
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    metric: str = "squad"
    negative_windows: float | None = None  # share of the windows without the answer to train on (None: all)
    head: str = "linear"  # span head (odqa.reader.heads): linear, cnn, bilstm
    head_options: dict = Field(default_factory=dict)
    augment: list[AugmentConfig] = Field(default_factory=list)  # masked copies of windows (odqa.reader.augment)
    negatives: RetrievedNegatives | None = None  # no-answer windows from retrieved passages (odqa.training.negatives)
    reader: ReaderConfig = Field(default_factory=ReaderConfig)


def sample_negative_windows(windows, share: float | None, seed: int):
    """All windows that hold their answer, and a seeded `share` of those that do not (no-answer
    windows are most windows of long contexts; fewer of them train a span reader faster)."""
    if share is None or share >= 1:
        return windows
    if share < 0:
        raise OdqaError(f"negative_windows must be between 0 and 1, got {share}")
    negative = np.flatnonzero(windows.start_positions == 0)
    rng = np.random.default_rng(seed)
    kept = rng.choice(negative, size=round(share * len(negative)), replace=False)
    return windows.subset(np.sort(np.concatenate([np.flatnonzero(windows.start_positions != 0), kept])))


def negative_windows(tokenizer, config: ReaderTrainingConfig, examples: list[QAExample]):
    """No-answer windows over each question's retrieved passages that do not hold its answer,
    each window pointing at its question (`pair`), as the gold windows do."""
    import dataclasses

    from odqa.reader.features import build_windows
    from odqa.training.negatives import retrieved_negatives

    found = retrieved_negatives(config.negatives, [e.question for e in examples], [e.answer_texts for e in examples])
    question_of = np.asarray([qi for qi, _ in found], dtype=np.int64)
    windows = build_windows(
        tokenizer,
        [examples[qi].question for qi, _ in found],
        [text for _, text in found],
        config.reader.windows,
        answers=[None] * len(found),
    )
    log.info("%d retrieved negative passages → %d no-answer windows", len(found), len(windows))
    return dataclasses.replace(windows, pair=question_of[windows.pair])


def read_examples(reader: Reader, examples: list[QAExample], progress: bool = False):
    """The reader over each example's own context: (predictions {id: text}, results)."""
    results = reader.read([e.question for e in examples], [[e.context] for e in examples], progress=progress)
    return {e.id: r.text for e, r in zip(examples, results)}, results


def evaluate_reader(reader: Reader, examples: list[QAExample], metric: str = "squad", progress: bool = False) -> dict:
    from odqa.metrics import score_predictions

    predictions, _ = read_examples(reader, examples, progress)
    scores = score_predictions(predictions, {e.id: e.answer_texts for e in examples}, metric)
    scores.pop("per_question")
    return scores


def train_reader(config: ReaderTrainingConfig, quiet: bool = False, resume: bool = True) -> dict:
    import torch

    from odqa.models.tokenizer import load_tokenizer
    from odqa.reader.features import build_windows
    from odqa.reader.heads import build_span_model, check_head

    check_head(config.head)
    check_augmentations(config.augment)
    check_curriculum(config.curriculum, config.curriculum_buckets, config.curriculum_epochs)

    check_model_dir(config.model)
    train_examples = sample_examples(
        read_qa_files(config.train, require_answers=True), config.max_train_examples, config.seed
    )
    eval_examples = (
        sample_examples(read_qa_files([config.eval]), config.max_eval_examples, config.seed) if config.eval else []
    )
    seed_everything(config.seed)
    tokenizer = load_tokenizer(config.model)
    model = build_span_model(config.model, config.head, config.head_options)

    windows = build_windows(
        tokenizer,
        [e.question for e in train_examples],
        [e.context for e in train_examples],
        config.reader.windows,
        answers=[(e.answers[0].start, e.answers[0].end) for e in train_examples],
    )
    difficulty = None
    if config.curriculum not in (None, LENGTH):
        difficulty = example_difficulty(config.curriculum, [e.id for e in train_examples])
    windows = sample_negative_windows(windows, config.negative_windows, config.seed)
    if config.negatives is not None:
        windows = windows.extended(negative_windows(tokenizer, config, train_examples))
    windows = augment_windows(windows, config.augment, tokenizer.mask_token_id, config.seed)
    log.info("%d training examples → %d windows", len(train_examples), len(windows))
    pad_id = tokenizer.pad_token_id or 0

    def collate(indices):
        from odqa.reader.features import pad_batch

        batch = pad_batch(windows, indices, pad_id)
        tensors = {k: torch.from_numpy(v) for k, v in batch.items() if k != "offsets"}
        tensors["start_positions"] = torch.from_numpy(windows.start_positions[indices])
        tensors["end_positions"] = torch.from_numpy(windows.end_positions[indices])
        return tensors

    record = training_record(
        config,
        {"train": config.train, "eval": config.eval},
        {"train_examples": len(train_examples), "train_windows": len(windows), "eval_examples": len(eval_examples)},
    )

    def evaluate(trained) -> dict:
        reader = Reader(trained, tokenizer, config.reader, device=str(next(trained.parameters()).device))
        return evaluate_reader(reader, eval_examples, config.metric, progress=not quiet)

    def save(trained, folder: Path, record: dict) -> None:
        Reader(trained, tokenizer, config.reader, device=str(next(trained.parameters()).device)).save(folder, record)

    task = TrainingTask(
        model,
        windows.lengths,
        collate,
        save,
        record,
        evaluate=evaluate if eval_examples else None,
        score_key="f1" if config.metric != "klue" else "rouge_w",
        difficulty=window_difficulty(difficulty, windows.pair) if difficulty is not None else None,
    )
    return run_task(task, config, config.out, quiet, resume)
