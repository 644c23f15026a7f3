"""Open-domain QA as one fixed chain: retrieve the top-k passages, read them all in one batch,
rank the candidate spans across passages, answer with the evidence.

`Pipeline(config)` is cheap; `warm_up()` loads the index (memory-mapped) and the reader once.
A `PipelineConfig` round-trips through `to_dict`/`from_dict` and a JSON/YAML file."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from pydantic import Field

from odqa.settings import Settings
from odqa.types import Answer, Evidence, Hit, Passage, Span

# Passages read per question when nothing says otherwise. The answer score is the reader's alone by
# default (retriever_weight 0), and readers trained on gold passages score a wrong passage's spans as
# high as the right one's: reading more passages then loses answers. benchmarks/default_k.py measures
# EM by k for an English and every stored Korean pipeline and chooses the k that loses least against
# each one's best (results/default_k.md; tests/test_readme_figures.py holds this constant to it).
# `odqa tune-pipeline` chooses k together with a retriever weight, with which reading more can pay off.
DEFAULT_K = 1


class PipelineConfig(Settings):
    what = "pipeline config"

    index: str | list[str]  # one index, or several (sparse + dense) to fuse
    reader: str | list[str]  # one reader, or several that vote by character offsets (odqa.reader.ensemble)
    reader_weights: list[float] | None = None  # one per reader (`odqa ensemble --gold` chooses them)
    ensemble_method: str = "soft"  # how several readers vote: soft, mean or max
    k: int = Field(DEFAULT_K, ge=1, le=1000)  # passages read per question
    n_best: int = Field(5, ge=1, le=100)  # answers returned per question
    retriever_weight: float = 0.0  # answer score = reader score + weight × passage retrieval score
    reader_options: dict = Field(default_factory=dict)  # ReaderConfig overrides (mode, batch_size, …)
    fusion: str = "combsum"  # how several indexes are fused (rrf, combsum, zscore)
    fusion_weights: list[float] | None = None  # one per index (`odqa tune-fusion` chooses them)
    rerank: str | None = None  # a cross-encoder reranker folder
    rerank_top: int = Field(50, ge=1, le=1000)
    rerank_weight: float | None = Field(None, ge=0)  # fused with the first stage's score at this weight (None: alone)
    rerank_fusion: Literal["combsum", "zscore", "rrf"] = "combsum"  # how, with rerank_weight
    rerank_precision: Literal["fp32", "bf16"] = "fp32"  # bf16: faster on GPUs and bf16 CPUs (--rerank-bf16)
    rescore: str | None = None  # a bi-encoder folder that re-scores the top `rescore_top` on the fly
    rescore_weight: float = Field(1.0, ge=0)  # its similarity's weight against the first stage's score
    rescore_top: int = Field(20, ge=1, le=1000)
    rescore_precision: Literal["fp32", "bf16"] = "fp32"  # bf16: faster on GPUs and bf16 CPUs (--rescore-bf16)
    device: str | None = None


@dataclass
class PipelineResult:
    question: str
    answer: Answer | None
    nbest: list[Answer]
    passages: list[Evidence]
    timings: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.answer.text if self.answer else ""

    def to_dict(self, with_passages: bool = True) -> dict:
        out = {
            "question": self.question,
            "answer": self.answer.to_dict() if self.answer else None,
            "nbest": [a.to_dict() for a in self.nbest],
            "timings": self.timings,
        }
        if with_passages:
            out["passages"] = [asdict(p) for p in self.passages]
        return out


def _answer(span: Span, hit: Hit, reader_score: float) -> Answer:
    passage: Passage = hit.passage
    source = passage.sources[0]
    doc_start = doc_end = None
    if span.start >= passage.body_start:
        doc_start = source.start + span.start - passage.body_start
        doc_end = source.start + span.end - passage.body_start
    return Answer(
        text=span.text,
        score=span.score,
        reader_score=reader_score,
        passage_id=hit.passage_id,
        passage_rank=hit.rank,
        title=passage.title,
        doc_id=source.doc_id,
        start=span.start,
        end=span.end,
        doc_start=doc_start,
        doc_end=doc_end,
    )


class Pipeline:
    def __init__(self, config: PipelineConfig, index=None, reader=None):
        self.config = config
        self.index = index
        self.reader = reader

    def warm_up(self) -> Pipeline:
        """Load the index and the reader (once); fails fast naming a missing path."""
        self.open_index()
        if self.reader is None:
            from odqa.reader.ensemble import load_readers

            config = self.config
            self.reader = load_readers(
                config.reader, config.reader_weights, config.ensemble_method, config.device, **config.reader_options
            )
        return self

    @property
    def reader_paths(self) -> list[str]:
        return [self.config.reader] if isinstance(self.config.reader, str) else list(self.config.reader)

    def open_index(self):
        """The retriever (opened once), without loading the reader."""
        if self.index is None:
            from odqa.retrieval.hybrid import open_retriever

            config = self.config
            self.index = open_retriever(
                config.index,
                config.fusion,
                config.fusion_weights,
                rerank=config.rerank,
                rerank_top=config.rerank_top,
                device=config.device,
                rescore=config.rescore,
                rescore_weight=config.rescore_weight,
                rescore_top=config.rescore_top,
                rescore_precision=config.rescore_precision,
                rerank_weight=config.rerank_weight,
                rerank_fusion=config.rerank_fusion,
                rerank_precision=config.rerank_precision,
            )
        return self.index

    def reader_report(self) -> dict:
        """The reader's quality as its own folder records it (`odqa.reader.model.reader_report`):
        its evaluation, whether training finished, and a `warning` line when it is weak. For an
        ensemble: the first reader's record, each member's under `members`, every warning joined."""
        from odqa.reader.model import reader_report

        reports = [reader_report(path) for path in self.reader_paths]
        if len(reports) == 1:
            return reports[0]
        warnings = [r["warning"] for r in reports if r["warning"]]
        return reports[0] | {"members": reports, "warning": "; ".join(warnings) or None}

    def retrieve(self, questions: Sequence[str], k: int | None = None) -> list[list[Hit]]:
        self.warm_up()
        return self.index.search(list(questions), k=k or self.config.k, fetch=True)

    def ask(self, question: str, k: int | None = None, n_best: int | None = None) -> PipelineResult:
        return self.ask_batch([question], k, n_best=n_best)[0]

    def ask_batch(
        self, questions: Sequence[str], k: int | None = None, progress: bool = False, n_best: int | None = None
    ) -> list[PipelineResult]:
        """Answers for a batch of questions: one search call, one reading pass over every passage.
        `k` passages are read per question and `n_best` answers returned (the config's by default)."""
        if not questions:
            return []
        self.warm_up()
        k = k or self.config.k
        start = time.perf_counter()
        hits = self.retrieve(questions, k)
        retrieved = time.perf_counter()
        candidates, nulls = self.reader.read_candidates(
            questions, [[h.passage.text for h in row] for row in hits], progress
        )
        read = time.perf_counter()
        results = []
        for question, row, spans, null in zip(questions, hits, candidates, nulls):
            results.append(self.rank(question, row, spans, null, n_best))
        per_question = {
            "retrieve_ms": 1000 * (retrieved - start) / len(questions),
            "read_ms": 1000 * (read - retrieved) / len(questions),
        }
        for result in results:
            result.timings = dict(per_question)
        return results

    def rank(
        self,
        question: str,
        hits: Sequence[Hit],
        spans: Sequence[Span],
        nulls: Sequence[float],
        n_best: int | None = None,
        retriever_weight: float | None = None,
    ) -> PipelineResult:
        """Aggregate one question's candidate spans across its passages into its `n_best` answers
        (with the config's retriever weight unless another is given)."""
        n_best = n_best or self.config.n_best
        weight = self.config.retriever_weight if retriever_weight is None else retriever_weight
        if weight:
            spans = [
                Span(s.text, s.start, s.end, s.score + weight * hits[s.context_index].score, s.context_index)
                for s in spans
            ]
        finished = self.reader.finish(spans, nulls, n_best)
        nbest = []
        for span in finished.nbest[:n_best]:
            hit = hits[span.context_index]
            nbest.append(_answer(span, hit, span.score - weight * hit.score))
        best = nbest[0] if finished.answer is not None and nbest else None
        evidence = [
            Evidence(h.passage_id, h.rank, h.score, h.passage.title, h.passage.doc_id, h.passage.text) for h in hits
        ]
        return PipelineResult(question, best, nbest, evidence)
