"""Dense and reranking commands of the `odqa` command line: train-dense, index-dense,
train-reranker, tune-fusion, tune-rerank. Registered on the app in `odqa.cli`; thin wrappers over `odqa.training` and
`odqa.retrieval`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from odqa.cli.common import (
    FREEZE_EMBEDDINGS_OPTION,
    FREEZE_LAYERS_OPTION,
    MIXED_PRECISION_OPTION,
    RERANK_BF16_OPTION,
    RESCORE_BF16_OPTION,
    RESCORE_HELP,
    SAVE_STEPS_OPTION,
    config_file,
    given,
    parse_ks,
    retriever_from_options,
)

group = typer.Typer()


def _report(state: dict, out: Path, what: str) -> None:
    for record in state["history"]:
        scores = record.get("eval") or {}
        shown = ", ".join(f"{k} {v:.1f}" for k, v in scores.items() if isinstance(v, float))
        typer.echo(f"epoch {record['epoch']}: loss {record['loss']:.4f}" + (f", {shown}" if shown else ""))
    typer.echo(f"{what} in {out}" + ("" if state.get("finished") else " (stopped early; run again to resume)"))


def _pair(text: str) -> tuple[str, str]:
    from odqa.errors import OdqaError

    parts = text.split(",")
    if len(parts) != 2:
        raise OdqaError(f"--qrels expects TOPICS,QRELS (two paths separated by a comma), got {text!r}")
    return parts[0], parts[1]


@group.command("train-dense")
def train_dense_command(
    model: str = typer.Option(..., help="encoder to start from: a local folder (safetensors) or a hub id"),
    out: Path = typer.Option(..., help="run folder: the encoder, checkpoint-last, settings"),
    train: Optional[list[Path]] = typer.Option(
        None, help="SQuAD-format training file(s): (question, gold context) pairs"
    ),
    qrels: Optional[list[str]] = typer.Option(
        None, help="TOPICS,QRELS: a retrieval set judged by article (e.g. MIRACL-ko train); needs --hard-negatives"
    ),
    hard_negatives: Optional[Path] = typer.Option(None, help="sparse index to mine BM25 hard negatives from"),
    negatives: Optional[int] = typer.Option(None, help="hard negatives per question"),
    eval_file: Optional[Path] = typer.Option(
        None, "--eval", help="SQuAD-format file: top-k of finding each question's context"
    ),
    question_model: Optional[str] = typer.Option(None, help="separate question encoder (default: shared weights)"),
    pooling: Optional[str] = typer.Option(None, help="cls or mean"),
    similarity: Optional[str] = typer.Option(None, help="dot or cosine"),
    temperature: Optional[float] = typer.Option(None),
    cache_chunk: Optional[int] = typer.Option(None, help="gradient caching: encode at most this many texts at once"),
    config: Optional[Path] = typer.Option(None, help="JSON/YAML DenseTrainingConfig; options override it"),
    epochs: Optional[float] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None, help="questions per batch (the in-batch negatives)"),
    lr: Optional[float] = typer.Option(None),
    max_steps: Optional[int] = typer.Option(None),
    max_minutes: Optional[float] = typer.Option(None),
    max_train_examples: Optional[int] = typer.Option(None, help="a seeded sample of the training questions"),
    mixed_precision: Optional[str] = MIXED_PRECISION_OPTION,
    freeze_embeddings: Optional[bool] = FREEZE_EMBEDDINGS_OPTION,
    freeze_layers: Optional[int] = FREEZE_LAYERS_OPTION,
    save_steps: Optional[int] = SAVE_STEPS_OPTION,
    seed: Optional[int] = typer.Option(None, help="seed of the new weights, the sampling and the batch order (42)"),
    fresh: bool = typer.Option(False, help="ignore checkpoint-last in --out and start over"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train a DPR-style bi-encoder (in-batch + BM25 hard negatives, gradient caching)."""
    from odqa.training.dense import DenseTrainingConfig, train_dense

    data = config_file(config)
    # an imported model's pooling and prefixes (multilingual-e5-small's) fill what is not given here (train_dense)
    data["encoder"] = dict(data.get("encoder") or {}) | given(pooling=pooling, similarity=similarity)
    data |= given(
        model=model,
        train=[str(p) for p in train or []],
        out=str(out),
        eval=str(eval_file) if eval_file else None,
        qrels=[_pair(q) for q in qrels] if qrels else None,
        hard_negatives_index=str(hard_negatives) if hard_negatives else None,
        hard_negatives=negatives,
        question_model=question_model,
        temperature=temperature,
        cache_chunk=cache_chunk,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_steps=max_steps,
        max_minutes=max_minutes,
        max_train_examples=max_train_examples,
        mixed_precision=mixed_precision,
        freeze_embeddings=freeze_embeddings,
        freeze_layers=freeze_layers,
        save_steps=save_steps,
        seed=seed,
    )
    _report(train_dense(DenseTrainingConfig.from_dict(data), quiet=quiet, resume=not fresh), out, "encoder")


