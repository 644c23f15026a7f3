"""The extractive reader: a question-answering encoder + its tokenizer + decoding settings.

`Reader.read(questions, contexts)` returns, per question, the n best character spans over all of
its contexts. Windows from every (question, context) pair are run together, longest first, in
batches padded only to their own longest window; decoding is `odqa.reader.decode`."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from odqa.errors import OdqaError
from odqa.models.loading import POOLER, check_model_dir, load_pretrained, pick_device, save_pretrained
from odqa.reader.decode import WindowSpans, aggregate, no_answer_wins, token_lines, top_spans, window_candidates
from odqa.reader.features import WindowConfig, Windows, build_windows, pad_batch
from odqa.reader.postprocess import asked_unit, clean_span, trim_to_unit
from odqa.settings import describe_errors
from odqa.types import Span

log = logging.getLogger(__name__)

READER_FILE = "odqa_reader.json"


WEAK_F1 = 50.0  # below this, a reader's own evaluation says most of its answers are wrong


def reader_report(path: str | Path) -> dict:
    """What a reader folder's own records say of its quality: the evaluation kept with the weights
    (`eval`, None when it was trained without --eval), whether its training ran to the end
    (`finished`, `step`, `total_steps`; None for folders not trained here) and, when either says
    the reader is weak, one `warning` line for the CLI and the web page. Hub ids: nothing known."""
    folder = Path(path)
    report: dict = {"eval": None, "finished": None, "step": None, "total_steps": None, "warning": None}
    try:
        saved = json.loads((folder / READER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = {}
    metrics = saved.get("metrics") if isinstance(saved, dict) else None
    if isinstance(metrics, dict) and isinstance(metrics.get("eval"), dict):
        report["eval"] = {k: v for k, v in metrics["eval"].items() if isinstance(v, (int, float))}
    try:
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        report.update(finished=bool(state.get("finished")), step=state.get("step"))
        report["total_steps"] = state.get("total_steps")
    except (OSError, ValueError, AttributeError):
        pass
    problems = []
    f1 = (report["eval"] or {}).get("f1")
    if isinstance(f1, (int, float)) and f1 < WEAK_F1:
        exact = report["eval"].get("exact")
        scored = f"F1 {f1:.1f}" + (f" / EM {exact:.1f}" if isinstance(exact, (int, float)) else "")
        problems.append(f"it scored {scored} on its evaluation set, so expect many wrong answers")
    if report["finished"] is False:
        steps = f" at step {report['step']} of {report['total_steps']}" if report["total_steps"] else ""
        problems.append(f"its training stopped early{steps} (run the same train-reader command again to continue)")
    if problems:
        report["warning"] = f"the reader {path} is weak: " + "; ".join(problems)
    return report


class ReaderConfig(BaseModel):
    """How a reader cuts windows and decodes; saved beside the weights and overridable per call."""

    model_config = ConfigDict(extra="forbid")

    max_length: int = 384
    stride: int = 128
    max_question_tokens: int = 64
    max_answer_tokens: int = 30
    n_best: int = 20
    mode: Literal["logits", "prob"] = "prob"
    merge: Literal["none", "max", "sum"] = "max"
    batch_size: int = 32
    postprocess: Literal["none", "korean"] = "korean"
    particle_analyzers: tuple[str, ...] = (
        "kiwi",
    )  # repairs most answer+particle spans (benchmarks/reader.py, ko-cleanup)
    no_answer: bool = False
    null_threshold: float = 0.0
    cross_lines: bool = False  # answers may span a line break (none does in KorQuAD, TyDi or the competition)
    # with the Korean clean-up: an answer to "몇 명 …?" / "… 해는?" ends after its number's unit
    # ("1950년 6월 25일 새벽 4시" → "1950년"; benchmarks/korean_model.py, stage units, measures it)
    unit_trim: bool = True
    # bf16: every weight in bfloat16 while reading (fast on GPUs and on CPUs with AVX512-BF16 or AMX;
    # benchmarks/korean_model.py, stage precision, measures speed and answers)
    precision: Literal["fp32", "bf16"] = "fp32"

    @property
    def windows(self) -> WindowConfig:
        return WindowConfig(self.max_length, self.stride, self.max_question_tokens)

    def updated(self, **changes) -> ReaderConfig:
        changes = {k: v for k, v in changes.items() if v is not None}
        try:
            return ReaderConfig.model_validate({**self.model_dump(), **changes})
        except ValidationError as e:
            raise OdqaError(f"bad reader settings: {describe_errors(e)}") from None


@dataclass(frozen=True)
class ReaderResult:
    """The reader's answer to one question: the best span (None when nothing or no-answer won)
    and the n best, each span pointing at its context by index."""

    answer: Span | None
    nbest: list[Span]
    null_score: float

    @property
    def text(self) -> str:
        return self.answer.text if self.answer else ""


class Reader:
    def __init__(self, model, tokenizer, config: ReaderConfig | None = None, device: str | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config or ReaderConfig()
        self.device = pick_device(device)
        self.model.to(self.device).eval()
        self._match_precision()

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, **overrides) -> Reader:
        from transformers import AutoModelForQuestionAnswering

        from odqa.models.tokenizer import load_tokenizer

        check_model_dir(path)
        config = ReaderConfig()
        settings = Path(path) / READER_FILE
        saved = json.loads(settings.read_text(encoding="utf-8")) if settings.exists() else {}
        config = config.updated(**saved.get("reader", {}))
        config = config.updated(**overrides)
        tokenizer = load_tokenizer(path)
        head = saved.get("head") or {"name": "linear"}
        if head.get("name") != "linear":
            from odqa.reader.heads import load_span_model

            return cls(load_span_model(path, head), tokenizer, config, device)
        model, info = load_pretrained(
            AutoModelForQuestionAnswering, path, "a question-answering model", POOLER, output_loading_info=True
        )
        untrained = [k for k in info.get("missing_keys", ()) if "qa_outputs" in k]
        if untrained:
            raise OdqaError(
                f"{path} has no trained question-answering head; fine-tune it first with `odqa train-reader`"
            )
        return cls(model, tokenizer, config, device)

    @property
    def head(self) -> dict:
        """The span head's name and settings (`linear`: transformers' own QA head)."""
        return {"name": getattr(self.model, "head_name", "linear"), "options": getattr(self.model, "head_options", {})}

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        """Weights (safetensors), tokenizer and reader settings into `path` (an existing folder)."""
        from odqa.models.tokenizer import save_tokenizer

        if self._in_bf16():
            raise OdqaError("this reader's weights were rounded to bf16 for reading; save it as loaded in fp32")

        path = Path(path)
        save_pretrained(self.model, path)
        save_tokenizer(self.tokenizer, path)
        (path / READER_FILE).write_text(
            json.dumps(
                {"reader": self.config.model_dump(mode="json"), "head": self.head, **(extra or {})},
                ensure_ascii=False,
                indent=2,
            ),
            encoding="utf-8",
        )

    # -- reading ---------------------------------------------------------------------------------

    def _in_bf16(self) -> bool:
        import torch

        return next(self.model.parameters()).dtype == torch.bfloat16

    def _match_precision(self) -> None:
        """The weights in the precision the config asks for (it may have been changed after loading):
        rounded to bf16 once asked; a rounded reader cannot go back to its fp32 weights."""
        from odqa.models.loading import to_bf16

        if self.config.precision == "bf16" and not self._in_bf16():
            self.model = to_bf16(self.model, self.device)
        elif self.config.precision == "fp32" and self._in_bf16():
            raise OdqaError("this reader's weights were rounded to bf16; load it again to read in fp32")

    def _forward(
        self, windows: Windows, progress: bool = False, contexts: Sequence[str] | None = None
    ) -> tuple[WindowSpans, np.ndarray]:
        """Best spans of every window (in the windows' order) and the padded offsets they index;
        with the pairs' `contexts`, spans that cross a line break are left out (unless `cross_lines`)."""
        import torch

        from odqa.progress import progress as bar

        config = self.config
        self._match_precision()
        order = np.argsort(-windows.lengths, kind="stable")
        n, width = len(windows), int(windows.lengths.max())
        keep = config.n_best
        starts = np.full((n, keep), -1, np.int64)
        ends = np.full((n, keep), -1, np.int64)
        scores = np.full((n, keep), -np.inf, np.float32)
        nulls = np.zeros(n, np.float32)
        offsets = np.full((n, width, 2), -1, np.int64)
        pad_id = self.tokenizer.pad_token_id or 0
        with torch.inference_mode(), bar(total=n, desc="reading", unit="window", quiet=not progress) as pbar:
            for lo in range(0, n, config.batch_size):
                rows = order[lo : lo + config.batch_size]
                batch = pad_batch(windows, rows, pad_id)
                inputs = {k: torch.from_numpy(v).to(self.device) for k, v in batch.items() if k != "offsets"}
                out = self.model(**inputs)
                lines = None
                if contexts is not None and not config.cross_lines:
                    lines = np.stack(
                        [token_lines(contexts[windows.pair[i]], batch["offsets"][r]) for r, i in enumerate(rows)]
                    )
                spans = top_spans(
                    out.start_logits.float().cpu().numpy(),
                    out.end_logits.float().cpu().numpy(),
                    batch["offsets"],
                    batch["attention_mask"],
                    n=keep,
                    max_answer_tokens=config.max_answer_tokens,
                    mode=config.mode,
                    lines=lines,
                )
                k = spans.start.shape[1]
                starts[rows, :k], ends[rows, :k], scores[rows, :k] = spans.start, spans.end, spans.score
                nulls[rows] = spans.null
                offsets[rows, : batch["offsets"].shape[1]] = batch["offsets"]
                pbar.update(len(rows))
        return WindowSpans(starts, ends, scores, nulls), offsets

    def read(
        self,
        questions: Sequence[str],
        contexts: Sequence[Sequence[str]],
        progress: bool = False,
    ) -> list[ReaderResult]:
        """For each question, the best spans over its own list of contexts."""
        candidates, nulls = self.read_candidates(questions, contexts, progress)
        return [self.finish(c, n) for c, n in zip(candidates, nulls)]

    def read_candidates(
        self, questions: Sequence[str], contexts: Sequence[Sequence[str]], progress: bool = False
    ) -> tuple[list[list[Span]], list[list[float]]]:
        """Every window's best spans (cleaned up), pooled per question but not yet aggregated, and
        each context's no-answer score (the lowest of its windows'; infinite for an empty context):
        what `finish` ranks. Callers that want answers from the first k contexts only (evaluation at
        several k) filter spans by `Span.context_index` and take the first k no-answer scores."""
        if len(questions) != len(contexts):
            raise OdqaError(f"{len(questions)} questions but {len(contexts)} context lists")
        candidates: list[list[Span]] = [[] for _ in questions]
        nulls: list[list[float]] = [[math.inf] * len(passages) for passages in contexts]
        pair_question, pair_context, flat_q, flat_c = [], [], [], []
        for qi, (question, passages) in enumerate(zip(questions, contexts)):
            for ci, context in enumerate(passages):
                if context and context.strip():
                    pair_question.append(qi)
                    pair_context.append(ci)
                    flat_q.append(question)
                    flat_c.append(context)
        if not flat_q:
            return candidates, nulls
        windows = build_windows(self.tokenizer, flat_q, flat_c, self.config.windows)
        if windows.truncated_questions:
            log.warning(
                "%d questions were longer than %d tokens and were cut",
                len(windows.truncated_questions),
                self.config.max_question_tokens,
            )
        spans, offsets = self._forward(windows, progress, flat_c)
        trim = self.config.postprocess == "korean" and self.config.unit_trim
        units = [asked_unit(question) if trim else None for question in questions]  # once per question
        for w, pair in enumerate(windows.pair):
            qi, ci = pair_question[pair], pair_context[pair]
            context = contexts[qi][ci]
            found = window_candidates(spans, w, offsets[w], context, ci)
            if self.config.postprocess == "korean":
                found = [self._clean(span, context, units[qi], questions[qi]) for span in found]
            candidates[qi].extend(found)
            nulls[qi][ci] = min(nulls[qi][ci], float(spans.null[w]))
        return candidates, nulls

    def finish(self, candidates: Sequence[Span], nulls: Sequence[float], n_best: int | None = None) -> ReaderResult:
        """Aggregate one question's candidates into its answer and `n_best` (the config's by default) best."""
        config = self.config
        nbest = aggregate(candidates, max(n_best or 0, config.n_best), config.merge, config.mode)
        best = nbest[0] if nbest else None
        nulls = [n for n in nulls if n != math.inf] or [0.0]
        if config.no_answer and no_answer_wins(best, nulls, config.null_threshold):
            best = None
        return ReaderResult(best, nbest, min(nulls))

    def _clean(self, span: Span, context: str, unit: str | None = None, question: str = "") -> Span:
        start, end = span.start, span.end
        if unit is not None:
            start, end = trim_to_unit(context, start, end, unit, question)
        start, end = clean_span(context, start, end, analyzers=self.config.particle_analyzers)
        if (start, end) == (span.start, span.end) or end <= start:
            return span
        return Span(context[start:end], start, end, span.score, span.context_index)
