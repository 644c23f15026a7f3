"""The ensemble command of the `odqa` command line: several readers' n-best files → one.
Registered on the app in `odqa.cli`; a thin wrapper over `odqa.ensemble`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from odqa.cli.common import parse_weights
from odqa.errors import OdqaError

group = typer.Typer()


@group.command("ensemble")
def ensemble_command(
    nbest: list[Path] = typer.Option(
        ..., help="a reader's nbest_predictions.json (or its folder) from `odqa read`/`predict`; repeat per reader"
    ),
    out: Path = typer.Option(..., help="folder for predictions.json, nbest_predictions.json and ensemble.json"),
    method: str = typer.Option("soft", help="soft (weighted mean of probabilities), mean, max or hard (text votes)"),
    weights: Optional[str] = typer.Option(None, help="one weight per reader, e.g. 1,0.5,2 (default: equal)"),
    gold: Optional[Path] = typer.Option(
        None, help="labelled TRAINING questions (SQuAD format): choose the weights on them, then write with those"
    ),
    metric: str = typer.Option("korquad", help="squad, korquad or klue: what counts as the same answer, and tuning"),
    merge_text: bool = typer.Option(False, help="one entry per answer text; its spans' probabilities add up"),
    n_best: int = typer.Option(20, help="candidates kept per question"),
) -> None:
    """Combine readers (any tokenizers) by voting over character spans of the same passages."""
    from odqa.ensemble import EnsembleConfig, best_answers, combine, read_nbest, tune_weights
    from odqa.fingerprints import file_fingerprint
    from odqa.io.atomic import atomic_write_text
    from odqa.metrics.answers import get_answer_metric

    names = [str(p) for p in nbest]
    if n_best < 1:
        raise OdqaError(f"--n-best must be ≥ 1, got {n_best}")
    runs = [read_nbest(p) for p in nbest]
    normalize = get_answer_metric(metric).normalize
    chosen = parse_weights(weights, "--weights")
    tuning = None
    if gold is not None:
        from odqa.io import read_questions

        answers = {q.id: q.answers for q in read_questions(gold)}
        best, tried = tune_weights(runs, answers, method, metric, names=names, merge_text=merge_text)
        chosen = list(best)
        tuning = {"gold": str(gold), "best": tried[0], "tried": tried}
        typer.echo(
            f"weights chosen on {gold}: {','.join(f'{w:g}' for w in best)} "
            f"(EM {tried[0]['exact_match']:.1f}, F1 {tried[0]['f1']:.1f}; {len(tried)} combinations tried)"
        )
    config = EnsembleConfig(
        method=method, weights=tuple(chosen) if chosen else None, n_best=n_best, merge_text=merge_text
    )
    combined = combine(runs, config, names, normalize)
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "readers": [file_fingerprint(_file(p)) for p in nbest],
        "method": method,
        "weights": list(config.weights) if config.weights else [1.0] * len(runs),
        "merge_text": merge_text,
        "metric": metric,
        "tuning": tuning,
    }
    atomic_write_text(out / "nbest_predictions.json", json.dumps(combined, ensure_ascii=False, indent=2))
    atomic_write_text(out / "predictions.json", json.dumps(best_answers(combined), ensure_ascii=False, indent=2))
    atomic_write_text(out / "ensemble.json", json.dumps(record, ensure_ascii=False, indent=2))
    typer.echo(f"{len(combined):,} questions, {len(runs)} readers ({method}); wrote {out}/predictions.json")


def _file(path: Path) -> Path:
    return path / "nbest_predictions.json" if path.is_dir() else path
