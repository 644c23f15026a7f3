"""Commands that turn a pipeline's answers into settings and training data: tune-pipeline (k and the
retriever weight from labelled questions, written as a pipeline config) and pseudo-label (confident
answers to unlabelled questions as a SQuAD file). Registered on the app in `odqa.cli`; thin wrappers
over `odqa.e2e` and `odqa.pseudo`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from odqa.cli.common import (
    BF16_OPTION,
    CONFIG_OPTION,
    DEVICE_OPTION,
    ENSEMBLE_OPTION,
    INDEX_OPTION,
    K_OPTION,
    PIPELINE_RERANK_FUSION_OPTION,
    READER_OPTION,
    RERANK_BF16_OPTION,
    RERANK_OPTION,
    RERANK_WEIGHT_OPTION,
    RESCORE_BF16_OPTION,
    RESCORE_OPTION,
    RETRIEVER_WEIGHT_OPTION,
    WEIGHTS_OPTION,
    parse_ks,
    parse_weights,
    pipeline_from_options,
    warn_if_trained_on,
)
from odqa.errors import OdqaError
from odqa.runs import log_metrics

group = typer.Typer()


@group.command("tune-pipeline")
def tune_pipeline_command(
    questions: Path = typer.Option(..., help="labelled questions the reader was not trained on (SQuAD JSON or JSONL)"),
    out: Path = typer.Option(..., help="pipeline config to write (JSON or YAML): `ask`/`serve`/… take it as --config"),
    index: Optional[list[Path]] = INDEX_OPTION,
    rerank: Optional[str] = RERANK_OPTION,
    rerank_weight: Optional[float] = RERANK_WEIGHT_OPTION,
    rerank_fusion: Optional[str] = PIPELINE_RERANK_FUSION_OPTION,
    rerank_bf16: bool = RERANK_BF16_OPTION,
    rescore: Optional[str] = RESCORE_OPTION,
    rescore_bf16: bool = RESCORE_BF16_OPTION,
    bf16: bool = BF16_OPTION,
    reader: Optional[list[str]] = READER_OPTION,
    reader_weights: Optional[str] = WEIGHTS_OPTION,
    ensemble: Optional[str] = ENSEMBLE_OPTION,
    ks: str = typer.Option("1,3,5,10,20", "--ks", help="passages read per question to try"),  # odqa.e2e.TUNE_KS
    weights: str = typer.Option("0,0.01,0.02,0.05,0.1,0.2,0.5,1,2,5", help="retriever weights to try"),  # TUNE_WEIGHTS
    metric: str = typer.Option("korquad", help="the exact-match rule tuned for (korquad or squad)"),
    rule: str = typer.Option(
        "one-se",
        help="one-se: the fewest passages whose EM is within one standard error of the best; best: the best EM",
    ),  # odqa.e2e.TUNE_RULES
    limit: Optional[int] = typer.Option(None, help="a seeded random sample of N questions"),
    config: Optional[Path] = CONFIG_OPTION,
    device: Optional[str] = DEVICE_OPTION,
    overwrite: bool = typer.Option(False, help="replace an existing OUT"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Choose how many passages to read (k) and the retrieval score's weight in the answer score by
    exact match on labelled questions (one reading of the largest k), and write the pipeline config
    with them. By default the fewest passages that score within one standard error of the best pair
    (--rule best: the best pair)."""
    import random

    from rich.console import Console
    from rich.table import Table

    from odqa.e2e import TUNE_RULES, tune_pipeline
    from odqa.io.atomic import atomic_write_text
    from odqa.io.questions import read_questions
    from odqa.metrics.answers import get_answer_metric

    if out.suffix.lower() not in {".json", ".yaml", ".yml"}:
        raise OdqaError(f"--out must end in .json, .yaml or .yml, got {out}")
    if out.exists() and not overwrite:
        raise OdqaError(f"{out} exists; pass --overwrite to replace it")
    if rule not in TUNE_RULES:
        raise OdqaError(f"--rule must be one of {', '.join(TUNE_RULES)}, got {rule!r}")
    metric = get_answer_metric(metric).name
    tried_ks = parse_ks(ks)
    tried_weights = parse_weights(weights, "--weights")
    if not tried_weights or min(tried_weights) < 0:
        raise OdqaError(f"--weights expects numbers ≥ 0 like 0,0.05,0.1, got {weights!r}")
    qs = read_questions(questions)  # a bad file is refused before any model loads
    pipeline = pipeline_from_options(
        config, index, reader, None, device, rerank, rescore, True, reader_weights, ensemble,
        rescore_bf16=rescore_bf16, bf16=bf16, rerank_weight=rerank_weight, rerank_fusion=rerank_fusion,
        rerank_bf16=rerank_bf16,
    )  # fmt: skip
    if limit and limit < len(qs):
        qs = random.Random(13).sample(qs, limit)
    warn_if_trained_on(pipeline.reader_paths, questions, [q.id for q in qs])
    result = tune_pipeline(pipeline, qs, tried_ks, tried_weights, metric, quiet=quiet, rule=rule)
    chosen = result["chosen"]
    table = Table(title=f"{metric} EM on {result['questions']:,} questions (rows: k, columns: retriever weight)")
    table.add_column("k", justify="right")
    columns = sorted(set(tried_weights))
    for w in columns:
        table.add_column(f"{w:g}", justify="right")
    grid = result[f"em_{metric}"]
    for k in tried_ks:
        table.add_row(str(k), *(f"{grid[f'k={k} w={w}']:.1f}" for w in columns))
    Console().print(table)
    settings = pipeline.config.to_dict() | {"k": chosen["k"], "retriever_weight": chosen["retriever_weight"]}
    if out.suffix.lower() == ".json":
        text = json.dumps(settings, ensure_ascii=False, indent=2) + "\n"
    else:
        try:
            import yaml
        except ImportError:
            raise OdqaError("a YAML config needs PyYAML (pip install pyyaml); or write JSON") from None
        text = yaml.safe_dump(settings, allow_unicode=True, sort_keys=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    log_metrics({"questions": result["questions"], "exact_match": result["exact_match"], **chosen})
    best = result["best"]
    if (best["k"], best["retriever_weight"]) != (chosen["k"], chosen["retriever_weight"]):
        typer.echo(
            f"the best pair, k = {best['k']} at weight {best['retriever_weight']:g}, scores EM "
            f"{best['exact_match']:.1f} ± {result['standard_error']:.1f}: fewer passages score within that"
        )
    typer.echo(
        f"k = {chosen['k']}, retriever weight = {chosen['retriever_weight']:g}: {metric} EM "
        f"{result['exact_match']:.1f}; wrote {out} (use it as --config)"
    )
    for name in result["at_edge"]:
        option = "--ks" if name == "k" else "--weights"
        typer.echo(
            f"note: the chosen {name.replace('_', ' ')} is the largest tried; larger ones may do better ({option})",
            err=True,
        )


@group.command("pseudo-label")
def pseudo_label(
    questions: Path = typer.Option(..., help="unlabelled questions: JSONL (id, question), SQuAD JSON or topics TSV"),
    out: Path = typer.Option(..., help="SQuAD-format file of the kept answers (train-reader --train takes it)"),
    index: Optional[list[Path]] = INDEX_OPTION,
    reader: Optional[list[str]] = READER_OPTION,
    reader_weights: Optional[str] = WEIGHTS_OPTION,
    ensemble: Optional[str] = ENSEMBLE_OPTION,
    min_score: float = typer.Option(0.5, help="keep answers whose probability reaches this"),
    min_agreement: float = typer.Option(
        1.0, help="with several readers: keep answers that at least this share of them gave on their own"
    ),
    metric: str = typer.Option("korquad", help="what counts as the same answer text; the report's scores"),
    k: Optional[int] = K_OPTION,
    retriever_weight: Optional[float] = RETRIEVER_WEIGHT_OPTION,
    config: Optional[Path] = CONFIG_OPTION,
    batch_size: int = typer.Option(32, help="questions per batch (and per resumable step)"),
    restart: bool = typer.Option(False, help="discard an interrupted run's answers instead of resuming it"),
    device: Optional[str] = DEVICE_OPTION,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Answer unlabelled questions end to end and keep the confident answers as training data;
    with gold answers in the file, report how precise the kept labels are. Answers are kept in
    OUT's .partial.jsonl until the file is written: a rerun with the same pipeline resumes, and one
    with other thresholds reuses them."""
    from odqa.io.atomic import atomic_write_text
    from odqa.io.questions import read_questions
    from odqa.metrics.answers import get_answer_metric
    from odqa.pseudo import PseudoLabelConfig, answer_and_judge, kept_rows, report, squad_file

    settings = PseudoLabelConfig(min_score, min_agreement, get_answer_metric(metric).name).check()
    qs = read_questions(questions)  # a bad file is refused before any model loads
    pipeline = pipeline_from_options(
        config, index, reader, k, device, None, None, True, reader_weights, ensemble, retriever_weight
    )
    partial = out.with_name(out.stem + ".partial.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = answer_and_judge(pipeline, qs, settings, batch_size, quiet, partial, restart)
    kept = kept_rows(rows, settings)
    if not kept:
        best = max((row["probability"] for row in rows), default=0.0)
        raise OdqaError(
            f"no answer reached probability {min_score} with agreement {min_agreement} (the most confident had "
            f"{best:.3f}); nothing written — lower --min-score or --min-agreement (the answers in {partial} are reused)"
        )
    summary = report(rows, kept, settings, pipeline.reader_paths)
    report_file = out.with_name(out.stem + ".report.json")
    atomic_write_text(out, json.dumps(squad_file(kept), ensure_ascii=False, indent=1))
    atomic_write_text(report_file, json.dumps(summary, ensure_ascii=False, indent=2))
    partial.unlink()
    log_metrics(summary)
    precision = summary.get("precision")
    judged = ""
    if precision:
        everyone = summary["all_answers"]
        judged = (
            f"; against the gold answers the kept ones score EM {precision['exact_match']:.1f} / F1 "
            f"{precision['f1']:.1f} (every answer: {everyone['exact_match']:.1f} / {everyone['f1']:.1f})"
        )
    typer.echo(f"kept {len(kept):,} of {len(rows):,} answers{judged}; wrote {out} and {report_file}")
