"""Pseudo-labels: unlabelled questions answered end to end, the confident answers kept as training
data (SQuAD format, the answer's passage as the context) for `train-reader`.

An answer is kept when its probability (the reader's, in prob mode; an ensemble's voted one) reaches
`min_score` and, with several readers, when at least `min_agreement` of them gave the same answer
text on their own (the metric's normalization decides "same"). Each reader reads each passage once:
their own answers and the ensemble's come from the same reading. When the questions carry gold
answers (a labelled set treated as unlabelled), the report says how precise the kept labels were.

Answering is the slow part, so it is resumable: each batch's rows are appended to a partial file
whose first line holds the settings they depend on (pipeline, readers' weights, metric — not the
thresholds). A rerun with the same settings answers only the questions still missing, and one with
other thresholds reuses every answer; other settings are refused unless `restart`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from odqa.errors import OdqaError
from odqa.io.questions import Question


@dataclass(frozen=True)
class PseudoLabelConfig:
    min_score: float = 0.5  # the answer's probability
    min_agreement: float = 1.0  # share of the readers whose own answer is the kept one
    metric: str = "korquad"  # what counts as the same answer (agreement, and the report's scores)

    def check(self) -> PseudoLabelConfig:
        for name in ("min_score", "min_agreement"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise OdqaError(f"{name} must be between 0 and 1, got {value}")
        return self


def _to_record(row: dict) -> dict:
    record = dict(row)
    record["answer"] = row["answer"].to_dict() if row["answer"] is not None else None
    record["passage"] = asdict(row["passage"]) if row["passage"] is not None else None
    record["gold"] = list(row["gold"])
    return record


def _from_record(record: dict) -> dict:
    from odqa.types import Answer, Passage, PassageSource

    row = dict(record)
    row["answer"] = Answer(**record["answer"]) if record["answer"] is not None else None
    passage = record["passage"]
    if passage is not None:
        sources = tuple(PassageSource(**source) for source in passage["sources"])
        row["passage"] = Passage(**(passage | {"sources": sources}))
    row["gold"] = tuple(record["gold"])
    return row


def answer_and_judge(
    pipeline,
    questions: Sequence[Question],
    config: PseudoLabelConfig,
    batch_size=32,
    quiet=False,
    partial: str | Path | None = None,
    restart: bool = False,
):
    """Every question's answer with its probability, the readers' agreement and its passage, in
    the questions' order. With `partial`, rows are appended there batch by batch and a rerun with
    the same settings resumes (see the module's docstring)."""
    from odqa.e2e import done_records, run_settings
    from odqa.metrics.answers import get_answer_metric
    from odqa.progress import progress
    from odqa.reader.ensemble import EnsembleReader

    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise OdqaError("question ids are not unique; pseudo-labels are keyed by id")
    normalize = get_answer_metric(config.metric).normalize
    pipeline.warm_up()
    done: dict[str, dict] = {}
    if partial is not None:
        settings = json.loads(json.dumps(run_settings(pipeline) | {"metric": config.metric}))
        done = {i: _from_record(r) for i, r in done_records(Path(partial), settings, restart).items()}
    todo = [q for q in questions if q.id not in done]
    reader = pipeline.reader
    members = reader.readers if isinstance(reader, EnsembleReader) else [reader]
    with (
        open(partial, "a", encoding="utf-8") if partial is not None else nullcontext() as sink,
        progress(total=len(questions), desc="pseudo-labelling", unit="q", quiet=quiet) as bar,
    ):
        bar.update(len(questions) - len(todo))
        for lo in range(0, len(todo), batch_size):
            batch = todo[lo : lo + batch_size]
            rows = []
            texts = [q.text for q in batch]
            hits = pipeline.retrieve(texts)
            contexts = [[h.passage.text for h in row] for row in hits]
            each = [member.read_candidates(texts, contexts) for member in members]
            voted = reader.vote(each) if len(members) > 1 else each[0]
            for qi, question in enumerate(batch):
                result = pipeline.rank(question.text, hits[qi], voted[0][qi], voted[1][qi], n_best=1)
                answer = result.answer
                row = {"id": question.id, "question": question.text, "answer": answer, "probability": 0.0}
                row |= {"agreement": 0.0, "passage": None, "gold": question.answers}
                if answer is not None:
                    own = [m.finish(spans[qi], nulls[qi], 1).answer for m, (spans, nulls) in zip(members, each)]
                    same = [a is not None and normalize(a.text) == normalize(answer.text) for a in own]
                    row["probability"] = math.exp(answer.reader_score)
                    row["agreement"] = sum(same) / len(members)
                    row["passage"] = next(h.passage for h in hits[qi] if h.passage_id == answer.passage_id)
                rows.append(row)
                done[row["id"]] = row
            if sink is not None:
                sink.writelines(json.dumps(_to_record(row), ensure_ascii=False) + "\n" for row in rows)
                sink.flush()
            bar.update(len(batch))
    return [done[i] for i in ids]


def kept_rows(rows: list[dict], config: PseudoLabelConfig) -> list[dict]:
    return [
        row
        for row in rows
        if row["answer"] is not None
        and row["answer"].text.strip()
        and row["probability"] >= config.min_score
        and row["agreement"] >= config.min_agreement - 1e-9
    ]


def squad_file(kept: list[dict]) -> dict:
    """The kept answers as a SQuAD-format file: one article per question, its passage as context."""
    articles = []
    for row in kept:
        answer, passage = row["answer"], row["passage"]
        qa = {
            "id": row["id"],
            "question": row["question"],
            "answers": [{"text": answer.text, "answer_start": answer.start}],
            "pseudo": {
                "probability": row["probability"],
                "agreement": row["agreement"],
                "passage_id": answer.passage_id,
            },
        }
        articles.append({"title": passage.title, "paragraphs": [{"context": passage.text, "qas": [qa]}]})
    return {"version": "odqa-pseudo-labels", "data": articles}


def report(rows: list[dict], kept: list[dict], config: PseudoLabelConfig, readers: Sequence[str]) -> dict:
    """Counts, and where gold answers exist, the kept labels' precision (EM/F1 of the kept answers)
    beside the same scores over every answer."""
    from odqa.metrics import get_answer_metric, score_predictions

    out = {
        "questions": len(rows),
        "kept": len(kept),
        "kept_share": 100.0 * len(kept) / max(1, len(rows)),
        "min_score": config.min_score,
        "min_agreement": config.min_agreement,
        "readers": list(readers),
    }
    labelled = [row for row in rows if row["gold"]]
    if labelled:
        gold = {row["id"]: row["gold"] for row in labelled}

        def scores(subset):
            predictions = {row["id"]: row["answer"].text if row["answer"] else "" for row in subset}
            result = score_predictions(predictions, {q: gold[q] for q in predictions}, config.metric)
            partial = result[get_answer_metric(config.metric).partial_name]
            return {"questions": len(subset), "exact_match": result["exact_match"], "f1": partial}

        kept_labelled = [row for row in kept if row["gold"]]
        out["precision"] = scores(kept_labelled) if kept_labelled else None
        out["all_answers"] = scores(labelled)
        out["by_min_score"] = [
            {"min_score": threshold} | scores(subset) for threshold, subset in _by_threshold(labelled, config)
        ]
    return out


def _by_threshold(labelled: list[dict], config: PseudoLabelConfig, points: int = 10):
    """(threshold, kept rows) at the probabilities that keep the most confident 1/points, 2/points, …
    of the answered labelled questions (the current agreement rule applies): the curve a labelled
    set treated as unlabelled gives for choosing `min_score`."""
    ranked = sorted(kept_rows(labelled, replace(config, min_score=0.0)), key=lambda row: -row["probability"])
    if not ranked:
        return
    cuts = {ranked[max(1, round(len(ranked) * i / points)) - 1]["probability"] for i in range(1, points + 1)}
    for threshold in sorted(cuts, reverse=True):
        yield threshold, [row for row in ranked if row["probability"] >= threshold]