@group.command("index-dense")
def index_dense(
    encoder: str = typer.Option(..., help="encoder folder (from train-dense)"),
    corpus: Path = typer.Option(..., help="documents, as for `odqa index`"),
    out: Path = typer.Option(..., help="dense index folder to write (replaced atomically)"),
    faiss: str = typer.Option(
        "flat", help="flat (exact), hnsw (approximate, faster) or ivfpq (compressed, for corpora that outgrow memory)"
    ),
    config: Optional[Path] = typer.Option(
        None, help="the IndexConfig of the sparse index to fuse with (same passages)"
    ),
    limit: Optional[int] = typer.Option(None, help="index only the first N documents"),
    shards: int = typer.Option(1, help="encode in this many parts, each saved when done (a killed run resumes)"),
    shard: Optional[int] = typer.Option(
        None, help="encode only this part (0-based), e.g. one per GPU/machine; then run without --shard to merge"
    ),
    index_shards: Optional[int] = typer.Option(
        None,
        min=1,
        help="cut the index into N shard indexes, each searched by a Ray actor (encoded on Ray; ray extra)",
    ),
    ray: bool = typer.Option(
        False, "--ray", help="encode as a Ray Data job, one encoder actor per core or GPU (ray extra)"
    ),
    ray_address: Optional[str] = typer.Option(
        None, help="the Ray cluster to join (default $RAY_ADDRESS, else a local cluster on this machine)"
    ),
    workers: Optional[int] = typer.Option(None, min=1, help="encoder actors with --ray (default: one per CPU or GPU)"),
    device: Optional[str] = typer.Option(None),
    bf16: bool = typer.Option(
        False,
        "--bf16",
        help="encode with the weights in bfloat16 (faster on GPUs and on CPUs with AVX512-BF16 or AMX; slow on "
        "others); the index records it and encodes its queries in bf16 too",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Encode a corpus into a FAISS index, cut into the same passages as `odqa index`."""
    from odqa.config import IndexConfig
    from odqa.retrieval.build import build_dense_index

    corpus_config = (IndexConfig.from_file(config) if config else IndexConfig()).corpus
    start = time.perf_counter()
    if index_shards is not None:
        from odqa.distributed.dense_shards import build_sharded_dense_index
        from odqa.errors import OdqaError

        if shard is not None or shards > 1:
            raise OdqaError("--index-shards encodes on Ray in one run; leave out --shards/--shard")
        manifest, _ = build_sharded_dense_index(
            corpus, out, index_shards, encoder, corpus_config, faiss, limit, device, quiet, ray_address, workers,
            precision="bf16" if bf16 else "fp32",
        )  # fmt: skip
        typer.echo(
            f"encoded {manifest['counts']['passages']:,} passages into {out} as {index_shards} shards ({faiss}) "
            f"in {time.perf_counter() - start:.1f}s"
        )
        return
    index, _ = build_dense_index(
        corpus, out, encoder, corpus_config, faiss, limit, device, quiet, shards, shard, ray, ray_address, workers,
        precision="bf16" if bf16 else "fp32",
    )  # fmt: skip
    if index is None:
        typer.echo(
            f"encoded shard {shard} of {shards} into {out}.shards/ in {time.perf_counter() - start:.1f}s; run again "
            "without --shard to merge"
        )
        return
    typer.echo(f"encoded {index.n_passages:,} passages into {out} ({faiss}) in {time.perf_counter() - start:.1f}s")


@group.command("train-reranker")
def train_reranker_command(
    model: str = typer.Option(..., help="encoder to start from: a local folder (safetensors) or a hub id"),
    train: list[Path] = typer.Option(..., help="SQuAD-format training file(s)"),
    index: Path = typer.Option(..., help="sparse index giving positives and hard negatives"),
    out: Path = typer.Option(..., help="run folder"),
    negatives: Optional[int] = typer.Option(None, help="negatives per question"),
    max_length: Optional[int] = typer.Option(None, help="question + passage tokens"),
    config: Optional[Path] = typer.Option(None, help="JSON/YAML RerankerTrainingConfig"),
    epochs: Optional[float] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None, help="questions per batch"),
    lr: Optional[float] = typer.Option(None),
    max_steps: Optional[int] = typer.Option(None),
    max_minutes: Optional[float] = typer.Option(None),
    max_train_examples: Optional[int] = typer.Option(None, help="a seeded sample of the training questions"),
    mixed_precision: Optional[str] = MIXED_PRECISION_OPTION,
    freeze_embeddings: Optional[bool] = FREEZE_EMBEDDINGS_OPTION,
    freeze_layers: Optional[int] = FREEZE_LAYERS_OPTION,
    save_steps: Optional[int] = SAVE_STEPS_OPTION,
    seed: Optional[int] = typer.Option(None, help="seed of the new weights, the sampling and the batch order (42)"),
    fresh: bool = typer.Option(False, help="ignore checkpoint-last in --out and start over"),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Train a cross-encoder reranker (listwise, BM25 hard negatives)."""
    from odqa.training.rerank import RerankerTrainingConfig, train_reranker

    data = config_file(config)
    data["reranker"] = dict(data.get("reranker") or {}) | given(max_length=max_length)
    data |= given(
        model=model,
        train=[str(p) for p in train],
        index=str(index),
        out=str(out),
        negatives=negatives,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_steps=max_steps,
        max_minutes=max_minutes,
        max_train_examples=max_train_examples,
        mixed_precision=mixed_precision,
        freeze_embeddings=freeze_embeddings,
        freeze_layers=freeze_layers,
        save_steps=save_steps,
        seed=seed,
    )
    _report(train_reranker(RerankerTrainingConfig.from_dict(data), quiet=quiet, resume=not fresh), out, "reranker")


@group.command("tune-fusion")
def tune_fusion_command(
    index_path: list[Path] = typer.Option(..., "--index", help="index folder; repeat (two or more: sparse + dense)"),
    questions: Path = typer.Option(
        ..., help="TRAINING questions (SQuAD JSON/JSONL with answers, or topics with --qrels)"
    ),
    qrels: Optional[Path] = typer.Option(None, help="TREC qrels: tune on Recall/MRR by article instead"),
    k: str = typer.Option("1,5,20", "-k", help="cut-offs; the best has the highest mean over those ≥ 5"),
    limit: Optional[int] = typer.Option(None, help="a seeded random sample of N questions"),
    seed: int = typer.Option(13),
    out: Optional[Path] = typer.Option(None, help="write every candidate's scores as JSON here"),
) -> None:
    """Choose the fusion method and weights of several indexes on training questions (never the
    evaluation ones) and print the options that use them."""
    import json
    import random

    from rich.console import Console
    from rich.table import Table

    from odqa.io import atomic_write_text, read_qrels, read_questions
    from odqa.retrieval.hybrid import load_index, tune_fusion

    qs = read_questions(questions)
    if limit and limit < len(qs):
        qs = random.Random(seed).sample(qs, limit)
    start = time.perf_counter()
    result = tune_fusion(
        [load_index(p) for p in index_path], qs, parse_ks(k), qrels=read_qrels(qrels) if qrels else None
    )
    metrics = [m for m in result["best"] if m not in ("fusion", "weights")]
    table = Table(title=f"fusion on {result['questions']:,} questions ({time.perf_counter() - start:.1f}s)")
    for column in ("fusion", "weights", *metrics):
        table.add_column(column, justify="right")
    for c in sorted(result["candidates"], key=lambda c: [c[m] for m in metrics], reverse=True)[:15]:
        table.add_row(c["fusion"], ",".join(f"{w:g}" for w in c["weights"]), *(f"{100 * c[m]:.1f}" for m in metrics))
    Console().print(table)
    best = result["best"]
    typer.echo(f"best: --fusion {best['fusion']} --fusion-weights {','.join(f'{w:g}' for w in best['weights'])}")
    if out:
        atomic_write_text(
            out, json.dumps(result | {"index": [str(p) for p in index_path]}, ensure_ascii=False, indent=2)
        )
        typer.echo(f"wrote {out}")


@group.command("tune-rerank")
def tune_rerank_command(
    index_path: list[Path] = typer.Option(..., "--index", help="the first stage's index folder(s), as for search"),
    rerank: str = typer.Option(..., help="cross-encoder reranker folder (from train-reranker)"),
    questions: Path = typer.Option(..., help="TRAINING questions with answers (SQuAD JSON/JSONL)"),
    rerank_top: int = typer.Option(20, help="first-stage candidates the reranker re-sorts"),
    fusion: str = typer.Option("combsum", help="how several --index are fused"),
    fusion_weights: Optional[str] = typer.Option(None, help="one weight per --index"),
    rescore: Optional[str] = typer.Option(None, help=RESCORE_HELP),
    rescore_weight: float = typer.Option(1.0, help="the re-scorer's weight against the first stage's score"),
    rescore_top: int = typer.Option(20, help="first-stage candidates the re-scorer encodes per query"),
    rescore_bf16: bool = RESCORE_BF16_OPTION,
    rerank_bf16: bool = RERANK_BF16_OPTION,
    k: str = typer.Option(
        "1,5,20", "-k", help="cut-offs (≤ --rerank-top); the best has the highest mean over those ≤ 5"
    ),
    limit: Optional[int] = typer.Option(None, help="a seeded random sample of N questions"),
    seed: int = typer.Option(13),
    out: Optional[Path] = typer.Option(None, help="write every candidate's scores as JSON here"),
) -> None:
    """Choose the reranker's weight against the first stage (or the reranker alone) on training
    questions: each pair is scored once, every weight re-sorts those scores; prints the options."""
    import json
    import random

    from rich.console import Console
    from rich.table import Table

    from odqa.errors import OdqaError
    from odqa.io import atomic_write_text, read_questions
    from odqa.retrieval.rerank import Reranker, tune_rerank

    ks = parse_ks(k)
    if max(ks) > rerank_top:
        raise OdqaError(f"cut-off {max(ks)} is beyond the {rerank_top} candidates the reranker re-sorts (--rerank-top)")
    reranker = Reranker.load(rerank, precision="bf16" if rerank_bf16 else "fp32")
    first = retriever_from_options(
        index_path,
        fusion,
        fusion_weights,
        rescore_bf16,
        rescore=rescore,
        rescore_weight=rescore_weight,
        rescore_top=rescore_top,
    )
    qs = read_questions(questions)
    if limit and limit < len(qs):
        qs = random.Random(seed).sample(qs, limit)
    start = time.perf_counter()
    texts = [q.text for q in qs]
    candidates = first.search(texts, k=rerank_top, fetch=True)
    result = tune_rerank(reranker, qs, candidates, reranker.score_hits(texts, candidates), first.passages, ks)
    metrics = [f"top{k}" for k in ks]
    table = Table(title=f"reranking on {result['questions']:,} questions ({time.perf_counter() - start:.1f}s)")
    for column in ("reranker", *metrics):
        table.add_column(column, justify="right")
    table.add_row("not used (the first stage)", *(f"{100 * result['first_stage'][m]:.1f}" for m in metrics))
    for c in result["candidates"]:
        name = "alone" if c["weight"] is None else f"{c['fusion']} w={c['weight']:g}"
        table.add_row(name, *(f"{100 * c[m]:.1f}" for m in metrics))
    Console().print(table)
    best = result["best"]
    options = "" if best["weight"] is None else f" --rerank-weight {best['weight']:g} --rerank-fusion {best['fusion']}"
    options += " --rerank-bf16" if rerank_bf16 else ""
    typer.echo(f"best: --rerank {rerank} --rerank-top {rerank_top}{options}")
    if out:
        described = {"index": [str(p) for p in index_path], "rerank": rerank, "rerank_top": rerank_top}
        atomic_write_text(out, json.dumps(result | described, ensure_ascii=False, indent=2))
        typer.echo(f"wrote {out}")
