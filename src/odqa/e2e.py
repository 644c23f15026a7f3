"""End to end over question files: batch prediction (resumable, competition format) and
evaluation with error attribution.

Each question's error is put in one category a person can act on:
- `correct`: exact match;
- `near_miss`: F1 > 0.5 without exact match (a trailing particle, a bracket, one word too many);
- `retrieval_miss`: no retrieved passage contains a gold answer, so no reader could have found it;
- `reading_miss`: a passage held the answer but the reader chose something else.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from odqa.errors import OdqaError
from odqa.io.atomic import atomic_write_text
from odqa.io.questions import Question
from odqa.metrics import get_answer_metric, has_answer
from odqa.pipeline import Pipeline, PipelineResult

PARTIAL = "partial.jsonl"
CATEGORIES = ("correct", "near_miss", "retrieval_miss", "reading_miss")


def _batches(items: Sequence, size: int):
    for lo in range(0, len(items), size):
        yield items[lo : lo + size]


def _record(question: Question, result: PipelineResult) -> dict:
    return {
        "id": question.id,
        "answer": result.text,
        "nbest": [a.to_dict() for a in result.nbest],
        "passages": [
            {"passage_id": p.passage_id, "score": p.score, "title": p.title, "doc_id": p.doc_id}
            for p in result.passages
        ],
    }


def run_settings(pipeline: Pipeline) -> dict:
    """What a prediction depends on: the pipeline config and which reader and passages it had."""
    settings = {"pipeline": pipeline.config.to_dict(), "passages": pipeline.index.n_passages}
    stamps = []
    for path in pipeline.reader_paths:
        reader_file = Path(path) / "model.safetensors"
        if reader_file.is_file():
            stat = reader_file.stat()
            stamps.append({"bytes": stat.st_size, "modified": int(stat.st_mtime)})
    if stamps:
        settings["reader_files"] = stamps
    return settings


def _changed(old: dict, new: dict, prefix: str = "") -> list[str]:
    names = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            names += _changed(a, b, f"{prefix}{key}.")
        elif a != b:
            names.append(f"{prefix}{key}")
    return names


def done_records(path: Path, settings: dict, restart: bool) -> dict[str, dict]:
    """Records already written by an interrupted run with the same settings (its first line);
    a half-written last line is dropped. Other settings are refused, naming what changed, unless
    `restart` (then the old answers are discarded)."""
    done: dict[str, dict] = {}
    if not path.exists() or restart:
        path.write_text(json.dumps({"settings": settings}, ensure_ascii=False) + "\n", encoding="utf-8")
        return done
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break
            if number == 0:
                old = record.get("settings") if isinstance(record, dict) else None
                if not isinstance(old, dict):
                    raise OdqaError(f"{path} has no settings line (not written by this odqa); delete it or --restart")
                if old != settings:
                    raise OdqaError(
                        f"{path} holds answers from another run (changed: {', '.join(_changed(old, settings))});"
                        " run with the same settings to resume, or --restart to start over"
                    )
                continue
            done[record["id"]] = record
    return done


def answer_here(pipeline: Pipeline, batches: Sequence[Sequence[Question]]) -> Iterator[list[dict]]:
    """Each batch's answer records, answered in this process, batch by batch."""
    for batch in batches:
        yield [_record(q, r) for q, r in zip(batch, pipeline.ask_batch([q.text for q in batch]))]


def predict_file(
    pipeline: Pipeline,
    questions: Sequence[Question],
    out: str | Path,
    batch_size: int = 32,
    quiet: bool = False,
    restart: bool = False,
    answer: Callable[[Pipeline, list[list[Question]]], Iterable[list[dict]]] = answer_here,
) -> dict[str, str]:
    """Answer every question, appending to OUT/partial.jsonl as batches finish (a rerun with the
    same settings continues where a killed one stopped; other settings are refused unless
    `restart`); then write predictions.json ({id: answer}, the competition format),
    nbest_predictions.json and retrieved.json atomically.

    `answer` turns the batches still to do into their records, yielded batch by batch in any order:
    here by default, or on a Ray cluster (`odqa.distributed.jobs.answer_on_ray`)."""
    from odqa.progress import progress

    ids = [q.id for q in questions]
    if len(set(ids)) != len(ids):
        raise OdqaError("question ids are not unique; predictions are keyed by id")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    partial = out / PARTIAL
    pipeline.open_index()  # the settings name the passages; the reader loads where it reads
    done = done_records(partial, json.loads(json.dumps(run_settings(pipeline))), restart)
    todo = [q for q in questions if q.id not in done]
    with (
        open(partial, "a", encoding="utf-8") as f,
        progress(total=len(questions), desc="predicting", unit="q", quiet=quiet) as bar,
    ):
        bar.update(len(questions) - len(todo))
        for records in answer(pipeline, list(_batches(todo, batch_size))):
            for record in records:
                done[record["id"]] = record
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            bar.update(len(records))
    missing = [i for i in ids if i not in done]
    if missing:
        raise OdqaError(f"{len(missing)} questions got no answer (first: {missing[0]}); run again to resume")
    records = [done[i] for i in ids]
    predictions = {r["id"]: r["answer"] for r in records}
    atomic_write_text(out / "predictions.json", json.dumps(predictions, ensure_ascii=False, indent=2))
    atomic_write_text(
        out / "nbest_predictions.json", json.dumps({r["id"]: r["nbest"] for r in records}, ensure_ascii=False, indent=2)
    )
    atomic_write_text(
        out / "retrieved.json", json.dumps({r["id"]: r["passages"] for r in records}, ensure_ascii=False, indent=2)
    )
    atomic_write_text(out / "pipeline_config.json", json.dumps(pipeline.config.to_dict(), ensure_ascii=False, indent=2))
    partial.unlink()
    return predictions


