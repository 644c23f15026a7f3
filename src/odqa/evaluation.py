"""Retrieval evaluation of an index against a question set: has-answer top-k, gold-document
top-k and, with qrels, article-level Recall/MRR. Returns a JSON-ready dict."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from odqa.io.questions import Question
from odqa.metrics import article_ranking, has_answer, normalize_title, recall_mrr, relevance_matrix, topk_accuracy

DEFAULT_KS = (1, 5, 10, 20, 100)


def evaluate_retrieval(
    index,
    questions: Sequence[Question],
    ks: Sequence[int] = DEFAULT_KS,
    qrels: dict[str, set[str]] | None = None,
    batch_size: int = 1000,
    details: bool = False,
) -> dict:
    """`index` is anything with `search_arrays(texts, k)` and `passages[pid]` (a SparseIndex)."""
    k_max = max(ks)
    start = time.perf_counter()
    ids = (
        np.concatenate(
            [
                index.search_arrays([q.text for q in questions[i : i + batch_size]], k_max)[1]
                for i in range(0, len(questions), batch_size)
            ]
        )
        if questions
        else np.zeros((0, k_max), dtype=np.int64)
    )
    search_s = time.perf_counter() - start
    titles = _titles(index) if any(q.title for q in questions) else None
    result = score_rankings(ids, questions, index.passages, ks, qrels, titles, details)
    return {"questions": len(questions), "k": list(ks), "search_s": search_s} | result


def score_rankings(
    ids: np.ndarray,
    questions: Sequence[Question],
    passages,
    ks: Sequence[int],
    qrels: dict[str, set[str]] | None = None,
    corpus_titles: set[str] | None = None,
    details: bool = False,
) -> dict:
    """Metrics of ranked passage ids (questions x ranks, -1 = none) from any retriever:
    has-answer top-k for questions with answers, gold-document top-k when `corpus_titles` (the
    corpus's passage titles) is given, and Recall/MRR by article with `qrels`."""
    cache: dict[int, object] = {}

    def passage(pid: int):
        if pid not in cache:
            cache[pid] = passages[pid]
        return cache[pid]

    result: dict = {}
    answered = [i for i, q in enumerate(questions) if q.answers]
    if answered:
        flags = relevance_matrix(
            ids[answered], lambda q, pid: has_answer(passage(pid).text, questions[answered[q]].answers)
        )
        result["has_answer"] = topk_accuracy(flags, ks) | {"questions": len(answered)}
        if details:
            result["details"] = [
                {"id": questions[i].id, "first_hit_rank": int(row.argmax()) + 1 if row.any() else None}
                for i, row in zip(answered, flags)
            ]
    titled = [i for i, q in enumerate(questions) if q.title]
    if titled and corpus_titles is not None:
        normalized = {normalize_title(title) for title in corpus_titles}
        gold = {i: normalize_title(questions[i].title) for i in titled}
        present = [i for i in titled if gold[i] in normalized]
        if present:
            flags = relevance_matrix(
                ids[present], lambda q, pid: normalize_title(passage(pid).title) == gold[present[q]]
            )
            result["gold_document"] = topk_accuracy(flags, ks) | {
                "questions": len(present),
                "missing_from_corpus": len(titled) - len(present),
            }
    if qrels is not None:
        rankings = [
            article_ranking([[s.doc_id for s in passage(int(pid)).sources] for pid in row if pid >= 0]) for row in ids
        ]
        result["qrels"] = recall_mrr(rankings, [qrels.get(q.id, set()) for q in questions], k=max(ks))
    return result


def _titles(index) -> set[str]:
    titles = getattr(index, "_titles_cache", None)
    if titles is None:
        titles = {index.passages[i].title for i in range(len(index.passages))}
        index._titles_cache = titles
    return titles
