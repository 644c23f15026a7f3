"""What the command modules share: parsing of list options, config files and given options, and the
options and loading of the question-answering pipeline (ask, predict, evaluate, serve, pseudo-label,
tune-pipeline)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from odqa.errors import OdqaError
from odqa.pipeline import DEFAULT_K

INDEX_HELP = "index folder (from `odqa index` / `odqa index-dense`); repeat to fuse several"
RESCORE_HELP = "bi-encoder folder (e.g. models/me5-small) that re-scores the top passages on the fly (no dense index)"


def parse_weights(text: str | None, option: str = "--fusion-weights") -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(w) for w in text.replace(" ", ",").split(",") if w]
    except ValueError:
        raise OdqaError(f"{option} expects numbers like 1,0.5, got {text!r}") from None


def parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.replace(" ", ",").split(",") if k})
    except ValueError:
        raise OdqaError(f"-k expects numbers like 1,5,20,100, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise OdqaError(f"-k values must be ≥ 1, got {text!r}")
    return ks


def config_file(path: Path | None) -> dict:
    from odqa.settings import load_config_file

    return load_config_file(path) if path else {}


def given(**options) -> dict:
    return {k: v for k, v in options.items() if v is not None}


def warn_if_trained_on(model: str | Path | list | None, questions: Path, question_ids=None) -> None:
    """One warning line when the questions scored were in `model`'s training data (its record's
    fingerprints say so; hub ids and folders without a record are not checked). Several models
    (an ensemble): a line for each."""
    import typer

    from odqa.fingerprints import training_overlap

    for one in model if isinstance(model, (list, tuple)) else [model]:
        if one and Path(one).is_dir():
            warning = training_overlap(one, questions, set(question_ids) if question_ids is not None else None)
            if warning:
                typer.echo(f"warning: {warning}", err=True)


def model_of_predictions(predictions: Path) -> str | None:
    """The reader that wrote a predictions file, from the run record beside it (`odqa read`/`predict`)."""
    import json

    from odqa.runs import RECORD_FILE

    record = predictions.parent / RECORD_FILE
    try:
        config = json.loads(record.read_text(encoding="utf-8")).get("config") or {}
    except (OSError, ValueError):
        return None
    return config.get("reader_path") or config.get("reader")


READER_HELP = (
    "reader folder (from `odqa train-reader`) or hub id; default $ODQA_READER. Repeat it for an ensemble "
    "that votes by character offsets (readers on different tokenizers vote together)"
)
READER_OPTION = typer.Option(None, "--reader", help=READER_HELP)
WEIGHTS_OPTION = typer.Option(None, help="one weight per --reader, e.g. 1,0.5 (`odqa ensemble --gold` chooses them)")
ENSEMBLE_OPTION = typer.Option(None, "--ensemble", help="how several readers vote: soft (default), mean or max")
# the options every pipeline command (ask, predict, evaluate, serve) shares
K_OPTION = typer.Option(
    None, "-k", help=f"passages read per question (default: the config's k, else {DEFAULT_K}; see tune-pipeline)"
)
INDEX_OPTION = typer.Option(None, help=INDEX_HELP)
RERANK_OPTION = typer.Option(None, help="cross-encoder reranker folder (from train-reranker)")
RERANK_WEIGHT_OPTION = typer.Option(
    None,
    help="fuse the reranker's score with the first stage's at this weight (default: re-sort by the reranker alone)",
)
RERANK_FUSION_OPTION = typer.Option(
    "combsum", help="how --rerank-weight fuses the two scores: combsum (min-max), zscore or rrf"
)
PIPELINE_RERANK_FUSION_OPTION = typer.Option(
    None, help="how --rerank-weight fuses the two scores: combsum (min-max), zscore or rrf (default: the config's)"
)
RESCORE_OPTION = typer.Option(None, help=RESCORE_HELP)
BF16_OPTION = typer.Option(
    False, "--bf16", help="read in bfloat16 (faster on GPUs and on CPUs with AVX512-BF16 or AMX; slow on others)"
)
RESCORE_BF16_OPTION = typer.Option(
    False, "--rescore-bf16", help="re-score in bfloat16 (faster on GPUs and on CPUs with AVX512-BF16 or AMX)"
)
RERANK_BF16_OPTION = typer.Option(
    False, "--rerank-bf16", help="rerank in bfloat16 (faster on GPUs and on CPUs with AVX512-BF16 or AMX)"
)
CONFIG_OPTION = typer.Option(None, help="JSON/YAML PipelineConfig")
DEVICE_OPTION = typer.Option(None, help="cpu, cuda or cuda:N (default: the config's, else a GPU when there is one)")
RETRIEVER_WEIGHT_OPTION = typer.Option(
    None, help="answer score = reader score + this × the passage's retrieval score (`odqa tune-pipeline` chooses it)"
)

# the loop settings every trainer shares (train-reader, train-dense, train-reranker, re train)
MIXED_PRECISION_OPTION = typer.Option(
    None, help="auto, no, fp16 or bf16 (bf16 is fast on CPUs with AVX512-BF16 or AMX)"
)
FREEZE_EMBEDDINGS_OPTION = typer.Option(
    None, "--freeze-embeddings/--train-embeddings", help="keep the word embeddings fixed (faster on a CPU)"
)
FREEZE_LAYERS_OPTION = typer.Option(
    None, help="also keep all embeddings and the lowest N encoder layers fixed (no backward below them)"
)
SAVE_STEPS_OPTION = typer.Option(None, help="optimizer steps between checkpoints (a killed run resumes from the last)")


def retriever_from_options(index_path, fusion, fusion_weights, rescore_bf16=False, rerank_bf16=False, **options):
    """The indexes as `search`, `eval-retrieval` and `tune-rerank` were asked to open them (fused,
    re-scored, reranked): `options` are `open_retriever`'s rerank_* and rescore_* settings."""
    from odqa.retrieval.hybrid import open_retriever

    return open_retriever(
        index_path,
        fusion=fusion,
        weights=parse_weights(fusion_weights),
        rescore_precision="bf16" if rescore_bf16 else "fp32",
        rerank_precision="bf16" if rerank_bf16 else "fp32",
        **options,
    )


def pipeline_from_options(
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
    retriever_weight: float | None = None,
    rescore_bf16: bool = False,
    bf16: bool = False,
    rerank_weight: float | None = None,
    rerank_fusion: str | None = None,
    rerank_bf16: bool = False,
):
    """The pipeline the options describe, loaded (with `load_reader` false the reader folders are
    only checked: they load where they read, e.g. in Ray actors). `bf16`: the reader(s) read in
    bfloat16, as `"reader_options": {"precision": "bf16"}` in a config does; options left unset keep
    the config's settings."""
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
    if bf16:
        data["reader_options"] = {**(data.get("reader_options") or {}), "precision": "bf16"}
    data |= given(
        reader_weights=parse_weights(reader_weights, "--reader-weights"),
        ensemble_method=ensemble,
        k=k,
        retriever_weight=retriever_weight,
        device=device,
        rerank=rerank,
        rescore=rescore,
        rescore_precision="bf16" if rescore_bf16 else None,
        rerank_weight=rerank_weight,
        rerank_fusion=rerank_fusion,
        rerank_precision="bf16" if rerank_bf16 else None,
    )
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