def _readings(pipeline: Pipeline, questions: Sequence[Question], k: int, batch_size: int, bar=None):
    """(question, its top-k hits, the reader's candidate spans over them, their null scores) for each
    question: one search and one reading pass per batch, so a caller can rank any prefix of the hits
    and any retriever weight without reading again."""
    for batch in _batches(questions, batch_size):
        texts = [q.text for q in batch]
        hits = pipeline.retrieve(texts, k)
        candidates, nulls = pipeline.reader.read_candidates(texts, [[h.passage.text for h in row] for row in hits])
        yield from zip(batch, hits, candidates, nulls)
        if bar is not None:
            bar.update(len(batch))


def attribute(exact: float, partial: float, retrieved_answer: bool) -> str:
    if exact == 1.0:
        return "correct"
    if partial > 0.5:
        return "near_miss"
    if not retrieved_answer:
        return "retrieval_miss"
    return "reading_miss"


def evaluate_end_to_end(
    pipeline: Pipeline,
    questions: Sequence[Question],
    ks: Sequence[int] | None = None,
    metrics: Sequence[str] = ("squad", "korquad"),
    batch_size: int = 32,
    quiet: bool = False,
) -> dict:
    """EM/F1 at the pipeline's k (and at every k in `ks`, from one reading of the largest k),
    the has-answer rate of the retrieved passages, and each question's error category (by the
    first metric)."""
    from odqa.progress import progress

    questions = [q for q in questions if q.answers]
    if not questions:
        raise OdqaError("no question has gold answers to evaluate against")
    pipeline.warm_up()
    k = pipeline.config.k
    ks = sorted({*(ks or ()), k})
    scorers = [get_answer_metric(m) for m in metrics]
    sums = {kk: {m.name: [0.0, 0.0] for m in scorers} for kk in ks}
    details, categories = [], Counter()
    found_at_k = 0
    with progress(total=len(questions), desc="evaluating", unit="q", quiet=quiet) as bar:
        for question, row, spans, null in _readings(pipeline, questions, max(ks), batch_size, bar):
            first_hit = next((h.rank for h in row if has_answer(h.passage.text, question.answers)), None)
            for kk in ks:
                result = pipeline.rank(question.text, row[:kk], [s for s in spans if s.context_index < kk], null[:kk])
                for metric in scorers:
                    exact = max(metric.exact(result.text, a) for a in question.answers)
                    partial = max(metric.partial(result.text, a) for a in question.answers)
                    sums[kk][metric.name][0] += exact
                    sums[kk][metric.name][1] += partial
                    if kk == k and metric is scorers[0]:
                        retrieved = first_hit is not None and first_hit <= k
                        category = attribute(exact, partial, retrieved)
                        categories[category] += 1
                        found_at_k += retrieved
                        answer = result.answer
                        details.append(
                            {
                                "id": question.id,
                                "question": question.text,
                                "gold": list(question.answers),
                                "prediction": result.text,
                                "exact_match": exact,
                                "f1": partial,
                                "category": category,
                                "answer_rank": answer.passage_rank if answer else None,
                                "answer_title": answer.title if answer else None,
                                "first_answer_rank": first_hit,
                            }
                        )
    n = len(questions)
    by_k = {kk: {m: {"exact_match": 100 * v[0] / n, "f1": 100 * v[1] / n} for m, v in sums[kk].items()} for kk in ks}
    return {
        "questions": n,
        "k": k,
        "metrics": by_k[k],
        "retrieval_has_answer": 100 * found_at_k / n,
        "attribution": {c: categories.get(c, 0) for c in CATEGORIES},
        "by_k": by_k,
        "per_question": details,
    }


