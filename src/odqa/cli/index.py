"""Sparse indexing, search, retrieval evaluation and analyzer commands."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import typer

from odqa.cli.common import (
    RERANK_BF16_OPTION,
    RERANK_FUSION_OPTION,
    RERANK_WEIGHT_OPTION,
    RESCORE_BF16_OPTION,
    RESCORE_HELP,
    parse_ks,
    parse_weights,
    retriever_from_options,
)
from odqa.errors import OdqaError
from odqa.runs import log_metrics

group = typer.Typer()


@group.command()
def index(
    corpus: Optional[Path] = typer.Option(
        None, help="documents: JSONL(.gz/.xz) with id/title/text, SQuAD JSON, or wiki dict JSON"
    ),
    out: Path = typer.Option(..., help="index folder to write (replaced atomically), or to update"),
    add: Optional[Path] = typer.Option(
        None, help="update the index at --out: add these documents (any --corpus format), analysing only them"
    ),
    delete: Optional[list[str]] = typer.Option(
        None, help="update the index at --out: delete documents by id (ID,ID,... or @FILE of one id per line)"
    ),
    replace: bool = typer.Option(False, help="with --add: replace documents whose ids are already indexed"),
    dense: Optional[list[Path]] = typer.Option(
        None, help="with --add/--delete: a dense index built beside --out, updated with it (repeatable)"
    ),
    device: Optional[str] = typer.Option(None, help="with --dense: device to encode added passages on"),
    config: Optional[Path] = typer.Option(None, help="JSON/YAML IndexConfig; the options below override it"),
    analyzer: Optional[str] = typer.Option(None, help="e.g. mecab, 'mecab:compound=none', ngram, kiwi, whitespace"),
    method: Optional[str] = typer.Option(None, help="robertson, atire, bm25l, bm25+, lucene or tfidf"),
    k1: Optional[float] = typer.Option(None),
    b: Optional[float] = typer.Option(None),
    delta: Optional[float] = typer.Option(None),
    target_chars: Optional[int] = typer.Option(None, help="passage length to aim for"),
    overlap_chars: Optional[int] = typer.Option(None),
    title: Optional[bool] = typer.Option(None, "--title/--no-title", help="prepend document titles to passages"),
    processes: Optional[int] = typer.Option(None, help="analysis processes (default: all cores)"),
    cache_dir: Optional[Path] = typer.Option(None, help="analysis cache (default $ODQA_CACHE or ~/.cache/odqa)"),
    no_cache: bool = typer.Option(False, "--no-cache", help="analyse again even when a cached analysis exists"),
    limit: Optional[int] = typer.Option(None, help="index only the first N documents"),
    reuse: bool = typer.Option(False, help="keep an existing index built from the same file with the same config"),
    shards: Optional[int] = typer.Option(
        None, min=1, help="cut the index into N shards built as Ray tasks, searched by one Ray actor each (ray extra)"
    ),
    ray_address: Optional[str] = typer.Option(
        None, help="with --shards: the Ray cluster to build on (default $RAY_ADDRESS, else a local one)"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Build a sparse (BM25/TF-IDF) index over a document collection, or add and delete documents
    of a built one (--add/--delete: results equal a rebuild of the final collection)."""
    if add is not None or delete:
        if shards is not None:
            raise OdqaError("a sharded index is not updated in place: build it again with --corpus and --shards")
        if corpus is not None:
            raise OdqaError("give --corpus to build an index, or --add/--delete to update the one at --out")
        _update(out, add, _delete_ids(delete or []), replace, dense or [], processes, device, quiet)
        return
    if corpus is None:
        raise OdqaError("missing --corpus (the documents to index), or --add/--delete to update --out")
    from odqa.analysis.base import parse_analyzer_spec
    from odqa.config import IndexConfig
    from odqa.retrieval.build import build_sparse_index, default_cache_dir, is_current

    cfg = IndexConfig.from_file(config) if config else IndexConfig()
    corpus_updates = {
        k: v
        for k, v in {"target_chars": target_chars, "overlap_chars": overlap_chars, "title": title}.items()
        if v is not None
    }
    scoring_updates = {k: v for k, v in {"method": method, "k1": k1, "b": b, "delta": delta}.items() if v is not None}
    data = cfg.to_dict()
    data["corpus"].update(corpus_updates)
    data["scoring"].update(scoring_updates)
    if analyzer:
        data["analyzer"] = parse_analyzer_spec(analyzer).model_dump(mode="json")
    cfg = IndexConfig.from_dict(data)
    if reuse and is_current(out, corpus, cfg, limit):
        typer.echo(f"{out} is up to date (same corpus file and config); not rebuilt")
        return
    start = time.perf_counter()
    if shards is not None:
        _sharded(corpus, out, shards, cfg, limit, quiet, ray_address, start)
        return
    idx, timings = build_sparse_index(
        corpus,
        out,
        cfg.corpus,
        cfg.analyzer,
        cfg.scoring,
        cache_dir=None if no_cache else (cache_dir or default_cache_dir()),
        processes=processes,
        limit=limit,
        quiet=quiet,
    )
    counts = idx.manifest["counts"]
    log_metrics({"counts": counts, "documents": idx.manifest["corpus"]["documents"], **timings})
    typer.echo(
        f"indexed {idx.manifest['corpus']['documents']:,} documents as {counts['passages']:,} passages "
        f"({counts['vocab']:,} terms) into {out} in {time.perf_counter() - start:.1f}s "
        f"(analysis {timings['analysis_s']:.1f}s)"
    )


