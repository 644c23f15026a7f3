"""Several readers as one: each reads the same passages, and their spans vote by character offsets.

`EnsembleReader` has the reader's interface (`read_candidates`, `finish`, `read`), so the pipeline,
`ask`, `predict`, `evaluate` and `serve` take several `--reader` without knowing. Every reader reads
with its own tokenizer and windows; per question, each span (passage, start, end) gets each
reader's probability (its best occurrence), and `odqa.ensemble`'s voter combines them with the
readers' weights. The combined spans are then finished (merged across passages, ranked, no-answer
rule) with the first reader's decoding settings. n readers cost n readings, no more.

Hard voting needs each reader's final answer, so it stays with `odqa ensemble` over n-best files;
here the probability voters (soft, mean, max) are offered."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from odqa.ensemble import VOTERS, EnsembleConfig, combine_question
from odqa.errors import OdqaError
from odqa.reader.model import Reader, ReaderResult
from odqa.types import Span


class EnsembleReader:
    def __init__(self, readers: Sequence[Reader], weights: Sequence[float] | None = None, method: str = "soft"):
        if len(readers) < 2:
            raise OdqaError("an ensemble needs at least two readers")
        if method not in VOTERS:
            raise OdqaError(
                f"a pipeline ensemble votes with probabilities: choose {', '.join(VOTERS)} (hard voting on "
                f"answer texts works on n-best files: odqa ensemble --method hard), got {method!r}"
            )
        for n, reader in enumerate(readers):
            if reader.config.mode != "prob":
                raise OdqaError(
                    f"reader {n + 1} scores spans by {reader.config.mode}: an ensemble needs probabilities (mode prob)"
                )
        self.readers = list(readers)
        weights = tuple(float(w) for w in weights) if weights is not None else None
        self.voting = EnsembleConfig(method=method, weights=weights, n_best=10**9).check(len(self.readers))
        self.config = self.readers[0].config

    @classmethod
    def load(
        cls,
        paths: Sequence[str | Path],
        weights: Sequence[float] | None = None,
        method: str = "soft",
        device: str | None = None,
        **overrides,
    ) -> EnsembleReader:
        if overrides.get("mode", "prob") != "prob":
            raise OdqaError("an ensemble of readers votes with probabilities: mode must be prob")
        return cls([Reader.load(p, device=device, **(overrides | {"mode": "prob"})) for p in paths], weights, method)

    def read_candidates(
        self, questions: Sequence[str], contexts: Sequence[Sequence[str]], progress: bool = False
    ) -> tuple[list[list[Span]], list[list[float]]]:
        """Each question's voted spans (score = log of the combined probability) and each context's
        no-answer score (the lowest of any reader's)."""
        return self.vote([reader.read_candidates(questions, contexts, progress) for reader in self.readers])

    def vote(self, each: Sequence[tuple[list[list[Span]], list[list[float]]]]):
        """The voted (candidates, nulls) from each reader's own `read_candidates` output."""
        candidates, nulls = [], []
        for qi in range(len(each[0][0])):
            proposals = [[span.to_dict() for span in spans[qi]] for spans, _ in each]
            voted = combine_question(proposals, self.voting)
            candidates.append([Span(c["text"], c["start"], c["end"], c["score"], c["context"]) for c in voted])
            nulls.append([min(column) for column in zip(*(reader_nulls[qi] for _, reader_nulls in each))])
        return candidates, nulls

    def finish(self, candidates: Sequence[Span], nulls: Sequence[float], n_best: int | None = None) -> ReaderResult:
        return self.readers[0].finish([s for s in candidates if s.score > -math.inf], nulls, n_best)

    def read(
        self, questions: Sequence[str], contexts: Sequence[Sequence[str]], progress: bool = False
    ) -> list[ReaderResult]:
        candidates, nulls = self.read_candidates(questions, contexts, progress)
        return [self.finish(c, n) for c, n in zip(candidates, nulls)]


def load_readers(
    paths: str | Path | Sequence[str | Path],
    weights: Sequence[float] | None = None,
    method: str = "soft",
    device: str | None = None,
    **overrides,
) -> Reader | EnsembleReader:
    """One reader for one path; an ensemble voting by character offsets for several."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if len(paths) == 1:
        if weights is not None and len(weights) != 1:
            raise OdqaError(f"{len(weights)} reader weights given for 1 reader")
        return Reader.load(paths[0], device=device, **overrides)
    return EnsembleReader.load(paths, weights, method, device, **overrides)
