"""How many passages the pipeline should read by default: end-to-end EM by k at the default
retriever weight (0: the answer score is the reader's alone), in English and in Korean.

English: BM25 (whitespace words) over the SQuAD dev paragraphs (one passage each, as
retrieval_dense.py builds them), the multilingual-e5-small reader fine-tuned on TyDi-en
(reader_me5_en.py, work/reader/en-me5), a seeded sample of SQuAD dev questions, read in bf16; one
reading of the largest k scores every smaller one. Korean: the held-out tuning questions of every
stored end-to-end run (e2e.py's results: the reader's EM at weight 0 by k, no model runs).

    cd benchmarks && ../.venv/bin/python default_k.py [--reader work/reader/en-me5] [--questions 1000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import ROOT, WORK, cached_stage, markdown_table, sample, write_results

KS = [1, 3, 5, 10, 20]
RESULTS = ROOT / "benchmarks" / "results"


def english(reader: Path, n_questions: int) -> dict:
    from odqa.e2e import evaluate_end_to_end
    from odqa.io import read_questions
    from odqa.pipeline import Pipeline, PipelineConfig
    from retrieval_dense import SQUAD, build_sparse

    index = WORK / "default_k" / "squad-bm25"
    if not (index / "manifest.json").exists():
        print(f"building {index} ...", flush=True)
        build_sparse(SQUAD, index)
    config = PipelineConfig(index=str(index), reader=str(reader), k=max(KS), reader_options={"precision": "bf16"})
    pipeline = Pipeline(config).warm_up()
    questions = sample(read_questions(SQUAD), n_questions)
    print(f"reading {len(questions)} SQuAD dev questions at k = {max(KS)} ...", flush=True)
    start = time.perf_counter()
    result = evaluate_end_to_end(pipeline, questions, KS, ["squad"], quiet=True)
    details, n = result["per_question"], len(questions)
    return {
        "reader": str(reader),
        "index": "BM25 (whitespace words) over the SQuAD dev paragraphs",
        "questions": len(questions),
        "retriever_weight": config.retriever_weight,
        "seconds": time.perf_counter() - start,
        "by_k": {str(k): result["by_k"][k]["squad"] for k in KS},
        # the retrieved passages hold an answer (has-answer top-k), from each question's first such rank
        "has_answer": {
            str(k): 100 * sum(d["first_answer_rank"] is not None and d["first_answer_rank"] <= k for d in details) / n
            for k in KS
        },
    }


def korean() -> dict:
    """Held-out EM at weight 0 by k of each stored e2e run (the tuning grid of e2e.py)."""
    runs = {}
    for path in sorted(RESULTS.glob("e2e*.json")):
        if path.name.endswith(".run.json") or "_details" in path.name:
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        grid = data.get("tuning", {}).get("em_korquad", {})
        by_k = {str(k): grid.get(f"k={k} w=0.0") for k in KS}
        run = {"questions": data["tuning"]["questions"], "by_k": by_k}
        if all(v is not None for v in by_k.values()) and run not in runs.values():  # a rerun with another rule
            runs[path.stem] = run
    return runs


def best_k(by_k: dict) -> int:
    """The k of the highest EM; ties go to the fewest passages."""
    return max(KS, key=lambda k: (by_k[str(k)], -k))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader", type=Path, default=WORK / "reader" / "en-me5")
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--redo", default="", help="english: read the SQuAD questions again")
    args = parser.parse_args()
    if not (args.reader / "config.json").exists():
        parser.error(f"no reader at {args.reader}: run reader_me5_en.py first (or pass --reader)")
    from odqa.pipeline import DEFAULT_K

    stages, redo = WORK / "default_k" / "stages", set(filter(None, args.redo.split(",")))
    en = cached_stage(stages, f"english-{args.questions}", redo, lambda: english(args.reader, args.questions))
    ko = korean()
    runs = {"English (SQuAD dev, en-me5)": {k: v["exact_match"] for k, v in en["by_k"].items()}}
    runs |= {run: r["by_k"] for run, r in ko.items()}
    # what reading k passages costs each run against its own best k, and the worst of those costs
    loss = {str(k): {run: max(by_k.values()) - by_k[str(k)] for run, by_k in runs.items()} for k in KS}
    worst = {k: max(by_run.values()) for k, by_run in loss.items()}
    results = {
        "ks": KS,
        "default_k": DEFAULT_K,
        "english": en,
        "korean": ko,
        "best_k": {run: best_k(by_k) for run, by_k in runs.items()},
        "loss": loss,
        "worst_loss": worst,
        "least_worst_k": min(KS, key=lambda k: (worst[str(k)], k)),
    }
    tables = [
        f"English: SQuAD dev EM / F1 by k at retriever weight 0 ({en['questions']} questions, {en['index']}, "
        f"reader {Path(en['reader']).name}, bf16, 2 CPU cores)\n\n"
        + markdown_table(
            ["k", "EM", "F1", "has-answer top-k"],
            [
                [k, f"{v['exact_match']:.1f}", f"{v['f1']:.1f}", f"{en['has_answer'][k]:.1f}"]
                for k, v in en["by_k"].items()
            ],
        ),
        "Korean: held-out korquad EM by k at retriever weight 0 (each stored e2e run's tuning grid)\n\n"
        + markdown_table(
            ["run", "questions", *(f"k = {k}" for k in KS), "best k"],
            [
                [run, r["questions"], *(f"{r['by_k'][str(k)]:.1f}" for k in KS), results["best_k"][run]]
                for run, r in results["korean"].items()
            ],
        ),
        f"EM lost by reading k passages against each run's best k (all {len(runs)} runs above; points)\n\n"
        + markdown_table(
            ["k", "mean loss", "worst loss", "runs where k is best"],
            [
                [
                    k,
                    f"{sum(loss[str(k)].values()) / len(runs):.1f}",
                    f"{worst[str(k)]:.1f}",
                    sum(best == k for best in results["best_k"].values()),
                ]
                for k in KS
            ],
        ),
    ]
    write_results("default_k", results, "\n\n".join(tables))


if __name__ == "__main__":
    main()
