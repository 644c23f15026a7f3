"""Ensembles of readers, voting over character spans.

Every reader reports its candidates as character offsets into a passage, so readers on different
tokenizers can vote together: a span is the triple (passage, start, end) after trimming spaces,
whatever tokens produced it. Scores must be comparable across readers — per-window probabilities,
as `--mode prob` gives (n-best scores are their logarithms).

The ways to combine are small named functions (`VOTERS`): weighted soft voting (the mean of the
readers' probabilities, a reader that did not propose a span giving it 0), the plain mean, the max,
and hard voting (each reader's top answer, by normalized text, gets its weight; ties go to the soft
vote). Weights are chosen on labelled (training) questions with `tune_weights`."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from odqa.errors import OdqaError

NBest = dict[str, list[dict]]  # question id → candidates (text, start, end, score, …), best first


# --- reading n-best files ----------------------------------------------------------------------


def read_nbest(path: str | Path) -> NBest:
    """An `nbest_predictions.json` from `odqa read` or `odqa predict` (or the folder holding one),
    checked: every candidate has text, start, end and score."""
    path = Path(path)
    if path.is_dir():
        path = path / "nbest_predictions.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise OdqaError(f"n-best file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise OdqaError(f"{path} is not a readable JSON n-best file ({e})") from None
    if not isinstance(data, dict):
        raise OdqaError(f"{path} should map question ids to lists of candidates, got a JSON {type(data).__name__}")
    for qid, candidates in data.items():
        if not isinstance(candidates, list):
            raise OdqaError(f"{path}: question {qid!r} should have a list of candidates")
        for c in candidates:
            if not isinstance(c, dict) or not {"text", "start", "end", "score"} <= c.keys():
                raise OdqaError(f"{path}: question {qid!r} has a candidate without text, start, end and score: {c!r}")
    return data


def check_same_questions(runs: Sequence[NBest], names: Sequence[str]) -> list[str]:
    """The question ids all runs share, in the first run's order; refuses runs that differ."""
    first = set(runs[0])
    for run, name in zip(runs[1:], names[1:]):
        if set(run) != first:
            only_first, only_this = sorted(first - set(run)), sorted(set(run) - first)
            raise OdqaError(
                f"{name} covers other questions than {names[0]}: {len(only_first)} only in the first "
                f"(e.g. {only_first[:3]}), {len(only_this)} only in this one (e.g. {only_this[:3]}); "
                "ensemble n-best files made on the same questions"
            )
    return list(runs[0])


# --- spans and votes ---------------------------------------------------------------------------


def span_key(candidate: dict) -> tuple:
    """Where a candidate is: its passage (`passage_id` from `predict`, `context` from `read`, else
    the single context) and its character span with surrounding spaces trimmed, so that a tokenizer
    whose pieces carry the leading space agrees with one whose pieces do not."""
    text, start, end = candidate["text"], int(candidate["start"]), int(candidate["end"])
    start += len(text) - len(text.lstrip())
    end -= len(text) - len(text.rstrip())
    return (candidate.get("passage_id", candidate.get("context", 0)), start, end)


