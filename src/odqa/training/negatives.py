"""Negative windows from retrieved passages: what open-domain reading meets and gold contexts never
show. For each training question the retriever's highest-ranked passages that do not hold any of
its answers (normalized text match, as retrieval is scored) are read as no-answer windows, so the
reader learns to score a wrong passage low."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from odqa.errors import OdqaError

log = logging.getLogger(__name__)


class RetrievedNegatives(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    index: str = Field(description="a retriever folder (sparse, dense, hybrid or sharded index)")
    per_question: int = Field(1, ge=1, le=100, description="negative passages kept per question")
    k: int = Field(10, ge=1, le=1000, description="passages searched; the best-ranked without an answer are kept")


def retrieved_negatives(
    negatives: RetrievedNegatives, questions: Sequence[str], answers: Sequence[Sequence[str]], batch: int = 256
) -> list[tuple[int, str]]:
    """(question index, passage text) of each kept negative, questions in order, best rank first."""
    from odqa.metrics.retrieval import has_answer
    from odqa.retrieval.hybrid import open_retriever

    if len(questions) != len(answers):
        raise OdqaError(f"{len(questions)} questions but {len(answers)} answer lists")
    retriever = open_retriever(negatives.index)
    kept: list[tuple[int, str]] = []
    without = 0
    for lo in range(0, len(questions), batch):
        rows = retriever.search(list(questions[lo : lo + batch]), k=negatives.k, fetch=True)
        for qi, hits in enumerate(rows, lo):
            found = [h.passage.text for h in hits if not has_answer(h.passage.text, answers[qi])]
            found = found[: negatives.per_question]
            without += not found
            kept += [(qi, text) for text in found]
    if not kept:
        raise OdqaError(
            f"no retrieved negatives: every passage in the top {negatives.k} of {negatives.index} holds its "
            "question's answer; search deeper (k) or use another index"
        )
    if without:
        log.info("%d questions had no passage without their answer in the top %d", without, negatives.k)
    return kept