def _sharded(corpus, out, shards, cfg, limit, quiet, address, start) -> None:
    from odqa.distributed.sparse_shards import build_sharded_index

    manifest, timings = build_sharded_index(
        corpus, out, shards, cfg.corpus, cfg.analyzer, cfg.scoring, limit=limit, quiet=quiet, address=address
    )
    counts = manifest["counts"]
    log_metrics({"counts": counts, **timings})
    typer.echo(
        f"indexed {counts['documents']:,} documents as {counts['passages']:,} passages ({counts['vocab']:,} terms) "
        f"into {out} as {shards} shards in {time.perf_counter() - start:.1f}s (analysis {timings['analysis_s']:.1f}s)"
    )


def _delete_ids(values: list[str]) -> list[str]:
    ids: list[str] = []
    for value in values:
        if value.startswith("@"):
            file = Path(value[1:])
            try:
                ids.extend(line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip())
            except (OSError, UnicodeDecodeError) as e:
                raise OdqaError(f"cannot read the ids to delete from {file}: {e}") from None
        else:
            ids.extend(part.strip() for part in value.split(",") if part.strip())
    if values and not ids:
        raise OdqaError("--delete names no document ids")
    return ids


def _update(out, add, delete, replace, dense, processes, device, quiet) -> None:
    from odqa.retrieval.update import update_index

    report = update_index(out, add, delete, replace, dense, processes=processes, device=device, quiet=quiet)
    replaced = f" ({report.replaced:,} replaced)" if report.replaced else ""
    typer.echo(
        f"updated {out}{' and ' + ', '.join(report.dense) if report.dense else ''}: "
        f"+{report.added:,} documents{replaced}, -{report.deleted:,} documents; "
        f"{report.passages_before:,} → {report.passages_after:,} passages ({report.new_passages:,} new, analysed) "
        f"in {report.seconds:.1f}s"
    )


@group.command()
def search(
    queries: list[str] = typer.Argument(..., help="one or more queries"),
    index_path: list[Path] = typer.Option(..., "--index", help="index folder; repeat to fuse several (sparse + dense)"),
    k: int = typer.Option(5, "-k", help="passages per query"),
    fusion: str = typer.Option("combsum", help="how several indexes are fused: combsum, rrf or zscore"),
    fusion_weights: Optional[str] = typer.Option(
        None, help="one weight per --index, e.g. 1,0.5 (`odqa tune-fusion` picks them)"
    ),
    rerank: Optional[str] = typer.Option(None, help="cross-encoder reranker folder (from train-reranker)"),
    rerank_top: int = typer.Option(50, help="fused candidates the reranker re-scores"),
    rerank_weight: Optional[float] = RERANK_WEIGHT_OPTION,
    rerank_fusion: str = RERANK_FUSION_OPTION,
    rerank_bf16: bool = RERANK_BF16_OPTION,
    rescore: Optional[str] = typer.Option(None, help=RESCORE_HELP),
    rescore_weight: float = typer.Option(1.0, help="the re-scorer's weight against the first stage's score"),
    rescore_top: int = typer.Option(20, help="first-stage candidates the re-scorer encodes per query"),
    rescore_bf16: bool = RESCORE_BF16_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print JSON lines instead of a table"),
    width: int = typer.Option(160, help="characters of passage text to show"),
) -> None:
    """Search one or more indexes (fused, optionally reranked) and print the top passages."""
    idx = retriever_from_options(
        index_path,
        fusion,
        fusion_weights,
        rescore_bf16,
        rerank_bf16,
        rerank=rerank,
        rerank_top=rerank_top,
        rerank_weight=rerank_weight,
        rerank_fusion=rerank_fusion,
        rescore=rescore,
        rescore_weight=rescore_weight,
        rescore_top=rescore_top,
    )
    results = idx.search(queries, k=k, fetch=True)
    for query, hits in zip(queries, results):
        if as_json:
            for hit in hits:
                p = hit.passage
                typer.echo(
                    json.dumps(
                        {
                            "query": query,
                            "rank": hit.rank,
                            "score": round(hit.score, 4),
                            "passage_id": hit.passage_id,
                            "title": p.title,
                            "doc_ids": [s.doc_id for s in p.sources],
                            "text": p.text,
                        },
                        ensure_ascii=False,
                    )
                )
            continue
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{query}", show_lines=True)
        for column in ("rank", "score", "title", "passage"):
            table.add_column(column, overflow="fold")
        for hit in hits:
            text = hit.passage.body.replace("\n", " ")
            table.add_row(
                str(hit.rank), f"{hit.score:.2f}", hit.passage.title, text[:width] + ("…" if len(text) > width else "")
            )
        if not hits:
            table.add_row("-", "-", "-", "no passage shares a term with this query")
        Console().print(table)