def _soft(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return probs @ weights / weights.sum()


def _mean(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    used = weights > 0
    return probs[:, used].mean(axis=1)


def _max(probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return probs[:, weights > 0].max(axis=1)


# name → (spans × readers probabilities, reader weights) → each span's combined probability
VOTERS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {"soft": _soft, "mean": _mean, "max": _max}
METHODS = (*VOTERS, "hard")


@dataclass(frozen=True)
class EnsembleConfig:
    method: str = "soft"
    weights: tuple[float, ...] | None = None  # one per reader; equal when None
    n_best: int = 20
    merge_text: bool = False  # one entry per answer text: the probabilities of its spans add up

    def check(self, n_readers: int) -> EnsembleConfig:
        if self.method not in METHODS:
            raise OdqaError(f"unknown ensemble method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.weights is not None:
            if len(self.weights) != n_readers:
                raise OdqaError(f"{len(self.weights)} weights given for {n_readers} readers; give one per reader")
            if any(w < 0 or not math.isfinite(w) for w in self.weights) or not any(self.weights):
                raise OdqaError(f"ensemble weights must be ≥ 0 and not all 0, got {list(self.weights)}")
        if self.n_best < 1:
            raise OdqaError(f"n_best must be ≥ 1, got {self.n_best}")
        return self


def combine_question(per_reader: Sequence[list[dict]], config: EnsembleConfig, normalize=None) -> list[dict]:
    """One question's ensemble n-best from each reader's candidates (lists aligned with the
    readers). Each output candidate keeps the fields of its best proposer, with `score` the
    logarithm of the combined probability and `votes` the number of readers that proposed it."""
    weights = np.asarray(config.weights or [1.0] * len(per_reader), dtype=np.float64)
    index: dict[tuple, int] = {}
    records: list[dict] = []
    rows: list[np.ndarray] = []
    for r, candidates in enumerate(per_reader):
        for c in candidates:
            key = span_key(c)
            if key not in index:
                index[key] = len(records)
                records.append(c)
                rows.append(np.zeros(len(per_reader)))
            i = index[key]
            p = math.exp(float(c["score"]))
            if p > rows[i][r]:  # a reader's best occurrence of the span (windows overlap)
                rows[i][r] = p
                if weights[r] > 0 and p > math.exp(float(records[i]["score"])):
                    records[i] = c
    if not records:
        return []
    probs = np.vstack(rows)
    voter = VOTERS["soft" if config.method == "hard" else config.method]
    combined = voter(probs, weights)
    votes = (probs[:, weights > 0] > 0).sum(axis=1)
    keys = list(index)
    out = []
    for i, record in enumerate(records):
        if votes[i] == 0:
            continue
        passage, start, end = keys[i]
        text = record["text"].strip()
        out.append(
            record | {"text": text, "start": start, "end": end, "score": _log(combined[i]), "votes": int(votes[i])}
        )
    if config.merge_text:
        out = _merge_by_text(out, normalize)
    if config.method == "hard":
        out = _hard_order(out, per_reader, weights, normalize)
    else:
        out.sort(key=lambda c: (-c["score"], str(c.get("passage_id", c.get("context", 0))), c["start"]))
    return out[: config.n_best]


def _log(p: float) -> float:
    return float(math.log(p)) if p > 0 else -math.inf


def _merge_by_text(candidates: list[dict], normalize) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for c in candidates:
        groups.setdefault((normalize or str.strip)(c["text"]), []).append(c)
    merged = []
    for group in groups.values():
        top = max(group, key=lambda c: c["score"])
        total = sum(math.exp(c["score"]) for c in group)
        merged.append(top | {"score": _log(total), "votes": max(c["votes"] for c in group)})
    return merged


def _hard_order(candidates: list[dict], per_reader, weights: np.ndarray, normalize) -> list[dict]:
    """Each reader's top answer gets its weight, by normalized text; more votes first, then the
    soft score."""
    norm = normalize or str.strip
    ballots: dict[str, float] = {}
    for w, reader in zip(weights, per_reader):
        if reader and w > 0:
            text = norm(max(reader, key=lambda c: float(c["score"]))["text"])
            ballots[text] = ballots.get(text, 0.0) + float(w)
    for c in candidates:
        c["ballots"] = ballots.get(norm(c["text"]), 0.0)
    candidates.sort(key=lambda c: (-c["ballots"], -c["score"], c["start"]))
    return candidates


def combine(runs: Sequence[NBest], config: EnsembleConfig | None = None, names=None, normalize=None) -> NBest:
    """The ensemble's n-best per question, from several readers' n-best on the same questions.
    `normalize` maps an answer text to what counts as the same answer (hard voting, merging)."""
    if not runs:
        raise OdqaError("an ensemble needs at least one reader's n-best")
    config = (config or EnsembleConfig()).check(len(runs))
    names = list(names or [f"reader {i + 1}" for i in range(len(runs))])
    qids = check_same_questions(runs, names)
    return {qid: combine_question([run[qid] for run in runs], config, normalize) for qid in qids}


def best_answers(nbest: NBest) -> dict[str, str]:
    """The competition's predictions: each question's top text ('' when none)."""
    return {qid: (candidates[0]["text"] if candidates else "") for qid, candidates in nbest.items()}


# --- choosing weights on labelled questions ----------------------------------------------------


def tune_weights(
    runs: Sequence[NBest],
    gold: Mapping[str, Sequence[str]],
    method: str = "soft",
    metric: str = "korquad",
    grid: Sequence[float] = (0.0, 0.5, 1.0, 2.0),
    names=None,
    merge_text: bool = False,
) -> tuple[tuple[float, ...], list[dict]]:
    """The weights (from `grid`, one per reader) whose ensemble scores best on `gold` — EM, then
    F1 — with every combination tried. Use training questions (or out-of-fold predictions), never
    the set the ensemble is reported on. More than four readers: coordinate ascent from equal weights."""
    from odqa.metrics.answers import get_answer_metric, score_predictions

    answer_metric = get_answer_metric(metric)
    normalize = answer_metric.normalize
    qids = check_same_questions(runs, list(names or [f"reader {i + 1}" for i in range(len(runs))]))
    missing = [q for q in qids if q not in gold]
    if missing:
        raise OdqaError(f"{len(missing)} questions of the n-best files have no gold answer (e.g. {missing[:3]})")
    gold = {q: gold[q] for q in qids}
    tried: dict[tuple[float, ...], dict] = {}

    def score(weights: tuple[float, ...]) -> tuple[float, float]:
        if weights not in tried:
            config = EnsembleConfig(method=method, weights=weights, n_best=1, merge_text=merge_text)
            predictions = best_answers({q: combine_question([r[q] for r in runs], config, normalize) for q in qids})
            result = score_predictions(predictions, gold, answer_metric)
            partial = result[answer_metric.partial_name]
            tried[weights] = {"weights": list(weights), "exact_match": result["exact_match"], "f1": partial}
        return tried[weights]["exact_match"], tried[weights]["f1"]

    if len(runs) <= 4:
        ratios = set()
        for weights in itertools.product(grid, repeat=len(runs)):
            ratio = tuple(round(w / max(weights), 6) for w in weights) if any(weights) else None
            if ratio is not None and ratio not in ratios:  # 2,2 is the ensemble 1,1 is
                ratios.add(ratio)
                score(tuple(float(w) for w in weights))
    else:
        current = tuple(1.0 for _ in runs)
        score(current)
        for _ in range(2):
            for r in range(len(runs)):
                options = [current[:r] + (float(w),) + current[r + 1 :] for w in grid]
                current = max((w for w in options if any(w)), key=score)
    best = max(tried, key=lambda w: (score(w), -sum(w)))
    return best, sorted(tried.values(), key=lambda row: (-row["exact_match"], -row["f1"]))
