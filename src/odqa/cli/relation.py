"""Relation-extraction commands: `odqa re train | predict | calibrate | evaluate | ensemble`.
Registered on the app in `odqa.cli`; thin wrappers over `odqa.relation` and `odqa.training.relation`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from odqa.cli.common import (
    FREEZE_EMBEDDINGS_OPTION,
    FREEZE_LAYERS_OPTION,
    MIXED_PRECISION_OPTION,
    config_file,
    given,
    parse_weights,
)
from odqa.errors import OdqaError
from odqa.runs import log_metrics

group = typer.Typer()
relation = typer.Typer(
    no_args_is_help=True, help="KLUE-RE relation extraction: train, predict, calibrate, evaluate, ensemble."
)
group.add_typer(relation, name="re")


def _training_config(config, model, train, eval_file, out, label_list, options: dict, relation_options: dict):
    """A RelationTrainingConfig from a config file (if any) and the options given on the line."""
    from odqa.training.relation import RelationTrainingConfig

    data = config_file(config)
    data["relation"] = dict(data.get("relation") or {}) | given(**relation_options)
    data |= given(
        model=model,
        train=str(train) if train else None,
        eval=str(eval_file) if eval_file else None,
        out=str(out) if out else None,
        label_list=str(label_list) if label_list else None,
        **options,
    )
    return RelationTrainingConfig.from_dict(data)


def _show_history(state: dict, out: Path) -> None:
    for record in state["history"]:
        scores = record.get("eval") or {}
        shown = ", ".join(f"{k} {v:.2f}" for k, v in scores.items() if isinstance(v, float))
        typer.echo(
            f"epoch {record['epoch']}: loss {record['loss']:.4f}, {record['examples_per_s']:.1f} sentences/s"
            + (f", {shown}" if shown else "")
        )
    typer.echo(f"best model in {out}" + ("" if state.get("finished") else " (stopped early; run again to resume)"))


@relation.command("train")
def train_command(
    model: Optional[str] = typer.Option(None, help="encoder folder (safetensors) or hub id to fine-tune"),
    train: Optional[Path] = typer.Option(None, help="KLUE-RE training file (JSONL, .gz/.xz)"),
    eval_file: Optional[Path] = typer.Option(None, "--eval", help="KLUE-RE file scored (micro-F1, AUPRC) each epoch"),
    out: Optional[Path] = typer.Option(None, help="run folder: the best model, checkpoint-last, settings, metrics"),
    label_list: Optional[Path] = typer.Option(
        None, help="relation_list.json (no_relation first); default: the training labels"
    ),
    config: Optional[Path] = typer.Option(None, help="JSON/YAML RelationTrainingConfig; options override it"),
    folds: Optional[int] = typer.Option(
        None, help="k-fold: one model per stratified fold in OUT/fold-<i>, with out-of-fold predictions"
    ),
    input_format: Optional[str] = typer.Option(
        None, "--format", help="entity, typed, punct, typed-punct (default: '@ * 사람 * … @') or typed-punct-en"
    ),
    question: Optional[bool] = typer.Option(
        None, "--question/--no-question", help="add '이순신과 한산도의 관계는?' as a second segment"
    ),
    pooling: Optional[str] = typer.Option(None, help="entity-start (default), cls or rbert"),
    bilstm: Optional[bool] = typer.Option(None, "--bilstm/--no-bilstm", help="a BiLSTM over the token states"),
    loss: Optional[str] = typer.Option(None, help="ce (default), weighted (1/√frequency) or focal"),
    restrict_types: Optional[bool] = typer.Option(
        None, "--restrict-types/--all-labels", help="rule out labels never seen with the entity-type pair"
    ),
    max_length: Optional[int] = typer.Option(None, help="window in tokens (longer sentences are cropped)"),
    epochs: Optional[float] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None, help="peak learning rate"),
    max_steps: Optional[int] = typer.Option(None, help="stop after this many optimizer steps"),
    max_minutes: Optional[float] = typer.Option(None, help="stop (after saving) when this much time has passed"),
    max_train_examples: Optional[int] = typer.Option(None, help="a seeded sample of the training sentences"),
    max_eval_examples: Optional[int] = typer.Option(None, help="a seeded sample of the evaluation sentences"),
    freeze_embeddings: Optional[bool] = FREEZE_EMBEDDINGS_OPTION,
    freeze_layers: Optional[int] = FREEZE_LAYERS_OPTION,
    seed: Optional[int] = typer.Option(None),
    mixed_precision: Optional[str] = MIXED_PRECISION_OPTION,
    curriculum: Optional[str] = typer.Option(
        None, help="length: short sentences first (for --curriculum-epochs epochs, in 10 buckets)"
    ),
    curriculum_epochs: Optional[float] = typer.Option(None, help="epochs trained in curriculum order (default 1)"),
    fresh: bool = typer.Option(False, help="ignore checkpoint-last in --out and start over"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Fine-tune a relation classifier (or, with --folds, one per fold); resumes unless --fresh."""
    from odqa.training.relation import train_kfold, train_relation

    cfg = _training_config(
        config,
        model,
        train,
        eval_file,
        out,
        label_list,
        given(
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            max_steps=max_steps,
            max_minutes=max_minutes,
            max_train_examples=max_train_examples,
            max_eval_examples=max_eval_examples,
            freeze_embeddings=freeze_embeddings,
            freeze_layers=freeze_layers,
            seed=seed,
            mixed_precision=mixed_precision,
            curriculum=curriculum,
            curriculum_epochs=curriculum_epochs,
        ),
        dict(
            format=input_format,
            question=question,
            pooling=pooling,
            bilstm=bilstm,
            loss=loss,
            restrict_types=restrict_types,
            max_length=max_length,
        ),
    )
    if folds is None:
        _show_history(train_relation(cfg, quiet=quiet, resume=not fresh), Path(cfg.out))
        return
    summary = train_kfold(cfg, folds, quiet=quiet, resume=not fresh)
    typer.echo(
        f"{summary['folds']} folds in {cfg.out} ({summary['trained']} trained in this run); "
        f"out-of-fold predictions in {Path(cfg.out) / 'oof.predictions.jsonl'}"
    )


