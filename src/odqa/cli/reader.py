"""Reader commands of the `odqa` command line: train-reader, read, evaluate-reader, pretrain-mlm.
Registered on the app in `odqa.cli`; thin wrappers over `odqa.reader` and `odqa.training`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from odqa.cli.common import (
    FREEZE_EMBEDDINGS_OPTION,
    FREEZE_LAYERS_OPTION,
    MIXED_PRECISION_OPTION,
    SAVE_STEPS_OPTION,
    config_file,
    given,
    model_of_predictions,
    warn_if_trained_on,
)
from odqa.errors import OdqaError
from odqa.runs import log_metrics

group = typer.Typer()


@group.command("train-reader")
def train_reader_command(
    model: str = typer.Option(..., help="encoder to fine-tune: a local folder (safetensors) or a hub id"),
    train: list[Path] = typer.Option(..., help="SQuAD-format training file(s); repeat the option for several"),
    eval_file: Optional[Path] = typer.Option(None, "--eval", help="SQuAD-format file scored (EM/F1) after each epoch"),
    out: Path = typer.Option(..., help="run folder: the best model, checkpoint-last, settings and metrics"),
    config: Optional[Path] = typer.Option(None, help="JSON/YAML ReaderTrainingConfig; options below override it"),
    epochs: Optional[float] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    grad_accum: Optional[int] = typer.Option(None, help="gradient accumulation steps"),
    lr: Optional[float] = typer.Option(None, help="peak learning rate"),
    max_length: Optional[int] = typer.Option(None, help="window length in tokens"),
    stride: Optional[int] = typer.Option(None, help="overlap between windows in tokens"),
    max_steps: Optional[int] = typer.Option(None, help="stop after this many optimizer steps"),
    max_minutes: Optional[float] = typer.Option(None, help="stop (after saving) when this much time has passed"),
    metric: Optional[str] = typer.Option(None, help="squad, korquad or klue"),
    mixed_precision: Optional[str] = MIXED_PRECISION_OPTION,
    seed: Optional[int] = typer.Option(None, help="seed of the new head, the sampling and the batch order (42)"),
    max_train_examples: Optional[int] = typer.Option(None, help="a seeded sample of the training questions"),
    max_eval_examples: Optional[int] = typer.Option(None, help="a seeded sample of the evaluation questions"),
    negative_windows: Optional[float] = typer.Option(
        None, help="share of windows without the answer to train on (default: all)"
    ),
    save_steps: Optional[int] = SAVE_STEPS_OPTION,
    freeze_embeddings: Optional[bool] = FREEZE_EMBEDDINGS_OPTION,
    freeze_layers: Optional[int] = FREEZE_LAYERS_OPTION,
    head: Optional[str] = typer.Option(None, help="span head over the encoder: linear (default), cnn or bilstm"),
    augment: Optional[list[str]] = typer.Option(
        None, help="NAME[:SHARE[:RATE]]: add masked copies of windows (mask, span-mask); repeatable"
    ),
    negatives_index: Optional[Path] = typer.Option(
        None, help="train on no-answer windows of passages this index retrieves for each question without its answer"
    ),
    negatives_per_question: Optional[int] = typer.Option(None, help="retrieved negative passages per question (1)"),
    negatives_k: Optional[int] = typer.Option(None, help="passages searched for the negatives (10)"),
    curriculum: Optional[str] = typer.Option(
        None,
        help="easy examples first: length (short windows first) or a difficulty file from `odqa difficulty`",
    ),
    curriculum_epochs: Optional[float] = typer.Option(
        None, help="epochs trained in curriculum order (default 1; below the run's epochs so the hard ones are seen)"
    ),
    curriculum_buckets: Optional[int] = typer.Option(None, help="difficulty buckets, trained easiest first (10)"),
    fresh: bool = typer.Option(False, help="ignore checkpoint-last in --out and start over"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Fine-tune an extractive reader; resumes from OUT/checkpoint-last unless --fresh."""
    from odqa.training.reader import ReaderTrainingConfig, train_reader

    data = config_file(config)
    reader = dict(data.get("reader") or {}) | given(max_length=max_length, stride=stride)
    data |= given(
        model=model,
        train=[str(p) for p in train],
        eval=str(eval_file) if eval_file else None,
        out=str(out),
        epochs=epochs,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lr=lr,
        max_steps=max_steps,
        max_minutes=max_minutes,
        metric=metric,
        mixed_precision=mixed_precision,
        seed=seed,
        max_train_examples=max_train_examples,
        max_eval_examples=max_eval_examples,
        negative_windows=negative_windows,
        freeze_embeddings=freeze_embeddings,
        freeze_layers=freeze_layers,
        save_steps=save_steps,
        head=head,
        augment=[_augmentation(text) for text in augment] if augment else None,
        curriculum=curriculum,
        curriculum_epochs=curriculum_epochs,
        curriculum_buckets=curriculum_buckets,
    )
    data["reader"] = reader
    negatives = dict(data.get("negatives") or {}) | given(
        index=str(negatives_index) if negatives_index else None, per_question=negatives_per_question, k=negatives_k
    )
    if negatives and "index" not in negatives:
        raise OdqaError("--negatives-per-question and --negatives-k need --negatives-index")
    if negatives:
        data["negatives"] = negatives
    cfg = ReaderTrainingConfig.from_dict(data)
    state = train_reader(cfg, quiet=quiet, resume=not fresh)
    for record in state["history"]:
        scores = record.get("eval") or {}
        shown = ", ".join(f"{k} {v:.2f}" for k, v in scores.items() if isinstance(v, float))
        typer.echo(
            f"epoch {record['epoch']}: loss {record['loss']:.4f}, {record['examples_per_s']:.1f} windows/s"
            + (f", {shown}" if shown else "")
        )
    typer.echo(f"best model in {out}" + ("" if state.get("finished") else " (stopped early; run again to resume)"))


