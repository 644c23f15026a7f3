"""KLUE-RE metrics, as the KLUE benchmark defines them (`klue_re_micro_f1`, `klue_re_auprc`):

- micro-F1 over every relation except `no_relation` (×100): a prediction of `no_relation` is never a
  true positive, and a gold `no_relation` predicted as a relation is a false positive;
- AUPRC over all labels (×100): for each label, the area under its precision-recall curve (one
  point per distinct probability, plus precision 1 at recall 0, integrated by trapezoids — what
  scikit-learn's `precision_recall_curve` + `auc` compute), averaged over the labels.

Plus per-label precision/recall/F1/support and the most frequent confusions. numpy only."""

from __future__ import annotations

import numpy as np

from odqa.relation.data import NO_RELATION


def micro_f1(predicted: np.ndarray, gold: np.ndarray, labels: list[str]) -> float:
    """KLUE's micro-F1 without `no_relation`, in percent."""
    predicted, gold = np.asarray(predicted), np.asarray(gold)
    none = labels.index(NO_RELATION) if NO_RELATION in labels else -1
    true_positive = int(((predicted == gold) & (gold != none)).sum())
    predicted_positive = int((predicted != none).sum())
    gold_positive = int((gold != none).sum())
    if true_positive == 0:
        return 0.0
    precision, recall = true_positive / predicted_positive, true_positive / gold_positive
    return 100.0 * 2 * precision * recall / (precision + recall)


def precision_recall_curve(is_positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's binary precision-recall curve (without its threshold array): one point per
    distinct score from the highest down, reversed, then (recall 0, precision 1) appended."""
    order = np.argsort(scores, kind="mergesort")[::-1]
    scores, is_positive = scores[order], is_positive[order].astype(np.float64)
    last_of_each = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    true_positive = np.cumsum(is_positive)[last_of_each]
    false_positive = 1 + last_of_each - true_positive
    precision = np.divide(
        true_positive,
        true_positive + false_positive,
        out=np.zeros_like(true_positive),
        where=true_positive + false_positive != 0,
    )
    recall = true_positive / true_positive[-1] if true_positive[-1] > 0 else np.ones_like(true_positive)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]


def auprc(probabilities: np.ndarray, gold: np.ndarray) -> float:
    """KLUE's AUPRC: per-label area under the precision-recall curve, averaged, in percent."""
    probabilities, gold = np.asarray(probabilities, dtype=np.float64), np.asarray(gold)
    areas = []
    for label in range(probabilities.shape[1]):
        precision, recall = precision_recall_curve(gold == label, probabilities[:, label])
        areas.append(-np.trapezoid(precision, recall))  # recall runs from 1 down to 0
    return 100.0 * float(np.mean(areas))


def per_label(predicted: np.ndarray, gold: np.ndarray, labels: list[str]) -> list[dict]:
    """Precision, recall, F1 (percent) and support of each label, in the label list's order."""
    rows = []
    for index, name in enumerate(labels):
        tp = int(((predicted == index) & (gold == index)).sum())
        predicted_n, gold_n = int((predicted == index).sum()), int((gold == index).sum())
        precision = 100.0 * tp / predicted_n if predicted_n else 0.0
        recall = 100.0 * tp / gold_n if gold_n else 0.0
        f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
        rows.append({"label": name, "precision": precision, "recall": recall, "f1": f1, "support": gold_n})
    return rows


def confusions(predicted: np.ndarray, gold: np.ndarray, labels: list[str], top: int = 10) -> list[dict]:
    """The most frequent (gold, predicted) pairs among the mistakes."""
    wrong = predicted != gold
    if not wrong.any():
        return []
    pairs, counts = np.unique(np.stack([gold[wrong], predicted[wrong]], axis=1), axis=0, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:top]
    return [{"gold": labels[pairs[i][0]], "predicted": labels[pairs[i][1]], "count": int(counts[i])} for i in order]


def score_relations(probabilities: np.ndarray, gold: np.ndarray, labels: list[str]) -> dict:
    """Every metric of a set of predictions: micro_f1, auprc, accuracy, per_label, confusions."""
    probabilities, gold = np.asarray(probabilities), np.asarray(gold)
    predicted = probabilities.argmax(axis=1)
    return {
        "micro_f1": micro_f1(predicted, gold, labels),
        "auprc": auprc(probabilities, gold),
        "accuracy": 100.0 * float((predicted == gold).mean()),
        "examples": len(gold),
        "per_label": per_label(predicted, gold, labels),
        "confusions": confusions(predicted, gold, labels),
    }