@relation.command("predict")
def predict_command(
    model: Path = typer.Option(..., help="relation model folder (from `odqa re train`)"),
    input_file: Path = typer.Option(..., "--input", help="KLUE-RE JSONL: sentence, subject_entity, object_entity"),
    out: Path = typer.Option(..., help="predictions JSONL: guid, label and every label's probability"),
    batch_size: int = typer.Option(64),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 … (default: cuda when available)"),
    int8: bool = typer.Option(
        False, "--int8", help="quantize the linear layers to int8 (CPU only; faster, slightly less accurate)"
    ),
    bf16: bool = typer.Option(
        False, "--bf16", help="predict in bfloat16 (fast on GPUs and on CPUs with AVX512-BF16 or AMX; slow on others)"
    ),
    restrict_types: Optional[bool] = typer.Option(
        None,
        "--restrict-types/--all-labels",
        help="rule out labels never seen with the entity-type pair in training (default: as the model was trained)",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Classify the relation between each sentence's subject and object."""
    import time

    from odqa.relation.data import read_relation_file
    from odqa.relation.model import RelationClassifier
    from odqa.relation.predictions import write_predictions

    if batch_size < 1:
        raise OdqaError(f"--batch-size must be at least 1, got {batch_size}")
    classifier = RelationClassifier.load(model, device=device, int8=int8, bf16=bf16)
    if restrict_types is not None:
        classifier.restrict_types(restrict_types)
    examples = read_relation_file(input_file)
    started = time.perf_counter()
    probabilities = classifier.predict(examples, batch_size=batch_size, progress=not quiet)
    seconds = time.perf_counter() - started
    write_predictions(out, [e.guid for e in examples], probabilities, classifier.labels)
    typer.echo(f"{len(examples)} sentences classified in {seconds:.1f} s → {out}")


@relation.command("calibrate")
def calibrate_command(
    model: Path = typer.Option(..., help="relation model folder; its odqa_relation.json keeps the calibration"),
    held_out: Optional[Path] = typer.Option(
        None,
        "--held-out",
        help="KLUE-RE file with gold labels the model was not trained on (never the set it is scored on)",
    ),
    reset: bool = typer.Option(False, "--reset", help="remove the model's calibration"),
    batch_size: int = typer.Option(64),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 … (default: cuda when available)"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Fit a temperature and a bias per label on held-out labelled sentences (by their likelihood),
    applied to every later prediction of the model: corrects an under-confident, biased model."""
    from odqa.relation.calibration import fit_on
    from odqa.relation.data import read_relation_file
    from odqa.relation.metrics import micro_f1
    from odqa.relation.model import RelationClassifier

    if reset == (held_out is not None):
        raise OdqaError("give --held-out (a labelled file to fit the calibration on) or --reset, not both")
    classifier = RelationClassifier.load(model, device=device).calibrate(None)
    if reset:
        classifier.save_settings(model)
        typer.echo(f"calibration removed from {model}")
        return
    examples = read_relation_file(held_out, labels=classifier.labels, require_labels=True)
    fitted, raw, gold = fit_on(classifier, examples, batch_size, progress=not quiet)
    classifier.calibrate(fitted, f"{held_out} ({len(examples)} sentences)")
    classifier.save_settings(model)
    before = micro_f1(raw.argmax(1), gold, classifier.labels)
    after = micro_f1(classifier.predict(examples, batch_size=batch_size).argmax(1), gold, classifier.labels)
    low, high = min(fitted["bias"]), max(fitted["bias"])
    typer.echo(
        f"temperature {fitted['temperature']:.2f}, label bias {low:+.2f} to {high:+.2f}: "
        f"held-out NLL {fitted['nll_before']:.3f} → {fitted['nll_after']:.3f}, micro-F1 {before:.1f} → {after:.1f} "
        f"(on the sentences it was fitted to); saved in {model}"
    )


def _prediction_labels(path: Path, label_list: Optional[Path]) -> list[str] | None:
    """The label list: the given relation_list.json, else the one a predictions file's
    probabilities carry (None when it has only labels)."""
    from odqa.relation.data import read_label_list

    if label_list is not None:
        return read_label_list(label_list)
    if not path.exists():
        raise OdqaError(f"predictions file not found: {path}")
    from odqa.io.files import iter_jsonl

    first = next(iter_jsonl(path), (0, {}))[1]
    probabilities = first.get("probabilities")
    return list(probabilities) if isinstance(probabilities, dict) and probabilities else None


@relation.command("evaluate")
def evaluate_command(
    predictions: Path = typer.Option(..., help="predictions JSONL (from `odqa re predict`)"),
    gold: Path = typer.Option(..., help="KLUE-RE file with the gold labels"),
    label_list: Optional[Path] = typer.Option(None, help="relation_list.json (default: the gold file's labels)"),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write every score (per label too) here"),
    per_label: bool = typer.Option(False, "--per-label", help="print precision/recall/F1 of every label"),
) -> None:
    """KLUE's micro-F1 (without no_relation) and AUPRC, per-label scores and the common confusions."""
    import numpy as np

    from odqa.io.atomic import atomic_write_text
    from odqa.relation.data import labels_for, read_relation_file
    from odqa.relation.metrics import score_relations
    from odqa.relation.predictions import aligned

    labels = _prediction_labels(predictions, label_list)
    examples = read_relation_file(gold, labels=labels, require_labels=True)
    labels = labels or labels_for(examples)
    probabilities = aligned(predictions, examples, labels)
    index = {name: i for i, name in enumerate(labels)}
    scores = score_relations(probabilities, np.array([index[e.label] for e in examples]), labels)
    log_metrics({key: scores[key] for key in ("examples", "micro_f1", "auprc", "accuracy")})
    typer.echo(
        f"{scores['examples']} sentences: micro-F1 {scores['micro_f1']:.2f} (without no_relation), "
        f"AUPRC {scores['auprc']:.2f}, accuracy {scores['accuracy']:.2f}"
    )
    if per_label:
        for row in scores["per_label"]:
            typer.echo(
                f"  {row['label']:<40} P {row['precision']:6.2f}  R {row['recall']:6.2f}  "
                f"F1 {row['f1']:6.2f}  n {row['support']}"
            )
    if scores["confusions"]:
        typer.echo("most frequent confusions (gold → predicted):")
        for row in scores["confusions"][:5]:
            typer.echo(f"  {row['gold']} → {row['predicted']}: {row['count']}")
    if json_out:
        atomic_write_text(json_out, json.dumps(scores, ensure_ascii=False, indent=2))


@relation.command("ensemble")
def ensemble_command(
    predictions: list[Path] = typer.Option(..., help="one member's predictions on the set to vote; repeat"),
    out: Path = typer.Option(..., help="the voted predictions JSONL"),
    held_out: Optional[list[Path]] = typer.Option(
        None, help="each member's predictions on held-out data (e.g. oof.predictions.jsonl), same order"
    ),
    held_out_gold: Optional[Path] = typer.Option(None, help="KLUE-RE file with the held-out gold labels"),
    weights: Optional[str] = typer.Option(None, help="fixed weights such as 2,1,1 (instead of choosing them)"),
    label_list: Optional[Path] = typer.Option(None, help="relation_list.json (default: the members' labels)"),
) -> None:
    """Soft voting: the weighted mean of the members' probabilities. Weights are chosen on the
    held-out predictions (micro-F1, then AUPRC) when given, else fixed or equal."""
    import numpy as np

    from odqa.relation.data import read_relation_file
    from odqa.relation.predictions import aligned, choose_weights, read_predictions, soft_vote, write_predictions

    if held_out and len(held_out) != len(predictions):
        raise OdqaError(f"{len(predictions)} --predictions but {len(held_out)} --held-out: give one per member")
    if held_out and held_out_gold is None:
        raise OdqaError("--held-out needs --held-out-gold, the file whose labels they predict")
    if held_out and weights:
        raise OdqaError("give either --weights or --held-out (to choose them), not both")
    labels = _prediction_labels(predictions[0], label_list)
    if labels is None:
        raise OdqaError(f"{predictions[0]}: no probabilities to vote; give --label-list")
    guids, _ = read_predictions(predictions[0], labels)
    members = [read_predictions(path, labels) for path in predictions]
    for path, (member_guids, _) in zip(predictions, members):
        if member_guids != guids:
            raise OdqaError(f"{path} predicts other sentences (or another order) than {predictions[0]}")
    chosen = parse_weights(weights, "--weights")
    if held_out:
        gold = read_relation_file(held_out_gold, labels=labels, require_labels=True)
        index = {name: i for i, name in enumerate(labels)}
        chosen = choose_weights(
            [aligned(path, gold, labels) for path in held_out], np.array([index[e.label] for e in gold]), labels
        )
        typer.echo("weights chosen on the held-out predictions: " + ", ".join(f"{w:.2f}" for w in chosen))
    voted = soft_vote([probabilities for _, probabilities in members], chosen)
    write_predictions(out, guids, voted, labels)
    typer.echo(f"{len(predictions)} members voted on {len(guids)} sentences → {out}")