def plot_em_by_k(result: dict, path: str | Path, metric: str | None = None) -> bool:
    """EM (and F1) against k as a PNG; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    by_k = result["by_k"]
    ks = sorted(by_k, key=int)
    metric = metric or next(iter(by_k[ks[0]]))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for key, label in (("exact_match", "EM"), ("f1", "F1")):
        ax.plot(ks, [by_k[k][metric][key] for k in ks], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("passages read (k)")
    ax.set_ylabel(f"{metric} score (%)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


TUNE_KS = (1, 3, 5, 10, 20)
TUNE_WEIGHTS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
TUNE_RULES = ("one-se", "best")


def choose_setting(
    scores: dict[tuple[int, float], Sequence[float]], rule: str = "one-se"
) -> tuple[tuple[int, float], tuple[int, float], float]:
    """(the chosen (k, weight), the best one, the best one's standard error in EM points) from every
    pair's per-question exact match (0 or 1, the same questions in the same order), by tune_pipeline's
    rule."""
    from statistics import pstdev

    if rule not in TUNE_RULES:
        raise OdqaError(f"unknown tuning rule {rule!r}; choose one of {', '.join(TUNE_RULES)}")
    em = {pair: 100 * sum(values) / len(values) for pair, values in scores.items()}

    def order(pair):  # the best EM, then the fewest passages, then the smallest weight
        return em[pair], -pair[0], -pair[1]

    best = max(em, key=order)
    standard_error = 100 * pstdev(scores[best]) / len(scores[best]) ** 0.5
    if rule == "best":
        return best, best, standard_error
    within = [pair for pair in em if em[pair] >= em[best] - standard_error - 1e-9]
    fewest = min(k for k, _ in within)
    return max((pair for pair in within if pair[0] == fewest), key=order), best, standard_error


def tune_pipeline(
    pipeline: Pipeline,
    questions: Sequence[Question],
    ks: Sequence[int] = TUNE_KS,
    weights: Sequence[float] = TUNE_WEIGHTS,
    metric: str = "korquad",
    batch_size: int = 32,
    quiet: bool = False,
    rule: str = "one-se",
) -> dict:
    """EM of every (k, retriever weight) pair on labelled questions from one reading of the largest k,
    and the pair to use. rule "best": the best EM, then the fewest passages (the cheaper reading), then
    the smallest weight. rule "one-se" (the one-standard-error rule): the fewest passages whose EM is
    within one standard error of the best pair's (the spread of its per-question scores over
    √questions), at that k's best weight. A few hundred questions cannot tell EMs a standard error
    apart, and reading fewer passages is faster. The pipeline's own k and weight are left as they were."""
    from odqa.progress import progress

    if rule not in TUNE_RULES:
        raise OdqaError(f"unknown tuning rule {rule!r}; choose one of {', '.join(TUNE_RULES)}")
    questions = [q for q in questions if q.answers]
    if not questions:
        raise OdqaError("no question has gold answers to tune on")
    ks, weights = sorted(set(ks)), sorted(set(weights))
    if not ks or ks[0] < 1:
        raise OdqaError(f"k values must be ≥ 1, got {list(ks)}")
    if not weights:
        raise OdqaError("no retriever weight to try")
    pipeline.warm_up()
    scorer = get_answer_metric(metric)
    scores: dict[tuple[int, float], list[float]] = {(k, w): [] for k in ks for w in weights}
    with progress(total=len(questions), desc="tuning", unit="q", quiet=quiet) as bar:
        for question, row, spans, null in _readings(pipeline, questions, ks[-1], batch_size, bar):
            for k, w in scores:
                kept = [s for s in spans if s.context_index < k]
                text = pipeline.rank(question.text, row[:k], kept, null[:k], retriever_weight=w).text
                scores[(k, w)].append(max(scorer.exact(text, a) for a in question.answers))
    n = len(questions)
    chosen, best_pair, standard_error = choose_setting(scores, rule)
    exact = {pair: sum(values) for pair, values in scores.items()}
    # a best pair at the largest value tried may be short of what a wider search finds
    edges = (("k", best_pair[0], ks), ("retriever_weight", best_pair[1], weights))
    return {
        "questions": n,
        "metric": metric,
        f"em_{metric}": {f"k={kk} w={ww}": 100 * v / n for (kk, ww), v in exact.items()},
        "rule": rule,
        "chosen": {"k": chosen[0], "retriever_weight": chosen[1]},
        "exact_match": 100 * exact[chosen] / n,
        "best": {"k": best_pair[0], "retriever_weight": best_pair[1], "exact_match": 100 * exact[best_pair] / n},
        "standard_error": standard_error,
        "at_edge": [name for name, value, tried in edges if len(tried) > 1 and value == tried[-1]],
    }
