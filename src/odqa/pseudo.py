"""Pseudo-labels: unlabelled questions answered end to end, the confident answers kept as training
data (SQuAD format, the answer's passage as the context) for `train-reader`.

An answer is kept when its probability (the reader's, in prob mode; an ensemble's voted one) reaches
`min_score` and, with several readers, when at least `min_agreement` of them gave the same answer
text on their own (the metric's normalization decides "same"). Each reader reads each passage once:
their own answers and the ensemble's come from the same reading. When the questions carry gold
answers (a labelled set treated as unlabelled), the report says how precise the kept labels were."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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


def answer_and_judge(pipeline, questions: Sequence[Question], config: PseudoLabelConfig, batch_size=32, quiet=False):
    """Every question's answer with its probability, the readers' agreement and its passage."""
    from odqa.metrics.answers import get_answer_metric
    from odqa.progress import progress
    from odqa.reader.ensemble import EnsembleReader

    normalize = get_answer_metric(config.metric).normalize
    pipeline.warm_up()
    reader = pipeline.reader
    members = reader.readers if isinstance(reader, EnsembleReader) else [reader]
    rows = []
    with progress(total=len(questions), desc="pseudo-labelling", unit="q", quiet=quiet) as bar:
        for lo in range(0, len(questions), batch_size):
            batch = questions[lo : lo + batch_size]
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
            bar.update(len(batch))
    return rows


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
    return out