@group.command("eval-retrieval")
def eval_retrieval(
    index_path: list[Path] = typer.Option(..., "--index", help="index folder; repeat to fuse several"),
    questions: Path = typer.Option(..., help="SQuAD JSON, JSONL (id, question, answers) or topics TSV"),
    fusion: str = typer.Option("combsum", help="how several indexes are fused: combsum, rrf or zscore"),
    fusion_weights: Optional[str] = typer.Option(
        None, help="one weight per --index, e.g. 1,0.5 (`odqa tune-fusion` picks them)"
    ),
    rerank: Optional[str] = typer.Option(None, help="cross-encoder reranker folder"),
    rerank_top: int = typer.Option(50, help="fused candidates the reranker re-scores"),
    rerank_weight: Optional[float] = RERANK_WEIGHT_OPTION,
    rerank_fusion: str = RERANK_FUSION_OPTION,
    rerank_bf16: bool = RERANK_BF16_OPTION,
    rescore: Optional[str] = typer.Option(None, help=RESCORE_HELP),
    rescore_weight: float = typer.Option(1.0, help="the re-scorer's weight against the first stage's score"),
    rescore_top: int = typer.Option(20, help="first-stage candidates the re-scorer encodes per query"),
    rescore_bf16: bool = RESCORE_BF16_OPTION,
    qrels: Optional[Path] = typer.Option(None, help="TREC qrels (qid Q0 docid rel) for Recall/MRR by article"),
    k: str = typer.Option("1,5,10,20,100", "-k", help="comma-separated cut-offs"),
    limit: Optional[int] = typer.Option(None, help="a seeded random sample of N questions"),
    seed: int = typer.Option(13),
    out: Optional[Path] = typer.Option(None, help="write the metrics as JSON here"),
) -> None:
    """Has-answer top-k, gold-document top-k and (with qrels) Recall/MRR of an index on a question set."""
    import random

    from odqa.evaluation import evaluate_retrieval
    from odqa.io import atomic_write_text, read_qrels, read_questions

    ks = parse_ks(k)
    idx = retriever_from_options(
        index_path,
        fusion,
        fusion_weights,
        rescore_bf16,
        rerank_bf16,
        rerank=rerank,
        rerank_top=rerank_top,
        rerank_weight=rerank_weight,
        rerank_fusion=rerank_fusion,
        rescore=rescore,
        rescore_weight=rescore_weight,
        rescore_top=rescore_top,
    )
    qs = read_questions(questions)
    if limit and limit < len(qs):
        qs = random.Random(seed).sample(qs, limit)
    result = evaluate_retrieval(idx, qs, ks, read_qrels(qrels) if qrels else None)
    result |= {
        "index": [str(p) for p in index_path],
        "fusion": fusion,
        "fusion_weights": parse_weights(fusion_weights),
        "rerank": rerank,
        "rerank_weight": rerank_weight,
        "rerank_fusion": rerank_fusion if rerank_weight is not None else None,
        "rerank_precision": ("bf16" if rerank_bf16 else "fp32") if rerank else None,
        "rescore": idx.rescorer.to_dict() if rescore else None,
        "questions_file": str(questions),
    }
    _print_eval(result)
    log_metrics({k: v for k, v in result.items() if k in ("has_answer", "gold_document", "qrels", "questions")})
    if out:
        atomic_write_text(out, json.dumps(result, ensure_ascii=False, indent=2))
        typer.echo(f"wrote {out}")


def _print_eval(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    typer.echo(f"retrieval: {result['questions']:,} questions, search {result['search_s']:.1f}s")
    rows = [name for name in ("has_answer", "gold_document") if name in result]
    if rows:
        table = Table()
        table.add_column("metric (% of questions)")
        ks = result["k"]
        for k in ks:
            table.add_column(f"@{k}", justify="right")
        for name in rows:
            table.add_row(
                f"{name} ({result[name]['questions']:,} q)", *(f"{100 * result[name][f'top{k}']:.1f}" for k in ks)
            )
        Console().print(table)
    if "qrels" in result:
        q = result["qrels"]
        typer.echo(
            f"qrels ({q['queries']} queries): "
            + ", ".join(f"{m} {100 * v:.1f}" for m, v in q.items() if m != "queries")
        )


@group.command()
def analyze(
    text: str = typer.Argument(...),
    analyzer: str = typer.Option("mecab", help="analyzer spec, as for `odqa index`"),
) -> None:
    """Show the tokens an analyzer makes of a text."""
    from odqa.analysis.base import parse_analyzer_spec

    typer.echo(" ".join(parse_analyzer_spec(analyzer).build()(text)))
