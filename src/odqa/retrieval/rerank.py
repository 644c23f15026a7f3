"""Cross-encoder reranking: a sequence-classification model with one output scores each
(question, passage) pair read together; the candidates are re-sorted by that score.

The model is any `AutoModelForSequenceClassification` with `num_labels=1` (safetensors, no remote
code); `odqa train-reranker` makes one from an encoder (`odqa.training.rerank`).

With `weight` set, the candidates are re-sorted by a fusion of the first stage's score (weight 1) and
the cross-encoder's (`weight`), as `DenseRescorer` fuses: a weakly trained reranker then adds to the
first stage instead of replacing it. `tune_rerank` (`odqa tune-rerank`) chooses the weight on training
questions, scoring each pair once.

    reranker = Reranker.load("runs/reranker-1", weight=0.5)   # weight=None: the cross-encoder alone

`precision="bf16"` scores with the weights in bfloat16 (scores stay float32): faster on GPUs and on
CPUs with AVX512-BF16 or AMX (`benchmarks/rerank_ko.py` measures speed and rankings)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from odqa.errors import OdqaError
from odqa.retrieval.fusion import FUSIONS, fuse
from odqa.settings import Settings
from odqa.types import Hit

RERANKER_FILE = "odqa_reranker.json"


class RerankerConfig(Settings):
    what = "reranker config"

    max_length: int = 320
    batch_size: int = 32


class Reranker:
    """Scores (question, passage) pairs; `rerank` re-sorts candidates by that score alone
    (`weight=None`) or by `fusion` of the first stage's score (weight 1) and it (`weight`).
    `precision="bf16"`: the weights in bfloat16 for scoring; such a reranker scores but cannot be saved."""

    def __init__(
        self,
        model,
        tokenizer,
        config: RerankerConfig | None = None,
        device: str | None = None,
        weight: float | None = None,
        fusion: str = "combsum",
        precision: str = "fp32",
    ):
        from odqa.models.loading import check_prediction_precision, pick_device, to_bf16

        check_prediction_precision(precision, "reranker")
        if fusion not in FUSIONS:
            raise OdqaError(f"unknown fusion {fusion!r} for reranking; choose one of {', '.join(FUSIONS)}")
        if weight is not None and not (weight >= 0 and np.isfinite(weight)):
            raise OdqaError(f"the reranker's weight must be a number ≥ 0 (none: the cross-encoder alone), got {weight}")
        self.model, self.tokenizer = model, tokenizer
        self.weight, self.fusion = (None if weight is None else float(weight)), fusion
        self.path: Path | None = None  # the folder it was loaded from
        self.config = config or RerankerConfig()
        self.device = pick_device(device)
        self.precision = precision
        self.model.to(self.device).eval()
        if precision == "bf16":
            self.model = to_bf16(self.model, self.device)

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str | None = None,
        weight: float | None = None,
        fusion: str = "combsum",
        precision: str = "fp32",
        **overrides,
    ) -> Reranker:
        from transformers import AutoModelForSequenceClassification

        from odqa.models.loading import check_model_dir, load_pretrained
        from odqa.models.tokenizer import load_tokenizer

        check_model_dir(path)
        settings = Path(path) / RERANKER_FILE
        saved = json.loads(settings.read_text(encoding="utf-8")).get("reranker", {}) if settings.exists() else {}
        config = RerankerConfig.from_dict({**saved, **overrides})
        model = load_pretrained(AutoModelForSequenceClassification, path, "a reranker")
        if model.config.num_labels != 1:
            raise OdqaError(
                f"{path}: a reranker has one output (num_labels=1), this model has {model.config.num_labels}"
            )
        reranker = cls(model, load_tokenizer(path), config, device, weight, fusion, precision)
        reranker.path = Path(path)
        return reranker

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        from odqa.models.loading import save_pretrained
        from odqa.models.tokenizer import save_tokenizer

        if self.precision != "fp32":
            raise OdqaError(f"this reranker's weights were rounded to {self.precision} for scoring; save it as loaded")
        path = Path(path)
        save_pretrained(self.model, path)
        save_tokenizer(self.tokenizer, path)
        (path / RERANKER_FILE).write_text(
            json.dumps({"reranker": self.config.to_dict(), **(extra or {})}, indent=2), encoding="utf-8"
        )

    def score(self, questions: Sequence[str], passages: Sequence[str]) -> np.ndarray:
        """One relevance score per aligned (question, passage) pair; batches run longest first."""
        import torch

        if len(questions) != len(passages):
            raise OdqaError(f"{len(questions)} questions but {len(passages)} passages")
        order = np.argsort([-(len(q) + len(p)) for q, p in zip(questions, passages)], kind="stable")
        scores = np.empty(len(questions), dtype=np.float32)
        with torch.inference_mode():
            for lo in range(0, len(order), self.config.batch_size):
                rows = order[lo : lo + self.config.batch_size]
                batch = self.tokenizer(
                    [questions[i] for i in rows],
                    [passages[i] for i in rows],
                    truncation="only_second",
                    max_length=self.config.max_length,
                    padding=True,
                    return_tensors="pt",
                )
                logits = self.model(**{k: v.to(self.device) for k, v in batch.items()}).logits
                scores[rows] = logits[:, 0].float().cpu().numpy()
        return scores

    def rerank(self, queries: Sequence[str], candidates: Sequence[Sequence[Hit]]) -> list[list[Hit]]:
        """Each query's hits (with passages fetched) re-sorted by the cross-encoder's score, or by
        its fusion with the first stage's when `weight` is set."""
        return self.resort(candidates, self.score_hits(queries, candidates))

    def score_hits(self, queries: Sequence[str], candidates: Sequence[Sequence[Hit]]) -> np.ndarray:
        """The cross-encoder's score of every (query, hit) pair, flattened in order: what `resort` takes."""
        if len(queries) != len(candidates):
            raise OdqaError(f"{len(queries)} queries but {len(candidates)} candidate lists")
        pairs = [(qi, hit) for qi, hits in enumerate(candidates) for hit in hits]
        if any(hit.passage is None for _, hit in pairs):
            raise OdqaError("reranking needs the passages' text: search with fetch=True")
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        return self.score([queries[qi] for qi, _ in pairs], [hit.passage.text for _, hit in pairs])

    def resort(self, candidates: Sequence[Sequence[Hit]], scores: np.ndarray) -> list[list[Hit]]:
        """The candidates re-sorted given the cross-encoder's `scores` of them (flattened in order):
        what `rerank` does after scoring, so scores computed once can be re-sorted at several weights."""
        if len(scores) != sum(len(hits) for hits in candidates):
            raise OdqaError(f"{len(scores)} scores for {sum(len(hits) for hits in candidates)} candidates")
        out, at = [], 0
        for hits in candidates:
            scored = [Hit(h.passage_id, float(s), 0, h.passage) for h, s in zip(hits, scores[at : at + len(hits)])]
            at += len(hits)
            ranked = [
                Hit(h.passage_id, h.score, rank, h.passage)
                for rank, h in enumerate(sorted(scored, key=lambda h: -h.score), 1)
            ]
            if self.weight is not None and ranked:
                ranked = fuse([list(hits), ranked], len(hits), self.fusion, [1.0, self.weight])
            out.append(ranked)
        return out


