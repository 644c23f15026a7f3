"""End-to-end commands of the `odqa` command line: ask, predict, evaluate, serve.
Registered on the app in `odqa.cli`; thin wrappers over `odqa.pipeline`, `odqa.e2e`, `odqa.serve`."""

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
    pipeline_from_options,
    warn_if_trained_on,
)
from odqa.errors import OdqaError
from odqa.runs import log_metrics

group = typer.Typer()


@group.command()
def ask(
    questions: list[str] = typer.Argument(..., help="one or more questions"),
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
    k: Optional[int] = K_OPTION,
    retriever_weight: Optional[float] = RETRIEVER_WEIGHT_OPTION,
    config: Optional[Path] = CONFIG_OPTION,
    device: Optional[str] = DEVICE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object per question"),
) -> None:
    """Answer questions from the indexed documents, with the evidence sentence."""
    pipeline = pipeline_from_options(
        config, index, reader, k, device, rerank, rescore, True, reader_weights, ensemble, retriever_weight,
        rescore_bf16=rescore_bf16, bf16=bf16, rerank_weight=rerank_weight, rerank_fusion=rerank_fusion,
        rerank_bf16=rerank_bf16,
    )  # fmt: skip
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
    rerank_weight: Optional[float] = RERANK_WEIGHT_OPTION,
    rerank_fusion: Optional[str] = PIPELINE_RERANK_FUSION_OPTION,
    rerank_bf16: bool = RERANK_BF16_OPTION,
    rescore: Optional[str] = RESCORE_OPTION,
    rescore_bf16: bool = RESCORE_BF16_OPTION,
    bf16: bool = BF16_OPTION,
    reader: Optional[list[str]] = READER_OPTION,
    reader_weights: Optional[str] = WEIGHTS_OPTION,
    ensemble: Optional[str] = ENSEMBLE_OPTION,
    k: Optional[int] = K_OPTION,
    retriever_weight: Optional[float] = RETRIEVER_WEIGHT_OPTION,
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

    qs = read_questions(questions)  # a bad file is refused before any model loads
    pipeline = pipeline_from_options(
        config, index, reader, k, device, rerank, rescore, not ray, reader_weights, ensemble, retriever_weight,
        rescore_bf16=rescore_bf16, bf16=bf16, rerank_weight=rerank_weight, rerank_fusion=rerank_fusion,
        rerank_bf16=rerank_bf16,
    )  # fmt: skip
    answer = answer_here
    if ray:
        from odqa.distributed.jobs import answer_on_ray

        answer = partial(answer_on_ray, address=ray_address, workers=workers, cpus=cpus_per_worker)
    predictions = predict_file(pipeline, qs, out, batch_size, quiet, restart, answer)
    typer.echo(
        f"answered {len(predictions):,} questions; wrote {out}/predictions.json, nbest_predictions.json, retrieved.json"
    )


@group.command()
def evaluate(
    questions: Path = typer.Option(..., help="questions with gold answers (SQuAD JSON or JSONL)"),
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
    k: Optional[int] = K_OPTION,
    retriever_weight: Optional[float] = RETRIEVER_WEIGHT_OPTION,
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

    qs = read_questions(questions)  # a bad file is refused before any model loads
    pipeline = pipeline_from_options(
        config, index, reader, k, device, rerank, rescore, True, reader_weights, ensemble, retriever_weight,
        rescore_bf16=rescore_bf16, bf16=bf16, rerank_weight=rerank_weight, rerank_fusion=rerank_fusion,
        rerank_bf16=rerank_bf16,
    )  # fmt: skip
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
    rerank_weight: Optional[float] = RERANK_WEIGHT_OPTION,
    rerank_fusion: Optional[str] = PIPELINE_RERANK_FUSION_OPTION,
    rerank_bf16: bool = RERANK_BF16_OPTION,
    rescore: Optional[str] = RESCORE_OPTION,
    rescore_bf16: bool = RESCORE_BF16_OPTION,
    bf16: bool = BF16_OPTION,
    reader: Optional[list[str]] = READER_OPTION,
    reader_weights: Optional[str] = WEIGHTS_OPTION,
    ensemble: Optional[str] = ENSEMBLE_OPTION,
    k: Optional[int] = K_OPTION,
    retriever_weight: Optional[float] = RETRIEVER_WEIGHT_OPTION,
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
    pipeline = pipeline_from_options(
        config, index, reader, k, device, rerank, rescore, not ray, reader_weights, ensemble, retriever_weight,
        rescore_bf16=rescore_bf16, bf16=bf16, rerank_weight=rerank_weight, rerank_fusion=rerank_fusion,
        rerank_bf16=rerank_bf16,
    )  # fmt: skip
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
