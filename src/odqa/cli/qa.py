"""End-to-end commands of the `odqa` command line: ask, predict, evaluate, serve.
Registered on the app in `odqa.cli`; thin wrappers over `odqa.pipeline`, `odqa.e2e`, `odqa.serve`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from odqa.cli.common import INDEX_HELP, RESCORE_HELP, parse_ks, warn_if_trained_on
from odqa.errors import OdqaError
from odqa.runs import log_metrics

group = typer.Typer()

READER_HELP = (
    "reader folder (from `odqa train-reader`) or hub id; default $ODQA_READER. Repeat it for an ensemble "
    "that votes by character offsets (readers on different tokenizers vote together)"
)
READER_OPTION = typer.Option(None, "--reader", help=READER_HELP)
WEIGHTS_OPTION = typer.Option(None, help="one weight per --reader, e.g. 1,0.5 (`odqa ensemble --gold` chooses them)")
ENSEMBLE_OPTION = typer.Option(None, "--ensemble", help="how several readers vote: soft (default), mean or max")
# the options every pipeline command (ask, predict, evaluate, serve) shares
INDEX_OPTION = typer.Option(None, help=INDEX_HELP)
RERANK_OPTION = typer.Option(None, help="cross-encoder reranker folder (from train-reranker)")
RESCORE_OPTION = typer.Option(None, help=RESCORE_HELP)
CONFIG_OPTION = typer.Option(None, help="JSON/YAML PipelineConfig")
DEVICE_OPTION = typer.Option(None, help="cpu, cuda or cuda:N (default: the config's, else a GPU when there is one)")


def _pipeline(
    config: Path | None,
    index: list[Path] | None,
    reader: list[str] | None,
    k: int | None,
    device: str | None,
    rerank: str | None = None,
    rescore: str | None = None,
    load_reader: bool = True,
    reader_weights: str | None = None,
    ensemble: str | None = None,
):
    """The pipeline the options describe, loaded (with `load_reader` false the reader folders are
    only checked: they load where they read, e.g. in Ray actors)."""
    from odqa.cli.common import parse_weights
    from odqa.pipeline import Pipeline, PipelineConfig

    data = PipelineConfig.from_file(config).to_dict() if config else {}
    if reader:
        reader = reader[0] if len(reader) == 1 else list(reader)
    reader = reader or data.get("reader") or os.environ.get("ODQA_READER")
    if index:
        data["index"] = str(index[0]) if len(index) == 1 else [str(p) for p in index]
    if not data.get("index"):
        raise OdqaError("no index given: pass --index (or a --config naming one)")
    if not reader:
        raise OdqaError("no reader given: pass --reader, set ODQA_READER, or train one with `odqa train-reader`")
    data["reader"] = reader
    if reader_weights is not None:
        data["reader_weights"] = parse_weights(reader_weights, "--reader-weights")
    if ensemble is not None:
        data["ensemble_method"] = ensemble
    if k is not None:
        data["k"] = k
    if device is not None:
        data["device"] = device
    if rerank is not None:
        data["rerank"] = rerank
    if rescore is not None:
        data["rescore"] = rescore
    pipeline = Pipeline(PipelineConfig.from_dict(data))
    if load_reader:
        pipeline.warm_up()
    else:
        from odqa.models.loading import check_model_dir

        for path in pipeline.reader_paths:
            check_model_dir(path)
        pipeline.open_index()
    warning = pipeline.reader_report()["warning"]
    if warning:
        typer.echo(f"warning: {warning}", err=True)
    return pipeline


@group.command()
def ask(
    questions: list[str] = typer.Argument(..., help="one or more questions"),
    index: Optional[list[Path]] = INDEX_OPTION,
    rerank: Optional[str] = RERANK_OPTION,
    rescore: Optional[str] = RESCORE_OPTION,
    reader: Optional[list[str]] = READER_OPTION,
    reader_weights: Optional[str] = WEIGHTS_OPTION,
    ensemble: Optional[str] = ENSEMBLE_OPTION,
    k: Optional[int] = typer.Option(None, "-k", help="passages to read per question"),
    config: Optional[Path] = CONFIG_OPTION,
    device: Optional[str] = DEVICE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object per question"),
) -> None:
    """Answer questions from the indexed documents, with the evidence sentence."""
    pipeline = _pipeline(config, index, reader, k, device, rerank, rescore, True, reader_weights, ensemble)
    results = pipeline.ask_batch(questions)
    for result in results:
        if as_json:
            typer.echo(json.dumps(result.to_dict(with_passages=False), ensure_ascii=False))
            continue
        typer.echo(f"Q: {one_line(result.question)}")
        answer = result.answer
        if answer is None:
            typer.echo("A: (no answer found)\n")
            continue
        passage = next(p for p in result.passages if p.passage_id == answer.passage_id)
        typer.echo(
            f"A: {one_line(answer.text)}   "
            f"[score {answer.score:.3f}, {one_line(answer.title)}, passage rank {answer.passage_rank}]"
        )
        typer.echo(f"   {evidence_sentence(passage.text, answer.start, answer.end)}")
        others = ", ".join(one_line(a.text) for a in result.nbest[1:4])
        typer.echo(f"   others: {others or '-'}\n")
    if results and not as_json:  # the batch was read in one pass: its time is shown once
        timings = results[0].timings
        n = len(results)
        typer.echo(
            f"{n} question{'s' if n > 1 else ''} in one batch: retrieve {n * timings['retrieve_ms']:.0f} ms, "
            f"read {n * timings['read_ms']:.0f} ms"
        )


def one_line(text: str) -> str:
    """Text for one terminal line: line breaks and runs of spaces become single spaces."""
    return " ".join(text.split())


def evidence_sentence(text: str, start: int, end: int, limit: int = 200) -> str:
    """The sentence around [start, end) with the answer in 【brackets】."""
    left = max(text.rfind(mark, 0, start) for mark in (". ", "\n", "다. ", "? ", "! "))
    left = 0 if left < 0 else left + 1
    right = min((i for i in (text.find(mark, end) for mark in (". ", "\n", "? ", "! ")) if i >= 0), default=len(text))
    sentence = (text[left:start] + "【" + text[start:end] + "】" + text[end : right + 1]).strip().replace("\n", " ")
    return sentence if len(sentence) <= limit else sentence[: limit - 1] + "…"


@group.command()
def predict(
    questions: Path = typer.Option(..., help="questions: JSONL (id, question), SQuAD JSON or topics TSV"),
    out: Path = typer.Option(..., help="folder for predictions.json, nbest_predictions.json, retrieved.json"),
    index: Optional[list[Path]] = INDEX_OPTION,
    rerank: Optional[str] = RERANK_OPTION,
    rescore: Optional[str] = RESCORE_OPTION,
    reader: Optional[list[str]] = READER_OPTION,
    reader_weights: Optional[str] = WEIGHTS_OPTION,
    ensemble: Optional[str] = ENSEMBLE_OPTION,
    k: Optional[int] = typer.Option(None, "-k"),
    config: Optional[Path] = CONFIG_OPTION,
    batch_size: int = typer.Option(32, help="questions per batch (and per resumable step)"),
    restart: bool = typer.Option(False, help="discard an interrupted run's answers instead of resuming it"),
    ray: bool = typer.Option(
        False, "--ray", help="answer as a Ray Data job, one pipeline actor per core or GPU (ray extra)"
    ),
    ray_address: Optional[str] = typer.Option(
        None, help="the Ray cluster to join (default $RAY_ADDRESS, else a local cluster on this machine)"
    ),
    workers: Optional[int] = typer.Option(None, min=1, help="pipeline actors with --ray (default: one per CPU or GPU)"),
    cpus_per_worker: float = typer.Option(1.0, min=0.01, help="cores each pipeline actor uses with --ray"),
    device: Optional[str] = DEVICE_OPTION,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Answer a question file in the competition format; a rerun with the same settings resumes an
    interrupted one (with or without --ray: the answers are the same)."""
    from functools import partial

    from odqa.e2e import answer_here, predict_file
    from odqa.io.questions import read_questions

    pipeline = _pipeline(config, index, reader, k, device, rerank, rescore, not ray, reader_weights, ensemble)
    answer = answer_here
    if ray:
        from odqa.distributed.jobs import answer_on_ray

        answer = partial(answer_on_ray, address=ray_address, workers=workers, cpus=cpus_per_worker)
    predictions = predict_file(pipeline, read_questions(questions), out, batch_size, quiet, restart, answer)
    typer.echo(
        f"answered {len(predictions):,} questions; wrote {out}/predictions.json, nbest_predictions.json, retrieved.json"
    )


