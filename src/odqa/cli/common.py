"""What the command modules share: parsing of list options, config files and given options."""

from __future__ import annotations

from pathlib import Path

from odqa.errors import OdqaError

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

    from odqa.runs import training_overlap

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