WEIGHT_GRID = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0)


def tune_rerank(
    reranker: Reranker,
    questions: Sequence,
    candidates: Sequence[Sequence[Hit]],
    scores: np.ndarray,
    passages,
    ks: Sequence[int] = (1, 5, 20),
    methods: Sequence[str] = ("combsum", "zscore"),
    grid: Sequence[float] = WEIGHT_GRID,
) -> dict:
    """How the reranker's score should meet the first stage's, chosen on (training, never
    evaluation) questions with answers. `candidates` are the first stage's hits of each question
    (its top N, which the reranker re-sorts) and `scores` the reranker's scores of them
    (`Reranker.score_hits`), so each pair is scored once; every candidate — the first stage as it is,
    the cross-encoder alone, and each method at each weight of `grid` — re-sorts them
    (`Reranker.resort`) and is scored by has-answer top-k. The best has the highest mean over the
    cut-offs ≤ 5 (a reranker's job is the top of the list), then the largest cut-off.
    Returns {"questions", "candidates": [{"weight": None (alone) | w, "fusion", "top1", …}],
    "first_stage": {...}, "best": {...}}; the reranker's own weight and fusion are left as they were."""
    from odqa.evaluation import score_rankings
    from odqa.retrieval.base import hits_to_arrays

    if not questions:
        raise OdqaError("no questions to tune the reranker on")
    if len(candidates) != len(questions):
        raise OdqaError(f"{len(questions)} questions but {len(candidates)} candidate lists")
    k_max = max(ks)

    def has_answer(ranked) -> dict:
        metrics = score_rankings(hits_to_arrays(ranked, k_max)[1], questions, passages, ks)
        if "has_answer" not in metrics:
            raise OdqaError("the tuning questions have no answers: give SQuAD-format questions")
        return {f"top{k}": metrics["has_answer"][f"top{k}"] for k in ks}

    kept = reranker.weight, reranker.fusion
    rows = []
    try:
        for weight, method in [(None, "combsum")] + [(w, m) for m in methods for w in grid]:
            reranker.weight, reranker.fusion = weight, method
            rows.append({"weight": weight, "fusion": method, **has_answer(reranker.resort(candidates, scores))})
    finally:
        reranker.weight, reranker.fusion = kept
    low = [k for k in ks if k <= 5] or [min(ks)]
    best = max(rows, key=lambda r: (sum(r[f"top{k}"] for k in low) / len(low), r[f"top{k_max}"]))
    return {"questions": len(questions), "first_stage": has_answer(candidates), "candidates": rows, "best": best}