@group.command()
def evaluate(
    questions: Path = typer.Option(..., help="questions with gold answers (SQuAD JSON or JSONL)"),
    index: Optional[list[Path]] = INDEX_OPTION,
    rerank: Optional[str] = RERANK_OPTION,
    rescore: Optional[str] = RESCORE_OPTION,
    reader: Optional[list[str]] = READER_OPTION,
    reader_weights: Optional[str] = WEIGHTS_OPTION,
    ensemble: Optional[str] = ENSEMBLE_OPTION,
    k: Optional[int] = typer.Option(None, "-k", help="passages read per question"),
    ks: str = typer.Option("1,5,10,20", help="also score at these k (one reading of the largest)"),
    metric: str = typer.Option("korquad,squad", help="answer metrics; the first one decides the error categories"),
    config: Optional[Path] = CONFIG_OPTION,
    limit: Optional[int] = typer.Option(None, help="a seeded random sample of N questions"),
    out: Optional[Path] = typer.Option(None, help="folder for evaluation.json (per-question details) and em_by_k.png"),
    device: Optional[str] = DEVICE_OPTION,
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """End-to-end EM/F1, retrieval hit rate and where each miss comes from."""
    import random

    from rich.console import Console
    from rich.table import Table

    from odqa.e2e import evaluate_end_to_end, plot_em_by_k
    from odqa.io.atomic import atomic_write_text
    from odqa.io.questions import read_questions

    pipeline = _pipeline(config, index, reader, k, device, rerank, rescore, True, reader_weights, ensemble)
    qs = read_questions(questions)
    if limit and limit < len(qs):
        qs = random.Random(13).sample(qs, limit)
    warn_if_trained_on(pipeline.reader_paths, questions, [q.id for q in qs])
    metrics = [m for m in metric.split(",") if m]
    result = evaluate_end_to_end(pipeline, qs, parse_ks(ks), metrics, quiet=quiet)
    log_metrics({key: result[key] for key in ("questions", "k", "by_k", "retrieval_has_answer", "attribution")})
    table = Table(title=f"{result['questions']:,} questions, k = {result['k']}")
    table.add_column("k", justify="right")
    for m in metrics:
        table.add_column(f"{m} EM", justify="right")
        table.add_column(f"{m} F1", justify="right")
    for kk, scores in result["by_k"].items():
        table.add_row(str(kk), *(f"{scores[m][key]:.1f}" for m in metrics for key in ("exact_match", "f1")))
    Console().print(table)
    n = result["questions"]
    typer.echo(
        f"retrieved passages hold an answer for {result['retrieval_has_answer']:.1f}% of questions at k = {result['k']}"
    )
    typer.echo("errors: " + ", ".join(f"{c} {v} ({100 * v / n:.1f}%)" for c, v in result["attribution"].items()))
    if out:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "evaluation.json", json.dumps(result, ensure_ascii=False, indent=2))
        plotted = plot_em_by_k(result, out / "em_by_k.png", metrics[0])
        typer.echo(
            f"wrote {out}/evaluation.json"
            + (" and em_by_k.png" if plotted else " (install matplotlib for em_by_k.png)")
        )


