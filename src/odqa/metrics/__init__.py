"""Metrics: retrieval (has-answer top-k, Recall/MRR) and answers (EM/F1 under the SQuAD v1.1,
KorQuAD 1.0 and KLUE-MRC rules)."""

from odqa.metrics.answers import (
    ANSWER_METRICS,
    AnswerMetric,
    QuestionScore,
    get_answer_metric,
    score_predictions,
)
from odqa.metrics.retrieval import (
    article_ranking,
    has_answer,
    normalize_for_match,
    normalize_title,
    recall_mrr,
    relevance_matrix,
    topk_accuracy,
)

__all__ = [
    "ANSWER_METRICS",
    "AnswerMetric",
    "QuestionScore",
    "article_ranking",
    "get_answer_metric",
    "has_answer",
    "normalize_for_match",
    "normalize_title",
    "recall_mrr",
    "relevance_matrix",
    "score_predictions",
    "topk_accuracy",
]
