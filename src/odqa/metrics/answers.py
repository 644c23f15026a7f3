"""Answer metrics under the official rules, one small named pair of functions per benchmark.

- `squad`: SQuAD v1.1 (lower case, ASCII punctuation removed, English articles removed, whitespace
  collapsed; F1 over whitespace tokens).
- `korquad`: KorQuAD 1.0 (quotes and brackets ' " 《 》 < > 〈 〉 ( ) ‘ ’ become spaces, lower case,
  ASCII punctuation removed, whitespace collapsed, no article removal; F1 over the characters of
  the normalized answer, spaces ignored).
- `klue`: KLUE-MRC (the KorQuAD normalization; EM plus ROUGE-W as KLUE reports it: F1 of the
  longest common *contiguous* character run, spaces ignored).

Every score is the maximum over the gold answers, reported in percent like the official scripts.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from odqa.errors import OdqaError

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_KORQUAD_TO_SPACE = re.compile(r"['\"《》<>〈〉()‘’]")


def _drop_punct(text: str) -> str:
    return "".join(ch for ch in text if ch not in _PUNCT)


def normalize_squad(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", _drop_punct(text.lower())).split())


def normalize_korquad(text: str) -> str:
    return " ".join(_drop_punct(_KORQUAD_TO_SPACE.sub(" ", text).lower()).split())


def _f1(pred_units: Sequence[str], gold_units: Sequence[str]) -> float:
    same = sum((Counter(pred_units) & Counter(gold_units)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_units), same / len(gold_units)
    return 2 * precision * recall / (precision + recall)


def squad_f1(prediction: str, gold: str) -> float:
    return _f1(normalize_squad(prediction).split(), normalize_squad(gold).split())


def korquad_f1(prediction: str, gold: str) -> float:
    return _f1(list(normalize_korquad(prediction).replace(" ", "")), list(normalize_korquad(gold).replace(" ", "")))


def longest_common_substring(a: str, b: str) -> int:
    best, previous = 0, [0] * (len(b) + 1)
    for ch in a:
        current = [0] * (len(b) + 1)
        for j, other in enumerate(b, 1):
            if ch == other:
                current[j] = previous[j - 1] + 1
                best = max(best, current[j])
        previous = current
    return best


def klue_rouge_w(prediction: str, gold: str) -> float:
    pred, ref = normalize_korquad(prediction).replace(" ", ""), normalize_korquad(gold).replace(" ", "")
    if not pred or not ref:
        return float(pred == ref)
    run = longest_common_substring(pred, ref)
    if run == 0:
        return 0.0
    precision, recall = run / len(pred), run / len(ref)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class AnswerMetric:
    name: str
    normalize: Callable[[str], str]
    partial: Callable[[str, str], float]
    partial_name: str = "f1"

    def exact(self, prediction: str, gold: str) -> float:
        return float(self.normalize(prediction) == self.normalize(gold))


ANSWER_METRICS: dict[str, AnswerMetric] = {
    "squad": AnswerMetric("squad", normalize_squad, squad_f1),
    "korquad": AnswerMetric("korquad", normalize_korquad, korquad_f1),
    "klue": AnswerMetric("klue", normalize_korquad, klue_rouge_w, partial_name="rouge_w"),
}


def get_answer_metric(name: str) -> AnswerMetric:
    try:
        return ANSWER_METRICS[name]
    except KeyError:
        raise OdqaError(f"unknown answer metric {name!r}; choose one of {', '.join(ANSWER_METRICS)}") from None


@dataclass(frozen=True, slots=True)
class QuestionScore:
    id: str
    prediction: str
    gold: tuple[str, ...]
    exact_match: float
    partial: float


def score_predictions(
    predictions: Mapping[str, str],
    gold: Mapping[str, Sequence[str]],
    metric: str | AnswerMetric = "squad",
    allow_missing: bool = False,
) -> dict:
    """EM and F1 (or ROUGE-W) in percent over the gold questions, with per-question details.

    A question without a prediction is an error naming it (the official scripts count it as wrong
    and print a warning that is easy to miss); `allow_missing=True` scores it as the empty answer."""
    metric = get_answer_metric(metric) if isinstance(metric, str) else metric
    missing = [qid for qid in gold if qid not in predictions]
    if missing and not allow_missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise OdqaError(f"{len(missing)} of {len(gold)} questions have no prediction: {shown}")
    details = []
    for qid, answers in gold.items():
        prediction = predictions.get(qid, "")
        answers = tuple(answers)
        if not answers:
            continue  # unanswerable questions are not scored by the v1 rules
        exact = max(metric.exact(prediction, a) for a in answers)
        partial = max(metric.partial(prediction, a) for a in answers)
        details.append(QuestionScore(qid, prediction, answers, exact, partial))
    n = len(details)
    return {
        "metric": metric.name,
        "exact_match": 100.0 * sum(d.exact_match for d in details) / n if n else 0.0,
        metric.partial_name: 100.0 * sum(d.partial for d in details) / n if n else 0.0,
        "count": n,
        "missing": len(missing),
        "per_question": details,
    }
