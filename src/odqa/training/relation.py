"""Training relation classifiers (KLUE-RE) on the shared loop, and k-fold runs with out-of-fold
predictions for choosing ensemble weights.

One run: examples marked in the chosen input format (`odqa.relation.markers`), the model of
`odqa.relation.model` on any encoder folder, micro-F1 / AUPRC on the evaluation file after every
epoch (the best micro-F1 is kept), the config, data fingerprints and metrics in
`odqa_relation.json` beside the model. `train_kfold` trains one such run per stratified fold,
each scoring the fold it did not see; the out-of-fold predictions cover the whole training file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from pydantic import Field

from odqa.errors import OdqaError
from odqa.relation.data import RelationExample, labels_for, read_label_list, read_relation_file
from odqa.relation.model import RelationModelConfig
from odqa.training.loop import LoopSettings, sample_examples, seed_everything
from odqa.training.task import TrainingTask, run_task, training_record

log = logging.getLogger(__name__)


class RelationTrainingConfig(LoopSettings):
    what = "relation training config"

    model: str
    train: str
    eval: str | None = None
    out: str
    label_list: str | None = None  # relation_list.json; default: the training labels
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    relation: RelationModelConfig = Field(default_factory=RelationModelConfig)
    lr: float = 5e-5
    batch_size: int = 32
    epochs: float = 3.0


def stratified_folds(labels: list[str], folds: int, seed: int) -> np.ndarray:
    """A fold number per example; each label's examples are shuffled and dealt round-robin, so
    every fold holds each label in the proportion of the whole."""
    if folds < 2:
        raise OdqaError(f"k-fold needs at least 2 folds, got {folds}")
    if folds > len(labels):
        raise OdqaError(f"{folds} folds for {len(labels)} examples: too many folds")
    rng = np.random.default_rng(seed)
    assignment = np.zeros(len(labels), dtype=np.int64)
    start = 0
    for label in sorted(set(labels)):
        members = rng.permutation(np.flatnonzero(np.asarray(labels, dtype=object) == label))
        assignment[members] = (start + np.arange(len(members))) % folds
        start += len(members)  # the next label continues the deal where this one stopped
    return assignment


def _relation_settings(config: RelationTrainingConfig, train: list[RelationExample], labels: list[str]):
    from odqa.relation.model import allowed_labels

    types = sorted({e.subject.type for e in train} | {e.object.type for e in train})
    return config.relation.model_copy(
        update={"labels": labels, "types": types, "allowed": allowed_labels(train)}
    ).check()


def train_relation(
    config: RelationTrainingConfig,
    quiet: bool = False,
    resume: bool = True,
    train_examples: list[RelationExample] | None = None,
    extra_predictions: dict[str, list[RelationExample]] | None = None,
) -> dict:
    """Train one relation model into `config.out`. `train_examples` replaces the training file's
    examples (a k-fold split); `extra_predictions` names example sets the best model classifies
    at the end (name → examples; written as `name.predictions.jsonl` in the run folder)."""
    import torch

    from odqa.models.loading import check_model_dir
    from odqa.relation.heads import class_weights
    from odqa.relation.metrics import score_relations
    from odqa.relation.model import RelationClassifier, build_relation_model
    from odqa.relation.predictions import write_predictions

    check_model_dir(config.model)
    config.relation.check()
    listed = read_label_list(config.label_list) if config.label_list else None
    # with a label list, every training label must be in it
    full_train = read_relation_file(config.train, labels=listed, require_labels=True)
    labels = listed or labels_for(full_train)
    train = (
        train_examples
        if train_examples is not None
        else sample_examples(full_train, config.max_train_examples, config.seed)
    )
    eval_examples = (
        sample_examples(
            read_relation_file(config.eval, labels=labels, require_labels=True), config.max_eval_examples, config.seed
        )
        if config.eval
        else []
    )
    settings = _relation_settings(config, train, labels)
    index = {name: i for i, name in enumerate(labels)}
    counts = np.bincount([index[e.label] for e in train], minlength=len(labels))
    seed_everything(config.seed)
    model, tokenizer = build_relation_model(
        config.model, settings, class_weights(counts) if settings.loss == "weighted" else None
    )
    classifier = RelationClassifier(model, tokenizer, settings, device="cpu")
    features = classifier.encode(train)
    targets = np.array([index[e.label] for e in train], dtype=np.int64)
    pairs = classifier.type_pairs(train)
    pad = tokenizer.pad_token_id or 0
    log.info(
        "%d training examples (%d cropped to fit %d tokens)", len(train), features.cropped.sum(), settings.max_length
    )

    def collate(indices):
        tensors = {k: torch.from_numpy(v) for k, v in features.batch(indices, pad).items()}
        tensors["type_pair"] = torch.from_numpy(pairs[indices])
        tensors["labels"] = torch.from_numpy(targets[indices])
        return tensors

    gold = np.array([index[e.label] for e in eval_examples], dtype=np.int64)

    def classifier_for(trained) -> RelationClassifier:
        return RelationClassifier(trained, tokenizer, settings, device=str(next(trained.parameters()).device))

    def evaluate(trained) -> dict:
        probabilities = classifier_for(trained).predict(eval_examples, progress=not quiet)
        scores = score_relations(probabilities, gold, labels)
        return {"micro_f1": scores["micro_f1"], "auprc": scores["auprc"], "accuracy": scores["accuracy"]}

    record = training_record(
        config,
        {"train": config.train, "eval": config.eval, "label_list": config.label_list},
        {"train_examples": len(train), "eval_examples": len(eval_examples), "cropped": int(features.cropped.sum())},
    )

    def save(trained, folder: Path, record: dict) -> None:
        classifier_for(trained).save(folder, record)

    task = TrainingTask(
        model,
        features.lengths,
        collate,
        save,
        record,
        evaluate=evaluate if eval_examples else None,
        score_key="micro_f1",
    )
    state = run_task(task, config, config.out, quiet, resume)
    if extra_predictions and state.get("finished"):
        best = RelationClassifier.load(config.out)
        for name, examples in extra_predictions.items():
            probabilities = best.predict(examples, progress=not quiet)
            write_predictions(
                Path(config.out) / f"{name}.predictions.jsonl", [e.guid for e in examples], probabilities, labels
            )
    return state


def train_kfold(config: RelationTrainingConfig, folds: int, quiet: bool = False, resume: bool = True) -> dict:
    """`folds` runs in `out/fold-<i>`, each trained on the other folds; writes `out/oof.predictions.jsonl`
    (every training example, scored by the run that did not see it) and, with an evaluation file,
    `out/eval.predictions.jsonl` (the fold models' mean). A finished fold is not trained again."""
    from odqa.io.atomic import atomic_write_text
    from odqa.relation.predictions import read_predictions, soft_vote, write_predictions

    examples = sample_examples(
        read_relation_file(config.train, require_labels=True), config.max_train_examples, config.seed
    )
    labels = labels_for(examples, config.label_list)
    assignment = stratified_folds([e.label for e in examples], folds, config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / "kfold.json", json.dumps({"folds": folds, "config": config.to_dict()}, indent=2, ensure_ascii=False)
    )
    evaluation = read_relation_file(config.eval, labels=labels, require_labels=True) if config.eval else []
    states = []
    for fold in range(folds):
        fold_out = out / f"fold-{fold}"
        held = [e for e, f in zip(examples, assignment) if f == fold]
        kept = [e for e, f in zip(examples, assignment) if f != fold]
        extra = {"held_out": held} | ({"eval": evaluation} if evaluation else {})
        done = all((fold_out / f"{name}.predictions.jsonl").exists() for name in extra)
        if done and resume:
            log.info("fold %d already finished", fold)
            continue
        fold_config = config.model_copy(update={"out": str(fold_out), "seed": config.seed + fold})
        states.append(train_relation(fold_config, quiet, resume, train_examples=kept, extra_predictions=extra))
    if not all((out / f"fold-{k}" / "held_out.predictions.jsonl").exists() for k in range(folds)):
        raise OdqaError(f"{out}: not every fold finished (stopped early?); run the same command again to continue")
    guids, rows = [], []
    for fold in range(folds):
        fold_guids, probabilities = read_predictions(out / f"fold-{fold}" / "held_out.predictions.jsonl", labels)
        guids += fold_guids
        rows.append(probabilities)
    write_predictions(out / "oof.predictions.jsonl", guids, np.concatenate(rows), labels)
    if evaluation:
        members = [read_predictions(out / f"fold-{k}" / "eval.predictions.jsonl", labels)[1] for k in range(folds)]
        write_predictions(out / "eval.predictions.jsonl", [e.guid for e in evaluation], soft_vote(members), labels)
    return {"folds": folds, "trained": len(states), "labels": labels}