@group.command()
def serve(
    index: Optional[list[Path]] = INDEX_OPTION,
    rerank: Optional[str] = RERANK_OPTION,
    rescore: Optional[str] = RESCORE_OPTION,
    reader: Optional[list[str]] = READER_OPTION,
    reader_weights: Optional[str] = WEIGHTS_OPTION,
    ensemble: Optional[str] = ENSEMBLE_OPTION,
    k: Optional[int] = typer.Option(None, "-k"),
    config: Optional[Path] = CONFIG_OPTION,
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    device: Optional[str] = DEVICE_OPTION,
    log: Optional[Path] = typer.Option(
        None, help="write one JSON line per request here (rotated); see `odqa logs report`"
    ),
    log_questions: bool = typer.Option(True, help="keep questions in the log (--no-log-questions: only their length)"),
    log_max_mb: float = typer.Option(10.0, min=0.01, help="rotate the log at this size"),
    log_backups: int = typer.Option(5, min=0, help="rotated log files kept"),
    ray: bool = typer.Option(
        False, "--ray", help="serve as Ray Serve deployments: pipeline replicas behind one HTTP ingress (ray extra)"
    ),
    replicas: int = typer.Option(1, min=1, help="pipeline replicas with --ray"),
    cpus_per_replica: float = typer.Option(1.0, min=0.01, help="cores each replica uses with --ray"),
    ray_address: Optional[str] = typer.Option(
        None, help="the Ray cluster to serve on (default $RAY_ADDRESS, else a local cluster on this machine)"
    ),
) -> None:
    """HTTP API (POST /ask, POST /search, GET /health, /docs) and a web page at /."""
    try:
        import uvicorn
    except ImportError:
        raise OdqaError("serving needs the serve extra: pip install 'odqa[serve]'") from None
    from odqa.serve.app import create_app
    from odqa.serve.requestlog import RequestLog

    request_log = None
    if log is not None:
        try:
            request_log = RequestLog(log, int(log_max_mb * 1024 * 1024), log_backups, log_questions)
        except OSError as e:
            raise OdqaError(f"cannot write the request log {log}: {e.strerror or e}") from None
    pipeline = _pipeline(config, index, reader, k, device, rerank, rescore, not ray, reader_weights, ensemble)
    logged = f"; logging requests to {log}" if log else ""
    if ray:
        from odqa.distributed.serving import serve_on_ray
        from odqa.distributed.sharded import connect

        connect(ray_address)
        settings = None
        if log is not None:
            settings = {"path": str(log.resolve()), "max_bytes": int(log_max_mb * 1024 * 1024), "backups": log_backups}
            settings["questions"] = log_questions
        typer.echo(
            f"serving on http://{host}:{port}/ (API docs at /docs) with {replicas} Ray Serve replica"
            f"{'s' if replicas > 1 else ''}{logged}; Ctrl-C stops it"
        )
        serve_on_ray(pipeline.config.to_dict(), host, port, replicas, cpus_per_replica, settings)
        return
    application = create_app(pipeline, request_log=request_log)
    typer.echo(f"serving on http://{host}:{port}/ (API docs at /docs){logged}")
    uvicorn.run(application, host=host, port=port, log_level="warning")


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
    k: Optional[int] = typer.Option(None, "-k", help="passages read per question"),
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
    pipeline = _pipeline(config, index, reader, k, device, None, None, True, reader_weights, ensemble)
    partial = out.with_name(out.stem + ".partial.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = answer_and_judge(pipeline, read_questions(questions), settings, batch_size, quiet, partial, restart)
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
