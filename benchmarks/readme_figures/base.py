"""What every figure module shares: the Figure record, results files by name, and the
lookups of a results file's rows."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "results"


@dataclass(frozen=True)
class Figure:
    results: str  # a JSON file in benchmarks/results
    value: Callable[[dict], float | int | str]  # the number, from that file's data
    format: str = "{}"  # how the README prints it


def system(data: dict, name: str) -> dict:
    """One row of a results file's "systems" list, by its exact name."""
    for row in data["systems"]:
        if row["system"] == name:
            return row
    raise KeyError(f"no system {name!r}")


def topk(data: dict, name: str, questions: str, k: int) -> float:
    return 100 * system(data, name)["metrics"][questions][f"top{k}"]


def gain(data: dict, peer: str, questions: str, k: int, over: str = "odqa (default)") -> float:
    """Top-k points `over` gains on `peer`."""
    return topk(data, over, questions, k) - topk(data, peer, questions, k)


@functools.cache
def results(file: str) -> dict:
    """A results file's data ({} while it does not exist)."""
    path = RESULTS / file
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def per_run(prefix: str, runs: dict[str, str], family: dict[str, tuple[Callable[[dict], float], str]]) -> dict:
    """`{prefix}{run}.{name}` for each run (name → results file) and each figure of the family that
    its results hold: a run that skipped a stage has no figures of it, so the README cannot name them."""
    figures = {}
    for run, file in runs.items():
        for name, (value, form) in family.items():
            try:
                value(results(file))
            except (KeyError, IndexError, TypeError):
                continue
            figures[f"{prefix}{run}.{name}"] = Figure(file, value, form)
    return figures
