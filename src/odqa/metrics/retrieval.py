"""Retrieval metrics: has-answer top-k (DPR convention), gold-document top-k, and article-level
Recall/MRR against qrels."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

import numpy as np

_SPACE = re.compile(r"\s+")
_TITLE_JUNK = re.compile(r"[\s_\W]+")


def normalize_for_match(text: str) -> str:
    """NFKC, lower case, whitespace collapsed: what 'a passage contains the answer' compares."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def normalize_title(title: str) -> str:
    """Titles compared ignoring spaces, underscores and punctuation."""
    return _TITLE_JUNK.sub("", unicodedata.normalize("NFKC", title).lower())


def has_answer(passage_text: str, answers: Sequence[str]) -> bool:
    text = normalize_for_match(passage_text)
    return any(a and a in text for a in (normalize_for_match(x) for x in answers))


def topk_accuracy(hit_flags: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """`hit_flags[q, r]`: whether the passage at rank r+1 is relevant for question q.
    Top-k accuracy: the share of questions with a relevant passage in the first k."""
    if hit_flags.size == 0:
        return {f"top{k}": 0.0 for k in ks}
    first = np.where(hit_flags.any(axis=1), hit_flags.argmax(axis=1) + 1, np.iinfo(np.int32).max)
    return {f"top{k}": float((first <= k).mean()) for k in ks}


def relevance_matrix(ranked_ids: np.ndarray, is_relevant: Callable[[int, int], bool]) -> np.ndarray:
    """Flags (questions x ranks) from passage ids (-1 = no hit) and a test `(question, passage id)`."""
    flags = np.zeros(ranked_ids.shape, dtype=bool)
    for q, row in enumerate(ranked_ids):
        for r, pid in enumerate(row):
            if pid >= 0 and is_relevant(q, int(pid)):
                flags[q, r] = True
    return flags


def article_ranking(passage_articles: Sequence[Sequence[str]]) -> list[str]:
    """Articles in the order their first passage appears (a passage may have several sources)."""
    seen: dict[str, None] = {}
    for articles in passage_articles:
        for a in articles:
            seen.setdefault(a, None)
    return list(seen)


def recall_mrr(rankings: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int = 100) -> dict[str, float]:
    """Article-level Recall@k and MRR@k, averaged over queries that have relevant articles."""
    recalls, rrs = [], []
    for ranking, gold in zip(rankings, relevant):
        if not gold:
            continue
        top = ranking[:k]
        recalls.append(len(gold.intersection(top)) / len(gold))
        rr = next((1.0 / r for r, a in enumerate(top, 1) if a in gold), 0.0)
        rrs.append(rr)
    n = len(recalls)
    return {
        f"recall@{k}": float(np.mean(recalls)) if n else 0.0,
        f"mrr@{k}": float(np.mean(rrs)) if n else 0.0,
        "queries": n,
    }
