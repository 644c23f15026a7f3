"""Curriculum learning: easy training examples first, as the competition's teams tried it.

An option of the shared loop (`LoopSettings.curriculum`), not a trainer of its own. Each item gets
a difficulty (lower = easier); for the first `curriculum_epochs` epochs the items are cut into
`curriculum_buckets` equal buckets by difficulty and trained bucket after bucket, easiest first,
shuffled and length-grouped inside each bucket; later epochs are shuffled as usual. Every item is
trained once per epoch and the order is a pure function of (difficulties, seed, epoch).

Where difficulties come from (`curriculum`):
- `length`: the item's length in tokens (the relation-extraction teams' trick: short sentences first);
- a file of difficulty per example id (JSON `{id: difficulty}`, or `.jsonl` lines with `id`, `difficulty`),
  written by `odqa difficulty` from one or more readers, by a name in `DIFFICULTIES`:
  `agreement` (1 − the readers' mean F1 on the gold answer: what the teams judged by how many
  models agreed), `gold-prob` (1 − the readers' mean probability of the gold span) or `loss`
  (their mean −log of it)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from odqa.errors import OdqaError

LENGTH = "length"


def curriculum_batches(
    difficulty: np.ndarray, lengths: np.ndarray, batch_size: int, seed: int, buckets: int = 10, group: bool = True
) -> list[np.ndarray]:
    """One epoch's batches, easiest bucket first: items sorted by difficulty (ties in a seeded
    order) and cut into `buckets` runs of equal size; inside a run, shuffled batches of similar
    lengths (as `odqa.training.batches.length_grouped_batches`)."""
    from odqa.training.batches import length_grouped_batches

    if len(difficulty) != len(lengths):
        raise OdqaError(f"{len(difficulty)} difficulties for {len(lengths)} training items")
    rng = np.random.default_rng([seed, 7])
    shuffled = rng.permutation(len(difficulty))
    order = shuffled[np.argsort(difficulty[shuffled], kind="stable")]
    batches = []
    for b, run in enumerate(np.array_split(order, max(1, min(buckets, len(order))))):
        inside = length_grouped_batches(lengths[run], batch_size, seed + 1000 * (b + 1), group)
        batches += [run[batch] for batch in inside]
    return batches


def difficulty_digest(difficulty: np.ndarray | None) -> str | None:
    """What a checkpoint remembers of the order it trained in (a resume refuses another)."""
    import hashlib

    if difficulty is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(difficulty, dtype=np.float64).tobytes()).hexdigest()[:16]


def read_difficulty(path: str | Path) -> dict[str, float]:
    """Difficulty per example id from a JSON object, or from JSON lines (`id`, `difficulty`) in a
    `.jsonl` file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OdqaError(f"difficulty file not found: {path} (write one with `odqa difficulty`)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise OdqaError(f"cannot read the difficulty file {path}: {e}") from None
    if path.suffix != ".jsonl":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise OdqaError(f"{path} is not JSON ({e}); expected {{id: difficulty}} (or .jsonl lines)") from None
        if not isinstance(data, dict):
            raise OdqaError(f"{path} should be a JSON object {{id: difficulty}}, got a {type(data).__name__}")
        rows = data.items()
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                rows.append((record["id"], record["difficulty"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise OdqaError(f"{path}, line {number}: expected a JSON object with 'id' and 'difficulty'") from None
    out = {}
    for qid, value in rows:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise OdqaError(f"{path}: the difficulty of {qid!r} should be a finite number, got {value!r}")
        out[str(qid)] = float(value)
    if not out:
        raise OdqaError(f"{path} holds no difficulties")
    return out


def example_difficulty(curriculum: str, ids: Sequence[str]) -> np.ndarray:
    """The difficulty of each training example (by id) from a difficulty file; refuses a file
    that misses some of them."""
    scores = read_difficulty(curriculum)
    missing = [qid for qid in ids if qid not in scores]
    if missing:
        raise OdqaError(
            f"{curriculum} has no difficulty for {len(missing)} of the {len(ids)} training examples "
            f"(e.g. {missing[:3]}); write it with `odqa difficulty` on the same training files"
        )
    return np.asarray([scores[qid] for qid in ids], dtype=np.float64)


# --- difficulty from readers -------------------------------------------------------------------


def _agreement(gold_prob: np.ndarray, f1: np.ndarray) -> np.ndarray:
    return 1.0 - f1.mean(axis=0) / 100.0


def _gold_prob(gold_prob: np.ndarray, f1: np.ndarray) -> np.ndarray:
    return 1.0 - gold_prob.mean(axis=0)


def _loss(gold_prob: np.ndarray, f1: np.ndarray) -> np.ndarray:
    return -np.log(np.maximum(gold_prob, 1e-6)).mean(axis=0)


# name → (readers × examples gold-span probabilities, readers × examples F1 of the top answer) → difficulty
DIFFICULTIES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "agreement": _agreement,
    "gold-prob": _gold_prob,
    "loss": _loss,
}


def gold_probability(nbest: Sequence, start: int, end: int) -> float:
    """The probability a reader gave the gold span [start, end) of its context: the score of its
    candidate there (a log probability in prob mode), 0 when it is not among the n best."""
    for span in nbest:
        if span.context_index == 0 and (span.start, span.end) == (start, end):
            return float(np.exp(span.score))
    return 0.0


def score_difficulty(readers: Sequence, examples: Sequence, by: str, metric: str = "korquad", progress=False):
    """Each example's difficulty for `readers` (each reading its own context, probabilities per
    window, no answer clean-up so spans are the model's own): {id: difficulty}, plus per reader
    the share of examples it answered exactly."""
    from odqa.metrics.answers import get_answer_metric

    if by not in DIFFICULTIES:
        raise OdqaError(f"unknown difficulty {by!r}; choose one of {', '.join(DIFFICULTIES)}")
    answer_metric = get_answer_metric(metric)
    questions = [e.question for e in examples]
    contexts = [[e.context] for e in examples]
    probs = np.zeros((len(readers), len(examples)))
    f1 = np.zeros((len(readers), len(examples)))
    exact = []
    for r, reader in enumerate(readers):
        results = reader.read(questions, contexts, progress=progress)
        right = 0
        for i, (example, result) in enumerate(zip(examples, results)):
            answer = example.answers[0]
            probs[r, i] = gold_probability(result.nbest, answer.start, answer.end)
            texts = example.answer_texts
            f1[r, i] = 100.0 * max(answer_metric.partial(result.text, t) for t in texts)
            right += max(answer_metric.exact(result.text, t) for t in texts)
        exact.append(100.0 * right / max(1, len(examples)))
    difficulty = DIFFICULTIES[by](probs, f1)
    return {e.id: float(d) for e, d in zip(examples, difficulty)}, exact


def check_curriculum(curriculum: str | None, buckets: int, epochs: float) -> None:
    if curriculum is None:
        return
    if buckets < 1:
        raise OdqaError(f"curriculum_buckets must be ≥ 1, got {buckets}")
    if epochs <= 0:
        raise OdqaError(f"curriculum_epochs must be > 0, got {epochs}")
    if curriculum != LENGTH and not Path(curriculum).is_file():
        raise OdqaError(
            f"curriculum must be 'length' or a difficulty file (from `odqa difficulty`); {curriculum} is neither"
        )


def window_difficulty(per_example: Mapping[int, float] | np.ndarray, pair: np.ndarray) -> np.ndarray:
    """Each window's difficulty: its example's (windows of one example share it)."""
    return np.asarray(per_example, dtype=np.float64)[pair]