def _augmentation(text: str) -> dict:
    """`mask:0.5:0.15` → {name, share, rate}."""
    name, *numbers = text.split(":")
    try:
        values = [float(n) for n in numbers]
    except ValueError:
        raise OdqaError(f"--augment expects NAME[:SHARE[:RATE]] such as mask:0.5:0.15, got {text!r}") from None
    return {"name": name, **dict(zip(("share", "rate"), values))}


@group.command()
def read(
    reader_path: list[str] = typer.Option(
        ..., "--reader", help="reader folder (from train-reader) or hub id; repeat it for an ensemble"
    ),
    reader_weights: Optional[str] = typer.Option(None, help="one weight per --reader, e.g. 1,0.5"),
    ensemble: str = typer.Option("soft", "--ensemble", help="how several readers vote: soft, mean or max"),
    questions: Path = typer.Option(..., help="SQuAD-format file: each question is read against its own context"),
    out: Path = typer.Option(..., help="folder for predictions.json and nbest_predictions.json"),
    mode: Optional[str] = typer.Option(None, help="span scoring: prob (comparable across passages) or logits"),
    merge: Optional[str] = typer.Option(None, help="equal answer texts: none, max or sum"),
    n_best: Optional[int] = typer.Option(None),
    max_answer_tokens: Optional[int] = typer.Option(None),
    postprocess: Optional[str] = typer.Option(None, help="korean (particles, brackets) or none"),
    cross_lines: Optional[bool] = typer.Option(
        None, "--cross-lines/--one-line", help="whether an answer may span a line break (default: one line)"
    ),
    unit_trim: Optional[bool] = typer.Option(
        None,
        "--unit-trim/--no-unit-trim",
        help="with the Korean clean-up, end the answer to '몇 명…?' / '…해는?' after its number's unit (default: on)",
    ),
    batch_size: Optional[int] = typer.Option(None),
    bf16: bool = typer.Option(
        False, "--bf16", help="read in bfloat16 (fast on GPUs and on CPUs with AVX512-BF16 or AMX; slow on others)"
    ),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 … (default: cuda when available)"),
    limit: Optional[int] = typer.Option(None, help="read only a seeded sample of N questions"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Read each question of a SQuAD-format file against its context; write competition-format predictions."""
    from odqa.cli.common import parse_weights
    from odqa.io.atomic import atomic_write_text
    from odqa.io.squad import read_qa_examples
    from odqa.reader.ensemble import load_readers

    examples = read_qa_examples(questions)
    if limit and limit < len(examples):
        import random

        examples = random.Random(13).sample(examples, limit)
    warn_if_trained_on(reader_path, questions, [e.id for e in examples])
    reader = load_readers(
        reader_path,
        parse_weights(reader_weights, "--reader-weights"),
        ensemble,
        device=device,
        **given(
            mode=mode,
            merge=merge,
            n_best=n_best,
            max_answer_tokens=max_answer_tokens,
            postprocess=postprocess,
            cross_lines=cross_lines,
            unit_trim=unit_trim,
            batch_size=batch_size,
            precision="bf16" if bf16 else None,
        ),
    )
    start = time.perf_counter()
    results = reader.read([e.question for e in examples], [[e.context] for e in examples], progress=not quiet)
    seconds = time.perf_counter() - start
    predictions = {e.id: r.text for e, r in zip(examples, results)}
    nbest = {
        e.id: [{k: v for k, v in s.to_dict().items() if k != "context"} for s in r.nbest]
        for e, r in zip(examples, results)
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "predictions.json", json.dumps(predictions, ensure_ascii=False, indent=2))
    atomic_write_text(out / "nbest_predictions.json", json.dumps(nbest, ensure_ascii=False, indent=2))
    atomic_write_text(out / "reader_config.json", json.dumps(reader.config.model_dump(mode="json"), indent=2))
    typer.echo(
        f"read {len(examples):,} questions in {seconds:.1f}s ({len(examples) / seconds:.1f} questions/s); wrote "
        f"{out}/predictions.json"
    )


@group.command("evaluate-reader")
def evaluate_reader_command(
    predictions: Path = typer.Option(..., help="predictions.json: {question id: answer}"),
    gold: Path = typer.Option(..., help="SQuAD-format file with the gold answers"),
    metric: str = typer.Option("squad", help="squad, korquad, klue, or all"),
    allow_missing: bool = typer.Option(False, help="score questions without a prediction as wrong instead of refusing"),
    out: Optional[Path] = typer.Option(None, help="write scores and per-question details as JSON"),
) -> None:
    """EM/F1 of a predictions file under the official SQuAD v1.1, KorQuAD 1.0 or KLUE-MRC rules."""
    from dataclasses import asdict

    from odqa.io.atomic import atomic_write_text
    from odqa.io.questions import read_questions
    from odqa.io.squad import read_predictions
    from odqa.metrics import ANSWER_METRICS, score_predictions

    preds = read_predictions(predictions)
    answers = {q.id: q.answers for q in read_questions(gold)}
    unknown = [qid for qid in preds if qid not in answers]
    if unknown:
        typer.echo(f"note: {len(unknown)} predictions have ids that are not in {gold} (ignored)", err=True)
    warn_if_trained_on(model_of_predictions(predictions), gold, answers)
    names = list(ANSWER_METRICS) if metric == "all" else [metric]
    report = {}
    for name in names:
        scores = score_predictions(preds, answers, name, allow_missing=allow_missing)
        details = scores.pop("per_question")
        report[name] = scores
        partial = "rouge_w" if name == "klue" else "f1"
        typer.echo(
            f"{name}: EM {scores['exact_match']:.2f}  {partial.upper()} {scores[partial]:.2f}  ({scores['count']:,} "
            f"questions, {scores['missing']} missing)"
        )
    log_metrics(report)
    if out:
        report["per_question"] = [asdict(d) for d in details]
        atomic_write_text(out, json.dumps(report, ensure_ascii=False, indent=2))
        typer.echo(f"wrote {out}")


@group.command("pretrain-mlm")
def pretrain_mlm_command(
    corpus: list[Path] = typer.Option(..., help="documents (JSONL(.xz), SQuAD contexts, wiki dict); repeatable"),
    out: Path = typer.Option(..., help="encoder folder to write (resumes from OUT/checkpoint-last)"),
    tokenizer: Optional[str] = typer.Option(None, help="tokenizer folder (from scratch); default: the model's"),
    model: Optional[str] = typer.Option(None, help="continue pretraining this encoder (task-adaptive pretraining)"),
    config: Optional[str] = typer.Option(
        None, help="a size for a new encoder (tiny, small, medium, base) or a JSON/YAML MlmConfig file"
    ),
    max_length: Optional[int] = typer.Option(None, help="packed sequence length"),
    batch_size: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None),
    epochs: Optional[float] = typer.Option(None),
    max_steps: Optional[int] = typer.Option(None),
    max_minutes: Optional[float] = typer.Option(None, help="stop (after saving) when this much time has passed"),
    max_documents: Optional[int] = typer.Option(None),
    fresh: bool = typer.Option(False, help="ignore checkpoint-last in --out and start over"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Masked-LM pretraining of an encoder, from scratch or continued."""
    from odqa.training.mlm import SIZES, MlmConfig, pretrain_mlm

    data: dict = {}
    if config and config in SIZES:
        data["size"] = config
    elif config:
        data = config_file(Path(config))
    data |= given(
        corpus=[str(p) for p in corpus],
        out=str(out),
        tokenizer=tokenizer,
        model=model,
        max_length=max_length,
        batch_size=batch_size,
        lr=lr,
        epochs=epochs,
        max_steps=max_steps,
        max_minutes=max_minutes,
        max_documents=max_documents,
    )
    state = pretrain_mlm(MlmConfig.from_dict(data), quiet=quiet, resume=not fresh)
    last = state["history"][-1] if state["history"] else {}
    typer.echo(f"{state['step']} steps, last loss {last.get('loss', float('nan')):.3f}; encoder in {out}")


@group.command("difficulty")
def difficulty_command(
    reader_path: list[str] = typer.Option(
        ..., "--reader", help="a reader that judges the training questions (best not trained on them); repeatable"
    ),
    train: list[Path] = typer.Option(..., help="SQuAD-format training file(s), as train-reader takes them"),
    out: Path = typer.Option(..., help="JSON file {question id: difficulty} for train-reader --curriculum"),
    by: str = typer.Option(
        "agreement", help="agreement (1 − the readers' mean F1), gold-prob (1 − mean gold-span probability) or loss"
    ),
    metric: str = typer.Option("korquad", help="squad, korquad or klue: the F1 that agreement uses"),
    batch_size: Optional[int] = typer.Option(None),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 … (default: cuda when available)"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Score how hard each training question is for one or more readers: the order of a curriculum."""
    import numpy as np

    from odqa.io.atomic import atomic_write_text
    from odqa.io.squad import read_qa_files
    from odqa.reader import Reader
    from odqa.training.curriculum import DIFFICULTIES, score_difficulty

    if by not in DIFFICULTIES:
        raise OdqaError(f"unknown difficulty {by!r}; choose one of {', '.join(DIFFICULTIES)}")
    examples = read_qa_files([str(p) for p in train], require_answers=True)
    # the model's own spans, every occurrence kept: the gold span's probability is looked up by offsets
    options = dict(mode="prob", merge="none", postprocess="none", n_best=20) | given(batch_size=batch_size)
    readers = [Reader.load(path, device=device, **options) for path in reader_path]
    scores, exact = score_difficulty(readers, examples, by, metric, progress=not quiet)
    atomic_write_text(out, json.dumps(scores, ensure_ascii=False, indent=1))
    values = np.fromiter(scores.values(), dtype=np.float64)
    quartiles = ", ".join(f"{q:.3f}" for q in np.quantile(values, [0.25, 0.5, 0.75]))
    typer.echo(
        f"{len(scores):,} questions by {by} of {len(readers)} reader{'s' if len(readers) > 1 else ''} "
        f"(EM {', '.join(f'{e:.1f}' for e in exact)}); quartiles {quartiles}; wrote {out}"
    )


@group.command("generate-questions")
def generate_questions_command(
    generator: str = typer.Option(..., help="a sequence-to-sequence question generator: folder or hub id"),
    contexts: Path = typer.Option(..., help="documents (JSONL(.xz), SQuAD contexts, wiki dict), cut into passages"),
    out: Path = typer.Option(..., help="SQuAD-format file of the generated questions (train-reader --train takes it)"),
    per_context: int = typer.Option(2, min=1, help="answers asked about per passage"),
    input_format: str = typer.Option(
        "answer: {answer} context: {context}", help="the generator's input, with {answer} and {context}"
    ),
    max_contexts: Optional[int] = typer.Option(None, min=1, help="a seeded sample of this many passages"),
    num_beams: int = typer.Option(4, min=1),
    batch_size: int = typer.Option(16, min=1),
    seed: int = typer.Option(42),
    device: Optional[str] = typer.Option(None, help="cpu, cuda, cuda:1 … (default: cuda when available)"),
) -> None:
    """Synthetic training questions: names and numbers in the passages, asked about by your generator."""
    import random

    from odqa.corpus import build_passages
    from odqa.io.atomic import atomic_write_text
    from odqa.io.documents import read_documents
    from odqa.training.qgen import GenerationConfig, load_generator, synthetic_examples

    settings = GenerationConfig(
        per_context=per_context,
        input_format=input_format,
        num_beams=num_beams,
        batch_size=batch_size,
        seed=seed,
    ).check()
    passages, _ = build_passages(read_documents(contexts))
    if max_contexts and max_contexts < len(passages):
        passages = random.Random(seed).sample(passages, max_contexts)
    model, tokenizer = load_generator(generator, device)
    data = synthetic_examples(model, tokenizer, [(p.title, p.text) for p in passages], settings)
    atomic_write_text(out, json.dumps(data, ensure_ascii=False, indent=1))
    asked = sum(len(a["paragraphs"][0]["qas"]) for a in data["data"])
    typer.echo(f"{asked:,} questions over {len(data['data']):,} of {len(passages):,} passages; wrote {out}")
